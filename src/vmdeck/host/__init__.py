"""One libvirt host: connection, capabilities, accelerator probe (core layer)."""
