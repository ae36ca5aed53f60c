"""Screen, keyboard, mouse and consoles of a real VM: effects read back inside the guest.

One VM for the whole module (created here, deleted at the end); Ctrl+Alt+Del,
which reboots it, runs last.
"""

from __future__ import annotations

import base64
import json
import os
import pty
import re
import select
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from itest_support import PREFIX, wait_for

from vmdeck.console.screen import decode_png_rgb, png_size
from vmdeck.host.connection import Host
from vmdeck.spec.templates import resolve
from vmdeck.vm import lifecycle
from vmdeck.vm.create import create_vm

BOOT_ID = "cat /proc/sys/kernel/random/boot_id"


@pytest.fixture(scope="module")
def vm(host: Host) -> Iterator[str]:
    name = f"{PREFIX}console-{uuid.uuid4().hex[:6]}"
    create_vm(host, resolve("tiny", name))
    try:
        lifecycle.start(host, name, wait=True, timeout=600)
        yield name
    finally:
        lifecycle.delete(host, name, force=True)


def _shot(cli: Callable, vm: str, path: Path) -> bytes:
    result = cli("screenshot", vm, "-o", path)
    assert result.returncode == 0, result.stderr
    return path.read_bytes()


def test_screenshot_is_a_png_of_the_screen_and_follows_it(vm: str, cli: Callable, run_in_guest: Callable,
                                                          tmp_path: Path) -> None:
    first = _shot(cli, vm, tmp_path / "a.png")
    width, height, rgb = decode_png_rgb(first)
    # The std VGA in text mode: 80x25 cells of 9x16 pixels.
    assert (width, height) == (720, 400) == png_size(first)
    colours = {rgb[i:i + 3] for i in range(0, len(rgb), 3)}
    assert len(colours) >= 2  # text on a background: not blank
    marker = "VMDECK-SCREEN-" + uuid.uuid4().hex[:8]
    assert run_in_guest(vm, f"clear > /dev/tty1; echo {marker} > /dev/tty1").exit_code == 0
    second = wait_for(lambda: (s := _shot(cli, vm, tmp_path / "b.png")) != first and s)
    assert decode_png_rgb(second)[2] != rgb


def test_type_runs_a_command_on_the_vga_console(vm: str, cli: Callable, run_in_guest: Callable) -> None:
    token = uuid.uuid4().hex[:8]
    # Upper case and shifted symbols prove the shift state: $((6*7)) and "_" need Shift.
    typed = cli("type", vm, f"echo Typed_{token}_$((6*7)) > /tmp/typed.txt\\n")
    assert typed.returncode == 0, typed.stderr
    content = wait_for(lambda: run_in_guest(vm, "cat /tmp/typed.txt").stdout.decode().strip(), timeout=60)
    assert content == f"Typed_{token}_42"


def test_mouse_moves_and_clicks_through_the_tablet(vm: str, cli: Callable, run_in_guest: Callable) -> None:
    # Record the virtio tablet's evdev events in the guest while vmdeck moves and clicks.
    devices = run_in_guest(vm, "cat /proc/bus/input/devices").stdout.decode()
    block = next(b for b in devices.split("\n\n") if "Tablet" in b)
    event = re.search(r"event\d+", block).group(0)
    start = run_in_guest(vm, f"cat /dev/input/{event} > /tmp/ev </dev/null 2>/dev/null & echo started")
    assert start.exit_code == 0
    # Events sent before cat has the device open are lost: wait until it has (a while on a loaded machine).
    wait_for(lambda: run_in_guest(vm, f"ls -l /proc/*/fd 2>/dev/null | grep -q '/dev/input/{event}$'").exit_code == 0)
    assert cli("mouse", vm, "move", "360", "200").returncode == 0
    assert cli("mouse", vm, "click", "left").returncode == 0

    def events() -> list[tuple[int, int, int]]:
        raw = base64.b64decode(run_in_guest(vm, "base64 /tmp/ev").stdout)
        return [struct.unpack("qqHHi", raw[i:i + 24])[2:] for i in range(0, len(raw) - 23, 24)]

    got = wait_for(lambda: (e := events()) and (1, 0x110, 0) in e and e)
    # EV_ABS X/Y: pixel (360, 200) of 720x400 scaled to QEMU's 0..32767 axis; BTN_LEFT down then up.
    assert (3, 0, round(360 * 32767 / 719)) in got and (3, 1, round(200 * 32767 / 399)) in got
    assert got.index((1, 0x110, 1)) < got.index((1, 0x110, 0))
    run_in_guest(vm, "kill $(pidof cat) 2>/dev/null; true")


# Run as `nobody` (no groups): what any other local user could do. The system Python: root's may live
# in a folder nobody cannot read.
_AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "/usr/bin/python3", "-c"]
_CONNECT = """
import socket, sys
try:
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(10)
    sock.connect(sys.argv[1])
    print("CONNECTED", sock.recv(12))
except OSError as err:
    print("REFUSED", type(err).__name__)
"""


def _qemu_tcp_listeners(name: str) -> list[int]:
    """The TCP ports the VM's QEMU process listens on (its socket inodes against /proc/net/tcp*)."""
    pid = int(Path(f"/run/libvirt/qemu/{name}.pid").read_text())
    inodes = {os.readlink(fd)[8:-1] for fd in Path(f"/proc/{pid}/fd").iterdir()
              if os.readlink(fd).startswith("socket:[")}
    ports = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            if fields[3] == "0A" and fields[9] in inodes:
                ports.append(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def test_display_is_a_socket_only_root_reaches(vm: str, cli: Callable) -> None:
    """VNC has no password: another local user must not reach any VM's screen (a port on 127.0.0.1 would)."""
    shown = cli("display", vm, "--json")
    assert shown.returncode == 0, shown.stderr
    info = json.loads(shown.stdout)
    assert info["listen"] == "socket" and info["port"] is None and info["websocket"] is None
    assert info["socket"].startswith("/var/lib/libvirt/qemu/") and info["loopback_only"]
    assert "virt-viewer --connect" in cli("display", vm).stdout
    with socket.socket(socket.AF_UNIX) as vnc:  # root, as vmdeck serve's console proxy
        vnc.settimeout(10)
        vnc.connect(info["socket"])
        assert vnc.recv(12) == b"RFB 003.008\n"
    other = subprocess.run([*_AS_NOBODY, _CONNECT, info["socket"]], capture_output=True, text=True, timeout=60)
    assert other.stdout.strip() == "REFUSED PermissionError", (other.stdout, other.stderr)
    # And no TCP port of this VM's QEMU for anyone to try (the VNC port and its websocket are gone).
    assert _qemu_tcp_listeners(vm) == []


def test_serial_console_runs_a_command_and_ctrl_bracket_leaves(vm: str) -> None:
    pid, fd = pty.fork()
    if pid == 0:  # the child: the real `vmdeck console` on a terminal
        try:
            os.execv(sys.executable, [sys.executable, "-m", "vmdeck.cli.main", "console", vm])
        finally:
            os._exit(127)
    output = b""

    # A generous bound: a freshly started CLI (and the guest's shell) may take minutes on a loaded machine.
    def read_until(token: bytes, timeout: float = 180) -> bool:
        nonlocal output
        deadline = time.monotonic() + timeout
        while token not in output and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.5)[0]:
                try:
                    output += os.read(fd, 4096)
                except OSError:
                    break
        return token in output

    try:
        assert read_until(b"Ctrl+] leaves"), output
        # Just after boot the serial shell may still be starting (and flushes what was typed
        # before it ran): wait for its prompt, as a person would, before typing the command.
        for _ in range(10):
            os.write(fd, b"\r")
            if read_until(b"# ", timeout=3):
                break
        os.write(fd, b"echo SERIAL$((40+2))OK\r")
        assert read_until(b"SERIAL42OK"), output
        os.write(fd, b"\x1d")
        assert read_until(b"detached"), output
    finally:
        # Never hang on a console that did not leave: give it up to 60 s (a loaded machine), then end it.
        for _ in range(600):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.1)
        else:
            os.kill(pid, 9)
            _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0


def test_ctrl_alt_delete_reboots_the_guest(vm: str, cli: Callable, run_in_guest: Callable) -> None:
    before = run_in_guest(vm, BOOT_ID).stdout.decode().strip()
    sent = cli("send-keys", vm, "ctrl-alt-delete")
    assert sent.returncode == 0, sent.stderr
    after = wait_for(lambda: (b := run_in_guest(vm, BOOT_ID, timeout=5).stdout.decode().strip()) != before and b,
                     timeout=180)
    assert re.fullmatch(r"[0-9a-f-]{36}", after)
