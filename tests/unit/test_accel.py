"""The accelerator decision's pure parts."""

from vmdeck.host.accel import qemu_complaint


def test_qemu_complaint_keeps_qemus_own_words() -> None:
    message = ("internal error: qemu unexpectedly closed the monitor: 2026-11-26T06:10:11.025053Z "
               "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69\nqemu-system-x86_64: assertion failed")
    assert qemu_complaint(message) == "failed to set MSR 0x10a to 0x69"
    assert qemu_complaint(None) == "no message"
