"""Kernel module dependency handling (modules.dep), pure functions + a tree scan.

The image builder copies only the modules the guest needs, plus everything
they depend on, and loads them at boot in dependency order with `insmod`.
Dependencies come from modules.dep (written by `depmod` when it is installed)
or, without kmod on the host, from each module's own `.modinfo depends=`.
"""

from __future__ import annotations

import lzma
from pathlib import Path

from . import elf

MODULE_SUFFIXES = (".ko", ".ko.xz")


def normalize(name: str) -> str:
    """The kernel treats '-' and '_' in module names alike."""
    return name.replace("-", "_")


def module_name(relpath: str) -> str:
    """'kernel/drivers/gpio/gpio-pl061.ko.xz' -> 'gpio_pl061'."""
    base = relpath.rsplit("/", 1)[-1]
    for suf in MODULE_SUFFIXES:
        if base.endswith(suf):
            base = base[: -len(suf)]
            break
    return normalize(base)


def parse_modules_dep(text: str) -> dict[str, list[str]]:
    """modules.dep text -> {module path: [dependency paths]} (paths as written)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or ":" not in line:
            continue
        mod, _, rest = line.partition(":")
        out[mod.strip()] = rest.split()
    return out


def by_name(dep: dict[str, list[str]]) -> dict[str, str]:
    """{normalized module name: path}."""
    return {module_name(p): p for p in dep}


def closure(wanted: list[str], dep: dict[str, list[str]]) -> tuple[list[str], list[str]]:
    """Paths to load, dependencies first, for the wanted module names.

    Returns (load order, wanted names that are not modules in this tree).
    Names not found are not an error here: they may be built in or absent
    from this kernel flavour; the caller decides which ones are required.
    """
    names = by_name(dep)
    order: list[str] = []
    done: set[str] = set()
    visiting: set[str] = set()
    missing: list[str] = []

    def visit(path: str) -> None:
        if path in done:
            return
        if path in visiting:  # a cycle cannot load; depmod refuses these too
            raise ValueError(f"module dependency cycle at {path}")
        visiting.add(path)
        for d in dep.get(path, []):
            visit(d)
        visiting.discard(path)
        done.add(path)
        order.append(path)

    for w in wanted:
        p = names.get(normalize(w))
        if p is None:
            missing.append(w)
            continue
        visit(p)
    return order, missing


def format_modules_dep(dep: dict[str, list[str]], only: list[str] | None = None) -> str:
    """modules.dep text in depmod's layout: each line lists the full transitive
    dependencies, the one to load first last (as modprobe expects)."""
    keep = list(dep) if only is None else list(only)
    lines = []
    for p in keep:
        order, _ = closure([module_name(p)], dep)
        deps = [d for d in order if d != p]
        lines.append(f"{p}: " + " ".join(reversed(deps)) if deps else f"{p}:")
    return "\n".join(lines) + "\n"


def read_module(path: Path) -> bytes:
    """Module bytes, decompressed if the distribution ships .ko.xz."""
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        data = lzma.decompress(data)
    return data


def scan_tree(moddir: Path) -> dict[str, list[str]]:
    """Build the dependency map for a /lib/modules/<version> directory by reading
    each module's .modinfo (works for foreign architectures, needs no kmod)."""
    paths = sorted(
        str(p.relative_to(moddir)) for p in moddir.rglob("*") if p.is_file() and p.name.endswith(MODULE_SUFFIXES)
    )
    names = {module_name(p): p for p in paths}
    dep: dict[str, list[str]] = {}
    for p in paths:
        wanted = elf.module_depends(read_module(moddir / p))
        dep[p] = [names[normalize(d)] for d in wanted if normalize(d) in names]
    return dep


def normalize_path(relpath: str) -> str:
    """Where a module goes in the image: compressed modules are stored decompressed
    (busybox insmod cannot read .ko.xz), so 'x.ko.xz' -> 'x.ko'."""
    return relpath[: -len(".xz")] if relpath.endswith(".ko.xz") else relpath
