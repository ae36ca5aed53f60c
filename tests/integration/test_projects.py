"""A VM's project lives in its libvirt metadata on a real libvirtd: `virsh dumpxml` shows it, it
survives the VM running (live and saved definition), adopting moves it, other tools' edits survive."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

from vmdeck.host.connection import Host
from vmdeck.vm.project import project_of, project_usage, vm_projects

URI = ["--connect", "qemu:///system"]
PREFIX = f"vmdeck-test-{os.getpid()}-"  # the integration fixtures' prefix: a stale one is cleaned up


def _dumpxml(name: str, *flags: str) -> str:
    return subprocess.run(["virsh", *URI, "dumpxml", *flags, name], check=True, capture_output=True, text=True,
                          timeout=60).stdout


def test_project_metadata_with_virsh_and_the_admin_cli(host: Host, cli: Callable, tmp_path: Path,
                                                       monkeypatch) -> None:  # type: ignore[no-untyped-def]
    name = f"{PREFIX}proj-{uuid.uuid4().hex[:6]}"
    monkeypatch.setenv("VMDECK_DB", str(tmp_path / "web.sqlite"))  # the cli fixture passes the environment on
    try:
        made = cli("create", name, "--template", "q35-virtio", "--memory", "128", "--disk", "0.1",
                   "--project", "acme", "--json")
        assert made.returncode == 0, made.stderr
        assert "<vmdeck:project>acme</vmdeck:project>" in _dumpxml(name, "--inactive")
        assert project_of(host, name) == "acme" and vm_projects(host)[name] == "acme"
        usage = project_usage(host, "acme")
        assert (usage.instances, usage.vcpus, usage.memory_mib, usage.vms) == (1, 2, 128, (name,))  # q35-virtio: 2 vCPUs
        assert abs(usage.disk_gib - 0.1) < 0.01
        # Another tool's metadata edit survives an adoption into another project.
        subprocess.run(["virt-xml", *URI, name, "--edit", "--metadata", "description=billing: team-a"],
                       check=True, capture_output=True, timeout=60)
        moved = cli("vm", "adopt", name, "--project", "ops")
        assert moved.returncode == 0 and "was acme" in moved.stdout, moved.stderr
        xml = _dumpxml(name, "--inactive")
        assert "<vmdeck:project>ops</vmdeck:project>" in xml and "billing: team-a" in xml
        assert "owned-volume" in xml  # vmdeck's other metadata fields are kept
        shown = cli("project", "show", "ops", "--json")
        assert shown.returncode == 0 and name in shown.stdout
        assert cli("project", "delete", "ops").returncode == 4  # it still has a VM
    finally:
        cli("delete", name, "--force")
    assert not host.exists(name)
