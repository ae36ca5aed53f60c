"""The tiny guest image boots on a bare qemu-system command line (no libvirt):
ready marker on the serial console, the guest agent answers and runs commands,
and the ACPI power button powers it off."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from itest_support import wait_for

from vmdeck.images import GuestImage, build_tiny

# Upper bounds for a loaded machine, never expectations (see _boot).
BOOT_BOUND_S = 600
AGENT_BOUND_S = 120

pytestmark = pytest.mark.integration


class Guest:
    def __init__(self, arch: str, proc: subprocess.Popen[bytes], qga: Path, mon: Path) -> None:
        self.arch = arch
        self.proc = proc
        self.serial = bytearray()
        self.ready = threading.Event()
        self.qga_path, self.mon_path = qga, mon
        self._f = None
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.serial += line
            if line.strip() == b"VMDECK-READY":
                self.ready.set()

    def qga(self, cmd: str, **args: object) -> object:
        if self._f is None:
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(AGENT_BOUND_S)
            s.connect(str(self.qga_path))
            self._f = s.makefile("rwb")
        msg: dict[str, object] = {"execute": cmd}
        if args:
            msg["arguments"] = args
        self._f.write(json.dumps(msg).encode() + b"\n")
        self._f.flush()
        while True:
            r = json.loads(self._f.readline())
            if "error" in r:
                raise AssertionError(f"{cmd}: {r['error']}")
            if "return" in r:
                return r["return"]

    def sh(self, command: str, timeout: float = AGENT_BOUND_S) -> tuple[int, str]:
        pid = self.qga("guest-exec", path="/bin/sh", arg=["-c", command], **{"capture-output": True})["pid"]  # type: ignore[index]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.qga("guest-exec-status", pid=pid)
            if st["exited"]:  # type: ignore[index]
                return st["exitcode"], base64.b64decode(st.get("out-data", "")).decode()  # type: ignore[index,union-attr]
            time.sleep(0.1)
        raise AssertionError(f"guest command did not finish: {command}")

    def monitor(self, command: str) -> None:
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(self.mon_path))
        s.sendall(command.encode() + b"\n")
        time.sleep(0.2)
        s.close()


def _qemu_cmd(img: GuestImage, qga: Path, mon: Path) -> list[str]:
    if img.arch == "x86_64":
        base = ["qemu-system-x86_64", "-machine", "q35,accel=tcg"]
    else:
        base = ["qemu-system-aarch64", "-machine", "virt,accel=tcg", "-cpu", "cortex-a57"]
    return base + [
        "-m",
        "256",
        "-smp",
        "2",
        "-nodefaults",
        "-no-user-config",
        "-kernel",
        str(img.kernel),
        "-initrd",
        str(img.initrd),
        "-append",
        img.cmdline,
        "-display",
        "none",
        "-serial",
        "stdio",
        "-monitor",
        f"unix:{mon},server=on,wait=off",
        "-device",
        "virtio-serial-pci",
        "-chardev",
        f"socket,path={qga},server=on,wait=off,id=qga0",
        "-device",
        "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
        "-netdev",
        "user,id=n0",
        "-device",
        "virtio-net-pci,netdev=n0",
        "-no-reboot",
    ]


def _boot(arch: str, tmp_path: Path) -> Iterator[tuple[Guest, float]]:
    img = build_tiny(arch)
    qga, mon = tmp_path / "qga.sock", tmp_path / "mon.sock"
    t0 = time.monotonic()
    proc = subprocess.Popen(
        _qemu_cmd(img, qga, mon), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    guest = Guest(arch, proc, qga, mon)
    try:
        # Wait on the marker itself; the bound only catches a guest that never comes up (it is
        # reached in seconds on a quiet host, but a loaded 2-core machine has taken over 45 s).
        deadline = time.monotonic() + BOOT_BOUND_S
        while not guest.ready.wait(1.0) and proc.poll() is None and time.monotonic() < deadline:
            pass
        assert guest.ready.is_set(), (
            f"no {img.ready_marker} (QEMU exit code {proc.poll()}) within {BOOT_BOUND_S} s:\n"
            f"{guest.serial[-3000:].decode(errors='replace')}"
        )
        yield guest, time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


@pytest.fixture(scope="module", params=["x86_64", "aarch64"])
def booted(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Guest, float]]:
    arch = request.param
    # No skips: scripts/setup-host.sh installs both QEMUs, and _boot builds the image if it is missing.
    yield from _boot(arch, tmp_path_factory.mktemp(f"tiny-{arch}"))


def test_ready_marker_and_boot_id(booted: tuple[Guest, float]) -> None:
    guest, seconds = booted
    print(f"boot-to-ready {seconds:.1f} s")
    lines = guest.serial.decode(errors="replace").splitlines()
    assert "VMDECK-READY" in [ln.strip() for ln in lines]
    boot_ids = [ln.split()[1] for ln in lines if ln.startswith("VMDECK-BOOT-ID ")]
    assert len(boot_ids) == 1 and len(boot_ids[0]) == 36
    code, out = guest.sh("cat /proc/sys/kernel/random/boot_id")
    assert code == 0 and out.strip() == boot_ids[0]


def test_agent_exec_hostname_and_network(booted: tuple[Guest, float]) -> None:
    guest, _ = booted
    assert guest.qga("guest-sync", id=4242) == 4242
    assert guest.qga("guest-get-host-name") == {"host-name": "tiny"}
    code, out = guest.sh("echo out; uname -m; exit 3")
    assert code == 3 and out.split() == ["out", guest.arch]

    def addresses() -> list[str]:
        ifaces = {i["name"]: i for i in guest.qga("guest-network-get-interfaces")}  # type: ignore[union-attr]
        return [a["ip-address"] for a in ifaces["eth0"].get("ip-addresses", [])]

    # Ready does not mean addressed: the guest's DHCP may still be running on a loaded machine.
    assert wait_for(lambda: "10.0.2.15" in addresses(), timeout=AGENT_BOUND_S)


def test_drivers_loaded_and_cdrom_stack_present(booted: tuple[Guest, float]) -> None:
    guest, _ = booted
    code, out = guest.sh("cat /proc/modules | cut -d' ' -f1; grep -w iso9660 /proc/filesystems; ls /sys/block")
    mods = set(out.split())
    assert code == 0
    assert {"virtio_pci", "virtio_net", "virtio_console", "sr_mod", "isofs", "evdev"} <= mods
    if guest.arch == "x86_64":
        assert "button" in mods  # ACPI power button (built in on arm64)
    assert "iso9660" in out


def test_acpi_power_button_powers_off(booted: tuple[Guest, float]) -> None:
    guest, _ = booted
    t0 = time.monotonic()
    guest.monitor("system_powerdown")
    guest.proc.wait(AGENT_BOUND_S)
    assert guest.proc.returncode == 0
    print(f"power button to exit {time.monotonic() - t0:.1f} s")
