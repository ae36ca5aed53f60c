"""Fixtures for tests against the real local libvirtd and QEMU (TCG) with the tiny guest.

One running tiny VM (`shared_vm`) is booted once per test session and shared by
every test that only reads it; tests that change a VM make their own with
`vm_factory`, which deletes what it made. Test VMs are named `vmdeck-test-*`.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from itest_support import PREFIX, READY_TIMEOUT_S, VMDECK, delete_vm

from vmdeck.host.connection import Host, connect
from vmdeck.spec.templates import Overrides, resolve
from vmdeck.vm import lifecycle
from vmdeck.vm.agent import ExecResult, guest_exec
from vmdeck.vm.create import create_vm


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def host() -> Iterator[Host]:
    with connect("qemu:///system") as opened:
        yield opened


@pytest.fixture(scope="session", autouse=True)
def _no_leftover_test_vms(host: Host) -> Iterator[None]:
    """Remove test VMs an earlier, interrupted run left behind (and ours at the end)."""
    for dom in host.conn.raw.listAllDomains(0):
        parts = dom.name().split("-")
        if dom.name().startswith("vmdeck-test-") and len(parts) > 2 and parts[2].isdigit():
            if not Path(f"/proc/{parts[2]}").exists():
                delete_vm(host, dom.name())
    yield
    for dom in host.conn.raw.listAllDomains(0):
        if dom.name().startswith(PREFIX):
            delete_vm(host, dom.name())


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
        delete_vm(host, name)


@pytest.fixture(scope="session")
def shared_vm(host: Host) -> Iterator[str]:
    """A running tiny VM with 2 vCPUs and 256 MiB, shared by read-only tests. Do not change it."""
    name = f"{PREFIX}shared-{uuid.uuid4().hex[:6]}"
    create_vm(host, resolve("tiny", name, Overrides(vcpus=2, memory_mib=256)))
    lifecycle.start(host, name, wait=True, timeout=READY_TIMEOUT_S)
    yield name
    delete_vm(host, name)


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
