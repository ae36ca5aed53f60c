"""Just enough ELF reading for the tiny image builder (pure Python, no tools).

We read foreign-architecture binaries (aarch64 on an x86_64 host), so nothing
here may execute the file: `ldd` and `modinfo` cannot be used for arm64.
Only 64-bit little-endian ELF files are supported (x86_64, aarch64).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

EM_X86_64 = 62
EM_AARCH64 = 183
MACHINES = {EM_X86_64: "x86_64", EM_AARCH64: "aarch64"}

PT_INTERP = 3
PT_DYNAMIC = 2
DT_NEEDED = 1
DT_STRTAB = 5


class ElfError(ValueError):
    pass


@dataclass
class ElfInfo:
    machine: str
    interp: str | None = None
    needed: list[str] = field(default_factory=list)


def _header(data: bytes) -> tuple[int, ...]:
    if len(data) < 64 or data[:4] != b"\x7fELF":
        raise ElfError("not an ELF file")
    if data[4] != 2 or data[5] != 1:
        raise ElfError("only 64-bit little-endian ELF is supported")
    # e_type, e_machine, e_version, e_entry, e_phoff, e_shoff, e_flags,
    # e_ehsize, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx
    return struct.unpack_from("<HHIQQQIHHHHHH", data, 16)


def sections(data: bytes) -> dict[str, bytes]:
    """Map section name -> raw contents (SHT_NOBITS sections give b"")."""
    h = _header(data)
    shoff, shentsize, shnum, shstrndx = h[5], h[10], h[11], h[12]
    if shoff == 0 or shnum == 0:
        return {}
    raw = []
    for i in range(shnum):
        # sh_name, sh_type, sh_flags, sh_addr, sh_offset, sh_size
        name, typ, _flags, _addr, off, size = struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)
        raw.append((name, typ, off, size))
    _n, _t, stroff, strsize = raw[shstrndx]
    strtab = data[stroff : stroff + strsize]
    out: dict[str, bytes] = {}
    for name, typ, off, size in raw:
        end = strtab.find(b"\0", name)
        sname = strtab[name:end].decode("ascii", "replace")
        out[sname] = b"" if typ == 8 else data[off : off + size]  # 8 = SHT_NOBITS
    return out


def modinfo(data: bytes) -> dict[str, list[str]]:
    """The key=value pairs of a kernel module's .modinfo section."""
    sec = sections(data).get(".modinfo", b"")
    info: dict[str, list[str]] = {}
    for item in sec.split(b"\0"):
        if b"=" not in item:
            continue
        k, _, v = item.decode("utf-8", "replace").partition("=")
        info.setdefault(k, []).append(v)
    return info


def module_depends(data: bytes) -> list[str]:
    """Module names (as the kernel spells them) this .ko depends on."""
    deps: list[str] = []
    for v in modinfo(data).get("depends", []):
        deps.extend(d for d in v.split(",") if d)
    return deps


def dynamic_info(data: bytes) -> ElfInfo:
    """Machine, program interpreter and DT_NEEDED sonames of an executable/library."""
    h = _header(data)
    machine = MACHINES.get(h[1], f"machine-{h[1]}")
    phoff, phentsize, phnum = h[4], h[8], h[9]
    info = ElfInfo(machine=machine)
    loads = []
    dyn = None
    for i in range(phnum):
        # p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz
        ptype, _fl, off, vaddr, _pa, filesz, _memsz = struct.unpack_from("<IIQQQQQ", data, phoff + i * phentsize)
        if ptype == PT_INTERP:
            info.interp = data[off : off + filesz].rstrip(b"\0").decode()
        elif ptype == PT_DYNAMIC:
            dyn = (off, filesz)
        elif ptype == 1:  # PT_LOAD
            loads.append((vaddr, off, filesz))
    if dyn is None:
        return info
    entries = []
    strtab_addr = None
    off, size = dyn
    for j in range(0, size, 16):
        tag, val = struct.unpack_from("<qQ", data, off + j)
        if tag == 0:
            break
        if tag == DT_NEEDED:
            entries.append(val)
        elif tag == DT_STRTAB:
            strtab_addr = val
    if strtab_addr is None:
        return info
    stroff = None
    for vaddr, poff, filesz in loads:
        if vaddr <= strtab_addr < vaddr + filesz:
            stroff = poff + (strtab_addr - vaddr)
            break
    if stroff is None:
        raise ElfError("DT_STRTAB outside any PT_LOAD segment")
    for val in entries:
        start = stroff + val
        end = data.index(b"\0", start)
        info.needed.append(data[start:end].decode())
    return info
