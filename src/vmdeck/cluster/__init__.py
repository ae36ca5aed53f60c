"""Several libvirt hosts under one vmdeck: registry, connections with deadlines, inventory, placement, drain."""
