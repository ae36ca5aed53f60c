"""Operations on VMs: lifecycle, state, guest agent, devices and media (core layer)."""
