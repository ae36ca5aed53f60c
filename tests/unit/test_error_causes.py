"""Specific libvirt errors are classified once, at the boundary (vmdeck.host.libvirt_api.classify), and no
core module reads libvirt's message text to tell them apart."""

from __future__ import annotations

import ast
from pathlib import Path

import libvirt
import pytest

import vmdeck
from vmdeck.host.libvirt_api import (
    AGENT_ABSENT,
    BLOCK_JOB_NOT_READY,
    NO_SPACE,
    POOL_BUSY,
    PROGRAM_MISSING,
    TRAY_LOCKED,
    classify,
)

PACKAGE = Path(vmdeck.__file__).parent


@pytest.mark.parametrize(("code", "text", "cause"), [
    (libvirt.VIR_ERR_INTERNAL_ERROR, "internal error: unable to execute QEMU command 'blockdev-open-tray': Device "
     "'ua-cd0' is locked and force was not specified, wait for tray to open and try again", TRAY_LOCKED),
    (libvirt.VIR_ERR_OPERATION_FAILED, "operation failed: timed out waiting to open tray of 'sda'", TRAY_LOCKED),
    (libvirt.VIR_ERR_SYSTEM_ERROR, "cannot allocate 1073741824 bytes in file '/p/x.qcow2': No space left on device",
     NO_SPACE),
    (libvirt.VIR_ERR_INTERNAL_ERROR, "storage pool 'vmdeck' has asynchronous jobs running.", POOL_BUSY),
    (libvirt.VIR_ERR_BLOCK_COPY_ACTIVE, "block copy still active: disk 'vda' not ready for pivot yet",
     BLOCK_JOB_NOT_READY),
    (libvirt.VIR_ERR_AGENT_UNRESPONSIVE, "Guest agent is not responding: QEMU guest agent is not connected",
     AGENT_ABSENT),
    (libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED, "argument unsupported: QEMU guest agent is not configured", AGENT_ABSENT),
    (libvirt.VIR_ERR_INTERNAL_ERROR, "internal error: unable to execute QEMU agent command 'guest-exec': Failed to "
     "execute child process “nope” (No such file or directory)", PROGRAM_MISSING),
    (libvirt.VIR_ERR_NO_DOMAIN, "Domain not found: no domain with matching name 'x'", None),
    (libvirt.VIR_ERR_OPERATION_INVALID, "Requested operation is not valid: domain is not running", None),
])
def test_classify(code: int, text: str, cause: str | None) -> None:
    assert classify(code, text) == cause


def test_no_core_module_reads_libvirts_words() -> None:
    """`"..." in str(err)` or a comparison on `.libvirt_text` outside the boundary is how meaning leaked."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).as_posix() == "host/libvirt_api.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Compare) or not any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops):
                continue
            for side in node.comparators:
                on_error = (isinstance(side, ast.Call) and isinstance(side.func, ast.Name) and side.func.id == "str"
                            and len(side.args) == 1 and isinstance(side.args[0], ast.Name)
                            and side.args[0].id in ("err", "error", "exc"))
                if on_error or (isinstance(side, ast.Attribute) and side.attr == "libvirt_text"):
                    offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert offenders == []
