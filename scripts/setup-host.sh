#!/usr/bin/env bash
# Idempotent, non-interactive host set-up for vmdeck on Debian 12:
# packages, virtlogd + libvirtd running, the .venv, and the tiny guest images.
# Safe to run again and again; `make run` and `make test` both start with it.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
    echo "setup-host.sh installs Debian packages and starts libvirtd: run it as root (or with sudo)" >&2
    exit 5
fi

PACKAGES=(
    qemu-system-x86 qemu-system-arm qemu-utils qemu-guest-agent
    libvirt-daemon-system libvirt-clients libvirt-dev pkg-config
    dnsmasq-base busybox-static cpio xorriso kmod iproute2 acl
    python3-venv python3-dev gcc
    chromium fonts-dejavu-core virtinst ovmf
    fonts-nanum  # Hangul for the Korean web UI in the browser tests (Chromium shows boxes without a Korean font)
    postgresql  # the second store backend: tests start a private cluster with its initdb/pg_ctl
    hyperfine  # bench/bench_cli.py: command start-up times
    swtpm swtpm-tools  # the emulated TPM 2.0 of --tpm and the windows template (libvirt runs swtpm)
    nftables iptables  # port forwards: vmdeck's `table ip vmdeck` (nft), its accepts in libvirt's LIBVIRT_FWI (iptables)
    wrk  # bench/bench_web.py, bench_density.py: the API under concurrent clients (a compiled client)
    prometheus prometheus-libvirt-exporter  # tests/integration/test_metrics_prometheus.py (promtool, a real scrape), bench/bench_metrics.py
    # The Debian 12 cloud image (vmdeck image build debian-12): mmdebstrap, a GPT made with sfdisk,
    # filesystems from folders (mkfs.ext4 -d, mkfs.vfat + mtools), GRUB for BIOS and UEFI, ssh.
    mmdebstrap fdisk dosfstools mtools grub-pc-bin grub-efi-amd64-bin openssh-client
    # The arm64 one (vmdeck image build debian-12 --arch aarch64, built by hand, not here): arm64
    # programs run in mmdebstrap's chroot through qemu-user and binfmt_misc; AAVMF boots it.
    qemu-user-static binfmt-support qemu-efi-aarch64
)
# The web UI's noVNC and xterm.js come from the npm registry: Debian's npm when none is installed.
command -v npm >/dev/null || PACKAGES+=(npm)
missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # confold/confdef: a changed /etc/libvirt/qemu.conf must not stop apt at a prompt.
    apt-get install -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"
fi
# The aarch64 tiny guest is built from arm64 packages, downloaded, never installed.
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    say "adding the arm64 architecture to apt (for the aarch64 guest image)"
    dpkg --add-architecture arm64
    apt-get update -q
fi
if ! apt-cache policy busybox-static:arm64 | grep -q 'Candidate: [0-9]'; then
    apt-get update -q
fi

# binfmt-support registers qemu-user-static's handlers when it is installed, if binfmt_misc is mounted
# then (no systemd here mounts it): make sure both hold for an arm64 image build later.
if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null ||
        say "warning: cannot mount binfmt_misc: the arm64 Debian image cannot be built on this host"
fi
if [ -e /proc/sys/fs/binfmt_misc/status ] && ! grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null; then
    update-binfmts --enable qemu-aarch64 ||
        say "warning: no qemu-aarch64 binfmt handler: the arm64 Debian image cannot be built on this host"
fi

say "starting virtlogd and libvirtd"
if [ -d /run/systemd/system ]; then
    systemctl start virtlogd.socket libvirtd.service
else
    mkdir -p /var/log/libvirt /var/log/libvirt/qemu /run/libvirt
    pgrep -x virtlogd >/dev/null || virtlogd -d
    pgrep -x libvirtd >/dev/null || libvirtd -d
fi
for _ in $(seq 1 50); do
    virsh -c qemu:///system version >/dev/null 2>&1 && break
    sleep 0.2
done
virsh -c qemu:///system version >/dev/null

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    say "creating .venv"
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.vmdeck-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    say "installing vmdeck and its pinned dependencies into .venv"
    .venv/bin/pip install -q --disable-pip-version-check -e ".[${VMDECK_EXTRAS:-test}]"
    touch "$stamp"
fi
# An editable install leaves vmdeck's own modules uncompiled, and with PYTHONDONTWRITEBYTECODE set
# (as on these machines) every command would compile them again: ~20 ms on `vmdeck list`, ~160 ms on
# `vmdeck create`. Python reads the bytecode written here even when it may not write any itself.
.venv/bin/python -m compileall -q src >/dev/null

say "vendoring the web UI's browser libraries (pinned npm packages)"
bash scripts/fetch-web-assets.sh

say "building the tiny guest images (cached)"
.venv/bin/vmdeck image build tiny --arch x86_64
if [ "${VMDECK_SKIP_ARM64:-0}" != "1" ]; then
    .venv/bin/vmdeck image build tiny --arch aarch64
fi

say "building the Debian 12 cloud image (cached in the image library; a few minutes the first time)"
# x86_64 only: the arm64 image (debian-12-arm64) takes far longer under qemu-user and no test needs it.
.venv/bin/vmdeck image build debian-12
say "host ready"
