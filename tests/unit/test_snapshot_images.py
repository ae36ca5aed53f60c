"""Image chains read from qcow2 headers (against qemu-img's own answer), and who-uses-what bookkeeping."""

from __future__ import annotations

import subprocess
from pathlib import Path

from vmdeck.storage.images import backing_chain, image_info, read_backing
from vmdeck.storage.usage import ImageUsage, _walk


def _qcow2(path: Path, backing: Path | None = None, relative: bool = False) -> Path:
    args = ["qemu-img", "create", "-q", "-f", "qcow2"]
    if backing is not None:
        args += ["-b", backing.name if relative else str(backing), "-F", "qcow2"]
    subprocess.run([*args, str(path), "16M"], check=True, cwd=path.parent)
    return path


def test_backing_read_from_the_header_matches_qemu_img(tmp_path: Path) -> None:
    base = _qcow2(tmp_path / "base.qcow2")
    mid = _qcow2(tmp_path / "mid.qcow2", base)
    top = _qcow2(tmp_path / "top.qcow2", mid, relative=True)
    raw = tmp_path / "raw.img"
    raw.write_bytes(b"\0" * 4096)
    assert read_backing(base) is None and read_backing(raw) is None
    assert read_backing(mid) == str(base) == image_info(mid).backing
    assert read_backing(top) == str(mid)  # a relative name is resolved against the image's folder
    assert [i.path for i in backing_chain(top)] == [str(top), str(mid), str(base)]


def test_usage_follows_overlays_up_to_the_vms(tmp_path: Path) -> None:
    base = _qcow2(tmp_path / "base.qcow2")
    mine = _qcow2(tmp_path / "mine.qcow2", base)
    clone = _qcow2(tmp_path / "clone.qcow2", base)
    usage = ImageUsage()
    for path, vm in ((mine, "src"), (clone, "copy")):
        usage.users[str(path)].add(f"vm:{vm}:vda")
        _walk(usage, str(path))
    assert usage.users_of(str(base)) == {f"image:{mine}", f"image:{clone}"}
    assert usage.vms_using(str(base)) == {"src", "copy"}
    assert usage.vms_using(str(clone)) == {"copy"}
    assert not usage.in_use(str(tmp_path / "nothing.qcow2"))
