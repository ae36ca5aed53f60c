"""The tiny guest's own files: inittab, the boot script, DHCP and power hooks.

Kept as Python strings (not package data) so an editable install, a wheel and
a source checkout all carry them. `guest_files()` returns {path: (text, mode)}.
The scripts run under busybox sh inside the guest; nothing here is ever run
on the host, and no value from user input is pasted into them.
"""

from __future__ import annotations

READY_MARKER = "VMDECK-READY"
BOOT_ID_PREFIX = "VMDECK-BOOT-ID"
AGENT_PORT_NAME = "org.qemu.guest_agent.0"
HOSTNAME = "tiny"
OS_RELEASE = (
    'NAME="vmdeck tiny"\n'
    'ID=vmdeck-tiny\n'
    'ID_LIKE=debian\n'
    'VERSION_ID="1"\n'
    'PRETTY_NAME="vmdeck tiny Linux (Debian cloud kernel + busybox)"\n'
)

INITTAB = """\
# vmdeck tiny guest (busybox init)
::sysinit:/etc/rc
{serial}::respawn:-/bin/sh
{vga}::ctrlaltdel:/sbin/reboot -f
::shutdown:/bin/sync
::restart:/sbin/init
"""

RC = r"""#!/bin/sh
# vmdeck tiny guest: one-shot system set-up, run by init (::sysinit:/etc/rc)
export PATH=/sbin:/usr/sbin:/bin:/usr/bin HOME=/root
SERIAL=@SERIAL@

[ -e /bin/ls ] || /bin/busybox --install -s 2>/dev/null
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm /run /tmp /var/log /mnt /root
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
hostname -F /etc/hostname
DEBUG=
case " $(cat /proc/cmdline) " in *" vmdeck.debug "*) DEBUG=1 ;; esac
stage() { [ -n "$DEBUG" ] && read -r up _ </proc/uptime && echo "vmdeck: $up $*" >/dev/console; }
stage mounted

# drivers the cloud kernel builds as modules, dependencies first
kver=$(uname -r)
while read -r m; do
    insmod "/lib/modules/$kver/$m" >>/var/log/modules.log 2>&1
done < /etc/vmdeck/modules
stage modules loaded

# network: every NIC up, DHCP on eth0 (wait briefly), the others in background
ip link set lo up
for d in /sys/class/net/*; do
    n=${d##*/}
    [ "$n" = lo ] && continue
    ip link set "$n" up
    if [ "$n" = eth0 ]; then
        udhcpc -i eth0 -s /etc/udhcpc.script -b -t 4 -T 1 -A 3 >>/var/log/udhcpc.log 2>&1
    else
        udhcpc -i "$n" -s /etc/udhcpc.script -b -t 1 -T 1 -A 10 >>/var/log/udhcpc.log 2>&1 &
    fi
done

stage network up
# ACPI power button (x86, and arm64 booted with firmware/ACPI)
acpid -c /etc/acpi -l /var/log/acpid.log
# arm64 "virt" booted from a device tree: the power button is PL061 GPIO line 3
if [ -x /usr/bin/gpiomon ]; then
    for c in /sys/bus/gpio/devices/gpiochip*; do
        case "$(readlink -f "$c")" in
        *pl061*) /etc/vmdeck/gpio-power "${c##*/}" </dev/null >/dev/null 2>&1 & ;;
        esac
    done
fi

stage power button watchers
# QEMU guest agent on the virtio-serial port named org.qemu.guest_agent.0
/etc/vmdeck/qga-loop </dev/null >>/var/log/qemu-ga.log 2>&1 &
i=0
while [ $i -lt 50 ]; do
    p=$(cat /run/qga-port 2>/dev/null)
    if [ -n "$p" ]; then
        ls -l /proc/[0-9]*/fd 2>/dev/null | grep -q "/dev/$p\$" && break
    elif [ $i -ge 8 ]; then
        break  # no agent channel on this VM (qga-loop keeps watching for one)
    fi
    sleep 0.1
    i=$((i + 1))
done

stage agent up
boot_id=$(cat /proc/sys/kernel/random/boot_id)
touch /run/vmdeck-ready
seen=" "
for t in "$SERIAL" $(cat /sys/class/tty/console/active 2>/dev/null); do
    case "$seen" in *" $t "*) continue ;; esac
    seen="$seen$t "
    [ -c "/dev/$t" ] && printf '%s %s\n%s\n' "@BOOTID@" "$boot_id" "@READY@" >"/dev/$t" 2>/dev/null
done
exit 0
"""

QGA_LOOP = r"""#!/bin/sh
# Find the agent's virtio-serial port (also when it is hot-plugged later) and
# keep qemu-ga running on it.
find_port() {
    for f in /sys/class/virtio-ports/*/name; do
        [ -e "$f" ] || continue
        if [ "$(cat "$f")" = "@PORT@" ]; then
            p=${f%/name}
            echo "${p##*/}"
            return 0
        fi
    done
    return 1
}
n=0
while :; do
    port=$(find_port)
    if [ -n "$port" ] && [ -c "/dev/$port" ]; then
        echo "$port" > /run/qga-port
        qemu-ga -m virtio-serial -p "/dev/$port" -t /run
        sleep 1
    else
        n=$((n + 1))
        if [ $n -lt 20 ]; then sleep 0.1; else sleep 2; fi
    fi
done
"""

UDHCPC_SCRIPT = r"""#!/bin/sh
# udhcpc hook: apply the lease with ip(8)
case "$1" in
deconfig)
    ip -4 addr flush dev "$interface"
    ip link set "$interface" up
    ;;
bound|renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" ${broadcast:+broadcast "$broadcast"} dev "$interface"
    for r in $router; do
        ip route replace default via "$r" dev "$interface"
        break
    done
    if [ -n "$dns" ]; then
        : > /etc/resolv.conf
        for s in $dns; do echo "nameserver $s" >> /etc/resolv.conf; done
    fi
    ;;
esac
exit 0
"""

POWER_OFF = """#!/bin/sh
# power button pressed: flush and power off now
sync
poweroff -f
"""

GPIO_POWER = """#!/bin/sh
# wait for a rising edge on PL061 line 3 (QEMU virt's power button), then power off
gpiomon --num-events=1 --rising-edge "$1" 3 && exec /etc/acpi/PWRF/00000080
"""

# qemu-ga's guest-shutdown runs "/sbin/shutdown -h -P|-H|-r +0 MESSAGE"
SHUTDOWN = """#!/bin/sh
# /sbin/shutdown for qemu-ga (busybox has no shutdown applet)
sync
for a in "$@"; do
    case "$a" in
    -r) exec reboot -f ;;
    -H) exec halt -f ;;
    esac
done
exec poweroff -f
"""

PROFILE = r"""export PATH=/sbin:/usr/sbin:/bin:/usr/bin HOME=/root
export PS1='\h:\w\$ '
"""


def guest_files(serial: str, vga: bool) -> dict[str, tuple[str, int]]:
    vga_line = "tty1::respawn:-/bin/sh\n" if vga else ""
    rc = RC.replace("@SERIAL@", serial).replace("@BOOTID@", BOOT_ID_PREFIX).replace("@READY@", READY_MARKER)
    return {
        "etc/inittab": (INITTAB.format(serial=serial, vga=vga_line), 0o644),
        "etc/rc": (rc, 0o755),
        "etc/vmdeck/qga-loop": (QGA_LOOP.replace("@PORT@", AGENT_PORT_NAME), 0o755),
        "etc/vmdeck/gpio-power": (GPIO_POWER, 0o755),
        "etc/udhcpc.script": (UDHCPC_SCRIPT, 0o755),
        "etc/acpi/PWRF/00000080": (POWER_OFF, 0o755),
        "sbin/shutdown": (SHUTDOWN, 0o755),
        "etc/hostname": (HOSTNAME + "\n", 0o644),
        # qemu-ga's guest-get-osinfo reads this: `vmdeck guest-info` names the OS like a distribution's.
        "etc/os-release": (OS_RELEASE, 0o644),
        "etc/hosts": (f"127.0.0.1 localhost\n127.0.1.1 {HOSTNAME}\n", 0o644),
        "etc/passwd": ("root:x:0:0:root:/root:/bin/sh\n", 0o644),
        "etc/shadow": ("root::0:0:99999:7:::\n", 0o600),
        "etc/group": ("root:x:0:\n", 0o644),
        "etc/profile": (PROFILE, 0o644),
        "etc/resolv.conf": ("", 0o644),
    }
