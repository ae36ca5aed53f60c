"""Disk volumes in vmdeck's libvirt storage pool, ISO media (core layer)."""
