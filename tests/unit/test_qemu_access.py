"""The QEMU-user permission check on real folders and real POSIX ACLs (setfacl), no libvirt needed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from vmdeck.host.qemu_access import QemuUser, _conf_values, find_problems, qemu_user

# An unprivileged stand-in for libvirt-qemu: any uid that owns nothing here.
USER = QemuUser("nobody", 65534, frozenset({65534}), dynamic_ownership=True)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for folder in (tmp_path, tmp_path / "a", tmp_path / "a" / "b"):
        folder.mkdir(exist_ok=True)
        folder.chmod(0o755)
    # pytest's tmp root is 0700: every test starts with the ancestors searchable by all.
    for folder in tmp_path.parents:
        if not os.stat(folder).st_mode & 0o001:
            subprocess.run(["setfacl", "-m", "u:nobody:x", str(folder)], check=True)
    (tmp_path / "a" / "b" / "my.iso").write_bytes(b"x")
    return tmp_path


def test_open_tree_has_no_problem(tree: Path) -> None:
    assert find_problems(tree / "a" / "b" / "my.iso", USER) == []


def test_private_folder_is_named(tree: Path) -> None:
    (tree / "a").chmod(0o700)
    problems = find_problems(tree / "a" / "b" / "my.iso", USER)
    assert [(p.path, p.need, p.mode) for p in problems] == [(tree / "a", "search", 0o700)]
    assert problems[0].describe() == f"enter folder {tree / 'a'} (mode 0700, owner root)"


def test_acl_for_the_user_grants_search(tree: Path) -> None:
    (tree / "a").chmod(0o700)
    subprocess.run(["setfacl", "-m", "u:nobody:x", str(tree / "a")], check=True)
    assert find_problems(tree / "a" / "b" / "my.iso", USER) == []


def test_acl_mask_limits_a_named_entry(tree: Path) -> None:
    (tree / "a").chmod(0o700)
    subprocess.run(["setfacl", "-m", "u:nobody:x,m::---", str(tree / "a")], check=True)
    assert [p.path for p in find_problems(tree / "a" / "b" / "my.iso", USER)] == [tree / "a"]


def test_group_acl_counts(tree: Path) -> None:
    (tree / "a").chmod(0o700)
    subprocess.run(["setfacl", "-m", "g:nogroup:x", str(tree / "a")], check=True)
    assert find_problems(tree / "a" / "b" / "my.iso", USER) == []


def test_file_itself_only_without_dynamic_ownership(tree: Path) -> None:
    iso = tree / "a" / "b" / "my.iso"
    iso.chmod(0o600)
    assert find_problems(iso, USER) == []  # libvirt chowns the file itself
    static = QemuUser("nobody", 65534, frozenset({65534}), dynamic_ownership=False)
    assert [(p.path, p.need) for p in find_problems(iso, static)] == [(iso, "read")]
    assert [p.need for p in find_problems(iso, static, write=True)] == ["read and write"]


def test_qemu_conf_is_read(tmp_path: Path) -> None:
    conf = tmp_path / "qemu.conf"
    conf.write_text('#user = "root"\nuser = "nobody"\ngroup = "nogroup"  # comment\ndynamic_ownership = 0\n')
    assert _conf_values(conf.read_text()) == {"user": "nobody", "group": "nogroup", "dynamic_ownership": "0"}
    user = qemu_user(conf)
    assert user is not None and user.name == "nobody" and not user.dynamic_ownership
    assert qemu_user(tmp_path / "missing.conf").name == "libvirt-qemu"  # libvirt's Debian default
