"""Golden before/after files for every edit vmdeck makes to existing XML (like the render goldens).

Each case reads tests/unit/data/golden/edits/<case>-in.xml, applies one edit and compares with
<case>-out.xml, so a change in what an edit keeps or drops shows as a diff in review. Whole
domains that come out are also defined on libvirt's test driver: libvirt itself accepts them.
Regenerate the -out files after an intended change with:
    VMDECK_REGENERATE=1 .venv/bin/pytest tests/unit/test_edit_golden.py
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from testdriver import open_test_host
from vmdeck.domxml import devices as dx
from vmdeck.domxml.edit import set_resources
from vmdeck.domxml.parse import parse_domain

EDITS = Path(__file__).parent / "data" / "golden" / "edits"

CASES: dict[str, Callable[[str], str]] = {
    "set-resources": lambda xml: set_resources(xml, vcpus=4, memory_mib=1024),
    "add-root-ports": lambda xml: dx.add_root_ports(xml, 2),
    "insert-media": lambda xml: dx.with_media(xml, "/var/lib/vmdeck/isos/debian-12.iso"),
    "eject-media": lambda xml: dx.with_media(xml, None),
    "owned-volume-add": lambda xml: dx.with_owned_volume(xml, add="/var/lib/vmdeck/pool/web1-vdb.qcow2"),
    "owned-volume-remove": lambda xml: dx.with_owned_volume(xml, remove="/var/lib/vmdeck/pool/web1-vda.qcow2"),
}
DOMAINS = ("set-resources", "add-root-ports")


def _compare(case: str, actual: str) -> None:
    path = EDITS / f"{case}-out.xml"
    actual = actual.rstrip("\n") + "\n"
    if os.environ.get("VMDECK_REGENERATE"):
        path.write_text(actual)
    if not path.exists():  # a missing golden file is a failure, never a new golden that passes
        pytest.fail(f"no golden file {path}: run with VMDECK_REGENERATE=1 once and review it")
    expected = path.read_text()
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True), str(path), "edited"))
        pytest.fail(f"edited XML differs from the golden file:\n{diff}")


@pytest.mark.parametrize("case", sorted(CASES))
def test_edit_matches_golden(case: str) -> None:
    _compare(case, CASES[case]((EDITS / f"{case}-in.xml").read_text()))


def test_edits_keep_what_vmdeck_does_not_model() -> None:
    after = (EDITS / "set-resources-out.xml").read_text()
    assert "billing: team-a" in after and "i6300esb" in after
    assert "<topology" not in after  # a stale topology would contradict the new vCPU count
    view = parse_domain(after)
    assert (view.vcpus, view.memory_mib, view.current_memory_mib) == (4, 1024, 1024)
    inserted = (EDITS / "insert-media-out.xml").read_text()
    assert 'alias name="sata0-0-1"' in inserted and "debian-12.iso" in inserted
    assert "<source" not in (EDITS / "eject-media-out.xml").read_text()
    owned = (EDITS / "owned-volume-add-out.xml").read_text()
    assert owned.count("<owned-volume>") == 2 and "<template>q35-virtio</template>" in owned


@pytest.mark.parametrize("case", DOMAINS)
def test_edited_domains_are_accepted_by_libvirt(case: str, tmp_path: Path) -> None:
    xml = (EDITS / f"{case}-out.xml").read_text().replace("type=\"qemu\"", "type=\"test\"", 1)
    with open_test_host(tmp_path) as host:
        dom = host.conn.define(xml, validate=True)
        assert parse_domain(dom.xml(inactive=True)).name == "golden"
