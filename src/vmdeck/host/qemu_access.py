"""Can the QEMU process reach a file the user names? Checked before libvirt is asked (host layer).

libvirt runs QEMU as an unprivileged user (`user =` in /etc/libvirt/qemu.conf; Debian's
default is libvirt-qemu). With `dynamic_ownership` on (the default) libvirt chowns the
*file* to that user when the VM uses it, but never the folders above it: an ISO under a
0700 folder makes QEMU fail late with "blockdev-add: ... Permission denied". vmdeck checks
every folder on the way first, names the one QEMU cannot enter, and can grant the QEMU
user search permission with a POSIX ACL (`setfacl -m u:libvirt-qemu:x DIR`), as
virt-manager offers to do. Only local hosts are checked: a remote host's files are not ours
to stat.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import stat
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

from vmdeck.errors import HostError, InvalidInput
from vmdeck.host.connection import Host

__all__ = ["QemuUser", "AccessProblem", "qemu_user", "find_problems", "applies_to", "check_qemu_access",
           "grant_qemu_access"]

QEMU_CONF = Path("/etc/libvirt/qemu.conf")
# libvirt's compiled-in defaults on Debian (libvirt-daemon-system creates this user and group).
DEFAULT_USER = "libvirt-qemu"
DEFAULT_GROUP = "kvm"

_R, _W, _X = 4, 2, 1
# POSIX ACL xattr layout (linux/posix_acl_xattr.h): a u32 version, then (u16 tag, u16 perm, u32 id) entries.
_ACL_XATTR = "system.posix_acl_access"
_USER_OBJ, _USER, _GROUP_OBJ, _GROUP, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20


@dataclass(frozen=True)
class QemuUser:
    name: str
    uid: int
    groups: frozenset[int]
    dynamic_ownership: bool


@dataclass(frozen=True)
class AccessProblem:
    path: Path
    need: str  # "search" (a folder) or "read" / "read and write" (the file)
    mode: int
    owner: str

    def describe(self) -> str:
        what = "enter folder" if self.need == "search" else f"{self.need} file"
        return f"{what} {self.path} (mode {self.mode:04o}, owner {self.owner})"


def _conf_values(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        match = re.match(r'^\s*(user|group|dynamic_ownership)\s*=\s*"?([^"#\s]*)"?', line)
        if match:
            values[match.group(1)] = match.group(2)
    return values


def _lookup_user(spec: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwuid(int(spec[1:])) if spec.startswith("+") else pwd.getpwnam(spec)
    except (KeyError, ValueError):
        return None


def qemu_user(conf: Path = QEMU_CONF) -> QemuUser | None:
    """The user QEMU runs as on this host, or None when it cannot be known (no such user here)."""
    try:
        values = _conf_values(conf.read_text())
    except OSError:
        values = {}
    entry = _lookup_user(values.get("user", DEFAULT_USER))
    if entry is None:
        return None
    groups = {entry.pw_gid, *(g.gr_gid for g in grp.getgrall() if entry.pw_name in g.gr_mem)}
    group_spec = values.get("group", DEFAULT_GROUP)
    try:
        groups.add(int(group_spec[1:]) if group_spec.startswith("+") else grp.getgrnam(group_spec).gr_gid)
    except (KeyError, ValueError):
        pass
    return QemuUser(entry.pw_name, entry.pw_uid, frozenset(groups), values.get("dynamic_ownership", "1") != "0")


def _acl(path: Path) -> list[tuple[int, int, int]] | None:
    try:
        raw = os.getxattr(path, _ACL_XATTR)
    except OSError:
        return None
    return [struct.unpack_from("<HHI", raw, offset) for offset in range(4, len(raw) - 7, 8)]


def _allowed(user: QemuUser, st: os.stat_result, acl: list[tuple[int, int, int]] | None, want: int) -> bool:
    """The kernel's permission check (POSIX.1e ACLs included) for `user` on a file with `st`."""
    if user.uid == 0:
        return True
    mode = st.st_mode
    if user.uid == st.st_uid:
        return (mode >> 6) & want == want
    if acl is None:
        if st.st_gid in user.groups:
            return (mode >> 3) & want == want
        return mode & want == want
    mask = next((perm for tag, perm, _id in acl if tag == _MASK), 7)
    named = [perm for tag, perm, ident in acl if tag == _USER and ident == user.uid]
    if named:
        return named[0] & mask & want == want
    matched = [perm for tag, perm, ident in acl
               if (tag == _GROUP_OBJ and st.st_gid in user.groups) or (tag == _GROUP and ident in user.groups)]
    if matched:
        return any(perm & mask & want == want for perm in matched)
    return mode & want == want


def _owner(st: os.stat_result) -> str:
    try:
        return pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        return str(st.st_uid)


def find_problems(path: Path, user: QemuUser, *, write: bool = False) -> list[AccessProblem]:
    """Every folder above `path` the user cannot search, then the file itself if it cannot open it.

    With dynamic_ownership libvirt hands the file to the QEMU user itself, so only folders count.
    """
    path = Path(os.path.abspath(path))
    problems = []
    for folder in reversed(path.parents):
        st = folder.stat()
        if not _allowed(user, st, _acl(folder), _X):
            problems.append(AccessProblem(folder, "search", stat.S_IMODE(st.st_mode), _owner(st)))
    if not user.dynamic_ownership and path.exists():
        st = path.stat()
        want = _R | (_W if write else 0)
        if not _allowed(user, st, _acl(path), want):
            problems.append(AccessProblem(path, "read and write" if write else "read",
                                          stat.S_IMODE(st.st_mode), _owner(st)))
    return problems


def applies_to(host: Host) -> bool:
    """Only a local QEMU driver runs QEMU as the user of this machine's qemu.conf."""
    return host.is_local and host.uri.split(":", 1)[0].split("+", 1)[0] == "qemu"


def check_qemu_access(host: Host, path: Path, *, write: bool = False) -> None:
    """InvalidInput (exit 2, HTTP 422) naming the first folder QEMU cannot enter, before libvirt fails late."""
    if not applies_to(host):
        return
    user = qemu_user()
    if user is None:
        return
    problems = find_problems(path, user, write=write)
    if problems:
        first = problems[0]
        raise InvalidInput(
            f"QEMU runs as {user.name}, which cannot {first.describe()}, so it could not open "
            f"{path}: move the file, or rerun with --fix-permissions to grant {user.name} access with an ACL",
            field="path")


def grant_qemu_access(path: Path, *, write: bool = False) -> list[str]:
    """Add ACL entries so the QEMU user can reach `path` (search on folders, read on the file);
    returns what was granted, one line each. Never removes or loosens anything else."""
    user = qemu_user()
    if user is None:
        return []
    problems = find_problems(path, user, write=write)
    if not problems:
        return []
    setfacl = shutil.which("setfacl")
    if setfacl is None:
        raise HostError("setfacl is not installed (apt-get install acl)")
    granted = []
    for problem in problems:
        perms = "x" if problem.need == "search" else ("rw" if write else "r")
        # An argument list, never a shell string: the path is the user's.
        result = subprocess.run([setfacl, "-m", f"u:{user.name}:{perms}", "--", str(problem.path)],
                                capture_output=True, text=True, timeout=30, check=False)
        if result.returncode != 0:
            detail = (result.stderr.strip().splitlines() or [f"exit status {result.returncode}"])[-1]
            raise HostError(f"could not grant {user.name} access to {problem.path}: {detail}")
        granted.append(f"granted {user.name} {'search' if perms == 'x' else perms} on {problem.path} (ACL)")
    return granted
