"""Fixtures for tests against the real local libvirtd and QEMU (TCG) with the tiny guest.

One running tiny VM (`shared_vm`) is booted once per test session and shared by
every test that only reads it; tests that change a VM make their own with
`vm_factory`, which deletes what it made. Test VMs are named `vmdeck-test-*`.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vmdeck.errors import NotFound
from vmdeck.host.connection import Host, connect
from vmdeck.spec.templates import Overrides, resolve
from vmdeck.vm import lifecycle
from vmdeck.vm.agent import ExecResult, guest_exec
from vmdeck.vm.create import create_vm

# The pid in the name tells this run's VMs from those of a concurrent run (another engineer's)
# and from leftovers of a dead one, which are the only ones cleaned up at start.
PREFIX = f"vmdeck-test-{os.getpid()}-"
VMDECK = [sys.executable, "-m", "vmdeck.cli.main"]
# An upper bound, not an expectation: the tiny guest is ready in seconds on a quiet host, but a
# loaded 2-core machine running TCG guests side by side can take minutes; the wait ends on the
# ready marker itself.
READY_TIMEOUT_S = 600


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def host() -> Iterator[Host]:
    with connect("qemu:///system") as opened:
        yield opened


def _cleanup(host: Host, name: str) -> None:
    with contextlib.suppress(NotFound):
        lifecycle.delete(host, name, force=True)


@pytest.fixture(scope="session", autouse=True)
def _no_leftover_test_vms(host: Host) -> Iterator[None]:
    """Remove test VMs an earlier, interrupted run left behind (and ours at the end)."""
    for dom in host.conn.raw.listAllDomains(0):
        parts = dom.name().split("-")
        if dom.name().startswith("vmdeck-test-") and len(parts) > 2 and parts[2].isdigit():
            if not Path(f"/proc/{parts[2]}").exists():
                _cleanup(host, dom.name())
    yield
    for dom in host.conn.raw.listAllDomains(0):
        if dom.name().startswith(PREFIX):
            _cleanup(host, dom.name())


VmFactory = Callable[..., str]


@pytest.fixture
def vm_factory(host: Host) -> Iterator[VmFactory]:
    """make(template="tiny", start=True, **overrides) -> name of a fresh VM, deleted after the test."""
    made: list[str] = []

    def make(template: str = "tiny", *, start: bool = True, wait: bool = True, suffix: str = "",
             **overrides: object) -> str:
        name = f"{PREFIX}{suffix or template}-{uuid.uuid4().hex[:6]}"
        spec = resolve(template, name, Overrides(**overrides))  # type: ignore[arg-type]
        create_vm(host, spec)
        made.append(name)
        if start:
            lifecycle.start(host, name, wait=wait, timeout=READY_TIMEOUT_S)
        return name

    yield make
    for name in made:
        _cleanup(host, name)


@pytest.fixture(scope="session")
def shared_vm(host: Host) -> Iterator[str]:
    """A running tiny VM with 2 vCPUs and 256 MiB, shared by read-only tests. Do not change it."""
    name = f"{PREFIX}shared-{uuid.uuid4().hex[:6]}"
    create_vm(host, resolve("tiny", name, Overrides(vcpus=2, memory_mib=256)))
    lifecycle.start(host, name, wait=True, timeout=READY_TIMEOUT_S)
    yield name
    _cleanup(host, name)


@pytest.fixture
def run_in_guest(host: Host) -> Callable[..., ExecResult]:
    """run_in_guest(vm, "shell command") -> ExecResult, through the guest agent."""

    def run(vm: str, command: str, timeout: float = 60) -> ExecResult:
        return guest_exec(host.lookup(vm), ["/bin/sh", "-c", command], timeout=timeout)

    return run


@pytest.fixture
def cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """cli("show", "vm1", "--json") -> CompletedProcess of the real `vmdeck` command."""

    def run(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "COLUMNS": "200"}
        return subprocess.run([*VMDECK, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)

    return run
