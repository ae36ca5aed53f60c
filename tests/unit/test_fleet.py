"""Fleet-wide queries under a deadline: a silent host is reported, the others still answer.

The hosts are libvirt's test driver (each `test://<node.xml>` its own fake host), a loopback port
that refuses connections, and a loopback listener that accepts and then never says a word (a hung
libvirtd, as far as the client can tell).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.testdriver import fake_host_uri

from serving import free_port
from vmdeck.cluster.fleet import Fleet
from vmdeck.cluster.inventory import capacities, list_everywhere
from vmdeck.cluster.registry import HostEntry, Registry
from vmdeck.cluster.resolve import locate
from vmdeck.errors import Conflict, HostError, NotFound


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port on loopback that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    yield listener.getsockname()[1]
    listener.close()


def test_silent_and_refusing_hosts_do_not_hide_the_others(tmp_path: Path, silent_port: int) -> None:
    entries = [HostEntry("a", fake_host_uri(tmp_path, "a")), HostEntry("b", fake_host_uri(tmp_path, "b")),
               HostEntry("silent", f"qemu+tcp://127.0.0.1:{silent_port}/system"),
               HostEntry("refusing", f"qemu+tcp://127.0.0.1:{free_port()}/system")]
    # 5 s deadlines: the silent host costs one each, and the answering hosts (test drivers, in-process)
    # must answer within it even on a loaded machine.
    with Fleet(entries, connect_timeout=5.0, call_timeout=5.0) as fleet:
        listed = list_everywhere(fleet, deadline=5.0)
        assert [(vm.name, vm.host) for vm in listed.vms] == [("busy-a", "a"), ("busy-b", "b")]
        assert listed.unreachable["silent"] == "host silent did not answer within 5 s"
        assert "Connection refused" in listed.unreachable["refusing"]
        caps = {c.name: c for c in capacities(fleet, deadline=5.0)}
        assert caps["a"].reachable and caps["a"].pcpus == 4 and caps["a"].memory_allocated_mib == 256
        assert not caps["silent"].reachable and "did not answer" in caps["silent"].reason


def test_resolver_finds_the_vms_host(tmp_path: Path, silent_port: int) -> None:
    entries = [HostEntry("a", fake_host_uri(tmp_path, "a")), HostEntry("b", fake_host_uri(tmp_path, "b"))]
    # 10 s deadlines (5 + 5 s): the answering hosts must answer within them even on a loaded machine.
    with Fleet(entries, connect_timeout=5.0, call_timeout=5.0) as fleet:
        entry, host = locate(fleet, "busy-b")
        assert entry.name == "b" and host.exists("busy-b")
        with pytest.raises(NotFound, match="no VM named 'nope' on any host \\(a, b\\)"):
            locate(fleet, "nope")
    # The same name on two hosts (VMs made outside vmdeck): the user must say which.
    twin = tmp_path / "twin.xml"
    twin.write_text(Path(entries[0].connect_uri.removeprefix("test://")).read_text())
    with Fleet([*entries, HostEntry("twin", f"test://{twin}")], connect_timeout=5.0, call_timeout=5.0) as fleet:
        with pytest.raises(Conflict, match="on several hosts \\(a, twin\\): name one with --host"):
            locate(fleet, "busy-a")
        assert locate(fleet, "busy-a", host="twin")[0].name == "twin"
    # A VM that may be on a host that does not answer: not "not found", but "that host was not asked".
    with Fleet([*entries, HostEntry("silent", f"qemu+tcp://127.0.0.1:{silent_port}/system")],
               connect_timeout=3.0, call_timeout=2.0) as fleet:
        with pytest.raises(HostError, match="not asked: silent"):
            locate(fleet, "nope")


def test_cli_list_and_show_across_hosts(tmp_path: Path) -> None:
    registry = Registry()  # the test's own database (VMDECK_DB, tests/conftest.py)
    registry.remove("local")
    registry.add(HostEntry("a", fake_host_uri(tmp_path, "a")))
    registry.add(HostEntry("b", fake_host_uri(tmp_path, "b")))
    vmdeck = [sys.executable, "-m", "vmdeck.cli.main"]
    listed = subprocess.run([*vmdeck, "list"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "COLUMNS": "200"})
    assert listed.returncode == 0, listed.stderr
    rows = [line.split() for line in listed.stdout.splitlines()[1:]]
    assert [(row[0], row[-1]) for row in rows] == [("busy-a", "a"), ("busy-b", "b")]
    shown = subprocess.run([*vmdeck, "show", "busy-b", "--json"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and '"name": "busy-b"' in shown.stdout, shown.stderr
    missing = subprocess.run([*vmdeck, "show", "nope"], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 3 and "no VM named 'nope' on any host (a, b)" in missing.stderr


def test_cli_list_with_one_silent_remote_host_still_answers(silent_port: int) -> None:
    """Only `local` goes straight to libvirt: a single remote host is asked under the deadline too."""
    registry = Registry()
    registry.remove("local")
    registry.add(HostEntry("far", f"qemu+tcp://127.0.0.1:{silent_port}/system"))
    listed = subprocess.run([sys.executable, "-m", "vmdeck.cli.main", "list", "--deadline", "1"],
                            capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200"})
    assert listed.returncode == 0, listed.stderr
    assert "host far unreachable: host far did not answer within 1 s" in listed.stdout
