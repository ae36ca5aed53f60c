"""How a VM looks from the host (core layer): its QEMU process and threads, how the scheduler runs its
vCPUs, its memory, its disks and the CPU mode it runs in; plus the two knobs that change that picture
(vCPU/emulator pinning, the balloon). `Collector` takes snapshots; the CLI and API only render them."""
