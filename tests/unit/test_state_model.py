"""One state model: the predicates of vmdeck.vm.state.VmState, sent to the pages as `can`; no core module keeps
a set of state names of its own."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import vmdeck
from vmdeck.vm.state import VmState, capabilities

PACKAGE = Path(vmdeck.__file__).parent
NAMES = {str(s) for s in VmState}


@pytest.mark.parametrize(("state", "expected"), [
    ("running", {"active": True, "console": True, "migrate_live": True, "migrate_offline": False, "snapshot": True,
                 "snapshot_memory": True, "sample": True}),
    ("blocked", {"active": True, "console": True, "migrate_live": True, "migrate_offline": False, "snapshot": True,
                 "snapshot_memory": True, "sample": True}),
    # Paused still has its QEMU: the screen, a live migration and a snapshot work (as the code always did).
    ("paused", {"active": True, "console": True, "migrate_live": True, "migrate_offline": False, "snapshot": True,
                "snapshot_memory": True, "sample": True}),
    ("shut off", {"active": False, "console": False, "migrate_live": False, "migrate_offline": True,
                  "snapshot": True, "snapshot_memory": False, "sample": False}),
    ("crashed", {"active": False, "console": False, "migrate_live": False, "migrate_offline": True,
                 "snapshot": False, "snapshot_memory": False, "sample": False}),
    ("shutting down", {"active": True, "console": False, "migrate_live": False, "migrate_offline": False,
                       "snapshot": False, "snapshot_memory": False, "sample": False}),
    ("something new", {"active": False, "console": False, "migrate_live": False, "migrate_offline": False,
                       "snapshot": False, "snapshot_memory": False, "sample": False}),
])
def test_capabilities(state: str, expected: dict[str, bool]) -> None:
    assert capabilities(state) == expected


def _state_sets(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.Set, ast.Tuple, ast.List)) and len(node.elts) >= 2:
            values = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
            if len(values) == len(node.elts) and set(values) <= NAMES:
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    return found


def test_no_core_module_keeps_its_own_set_of_state_names() -> None:
    core = [p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[0] not in ("cli", "api", "web")
            and p.relative_to(PACKAGE).as_posix() not in ("vm/state.py", "host/libvirt_api.py")]
    assert [hit for path in core for hit in _state_sets(path)] == []


def test_migrate_js_reads_the_capabilities_not_the_state() -> None:
    script = (PACKAGE / "web" / "static" / "js" / "migrate.js").read_text()
    assert "can.migrate_live" in script
    assert not any(f"'{name}'" in script for name in NAMES)
