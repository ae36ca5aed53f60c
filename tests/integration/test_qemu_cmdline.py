"""`vmdeck show NAME --qemu-cmdline`: the running QEMU's command line, the same as the host's /proc says
(real libvirtd, the shared tiny guest), one option per line; a VM that does not run is a clear error."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from itest_support import VMDECK

from vmdeck.host.connection import Host
from vmdeck.hostview.process import read_libvirt_record


def test_the_command_line_is_the_one_in_proc(shared_vm: str) -> None:
    record = read_libvirt_record(shared_vm)
    assert record is not None and record.pid
    in_proc = [a.decode() for a in Path(f"/proc/{record.pid}/cmdline").read_bytes().split(b"\0") if a]
    shown = subprocess.run([*VMDECK, "show", shared_vm, "--qemu-cmdline", "--json"], capture_output=True,
                           text=True, check=True)
    assert json.loads(shown.stdout) == {"name": shared_vm, "pid": record.pid, "qemu_cmdline": in_proc}
    text = subprocess.run([*VMDECK, "show", shared_vm, "--qemu-cmdline"], capture_output=True, text=True,
                          check=True).stdout.splitlines()
    assert text[0] == in_proc[0]
    assert f"-name guest={shared_vm},debug-threads=on" in text
    assert all(line.startswith("-") for line in text[1:])


def test_a_vm_that_does_not_run_has_no_command_line(host: Host, vm_factory) -> None:  # type: ignore[no-untyped-def]
    name = vm_factory(start=False)
    failed = subprocess.run([*VMDECK, "show", name, "--qemu-cmdline"], capture_output=True, text=True)
    assert failed.returncode == 4
    assert "it is shut off" in failed.stderr and failed.stderr.count("\n") == 1
