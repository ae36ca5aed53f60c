"""vmdeck: a virtual machine manager for QEMU/KVM hosts, built on libvirt."""

__version__ = "0.1.0"
