"""VmSpec <-> libvirt domain XML: pure functions, no I/O (core layer)."""
