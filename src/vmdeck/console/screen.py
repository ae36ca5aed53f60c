"""Screenshots of a VM's display as PNG bytes (console layer).

virDomainScreenshot streams the image QEMU writes: PNG from QEMU 7.1 on through
libvirt 9 (checked on this machine: "image/png"), the older PPM elsewhere, which
is converted here with zlib alone. The same bytes serve `vmdeck screenshot` and
the web UI's thumbnails.
"""

from __future__ import annotations

import struct
import zlib

from vmdeck.errors import HostError, InvalidInput, StateError
from vmdeck.host.libvirt_api import Domain
from vmdeck.vm.state import current_state

__all__ = ["screenshot", "png_size", "ppm_to_png", "decode_png_rgb"]

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    if not data.startswith(_PNG_MAGIC) or data[12:16] != b"IHDR":
        raise InvalidInput("not a PNG image")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _ppm_tokens(data: bytes) -> tuple[int, int, int, int]:
    """(width, height, maxval, offset of the pixels) of a binary PPM (P6), comments allowed."""
    fields: list[int] = []
    pos = 2
    while len(fields) < 3:
        while data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.index(b"\n", pos) + 1
            continue
        end = pos
        while data[end:end + 1].isdigit():
            end += 1
        if end == pos:
            raise HostError("the hypervisor returned a malformed PPM screenshot")
        fields.append(int(data[pos:end]))
        pos = end
    return fields[0], fields[1], fields[2], pos + 1  # one whitespace byte ends the header


def ppm_to_png(data: bytes) -> bytes:
    """Convert a binary PPM (P6, 8 bits per channel) to a PNG."""
    if not data.startswith(b"P6"):
        raise HostError("the hypervisor returned a screenshot that is neither PNG nor binary PPM")
    width, height, maxval, offset = _ppm_tokens(data)
    if maxval != 255:
        raise HostError(f"unsupported PPM screenshot depth (maxval {maxval})")
    stride = width * 3
    pixels = data[offset:offset + stride * height]
    if len(pixels) != stride * height:
        raise HostError("the PPM screenshot is truncated")
    # Each PNG row starts with a filter byte; 0 = none.
    raw = b"".join(b"\x00" + pixels[y * stride:(y + 1) * stride] for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return _PNG_MAGIC + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 6)) + _chunk(b"IEND", b"")


def decode_png_rgb(data: bytes) -> tuple[int, int, bytes]:
    """(width, height, RGB bytes) of an 8-bit RGB/RGBA, non-interlaced PNG: enough to look at a screenshot."""
    width, height = png_size(data)
    depth, color, _comp, _filt, interlace = data[24], data[25], data[26], data[27], data[28]
    if depth != 8 or color not in (2, 6) or interlace:
        raise InvalidInput("only 8-bit RGB(A) non-interlaced PNGs are decoded")
    channels = 3 if color == 2 else 4
    pos, idat = 8, b""
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    out = bytearray()
    previous = bytearray(stride)
    for y in range(height):
        filter_type = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            left = line[x - channels] if x >= channels else 0
            up = previous[x]
            corner = previous[x - channels] if x >= channels else 0
            if filter_type == 1:
                line[x] = (line[x] + left) & 0xFF
            elif filter_type == 2:
                line[x] = (line[x] + up) & 0xFF
            elif filter_type == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif filter_type == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                predictor = left if pa <= pb and pa <= pc else (up if pb <= pc else corner)
                line[x] = (line[x] + predictor) & 0xFF
        previous = line
        if channels == 3:
            out += line
        else:
            for x in range(width):
                out += line[x * 4:x * 4 + 3]
    return width, height, bytes(out)


def screenshot(dom: Domain, screen: int = 0) -> bytes:
    """The VM's screen `screen` as PNG bytes."""
    state = current_state(dom)
    if not state.has_console:
        raise StateError(dom.name, state, "running or paused", "take a screenshot of")
    mime, data = dom.screenshot(screen)
    if data.startswith(_PNG_MAGIC):
        return data
    if mime and "png" in mime:
        raise HostError(f"{dom.name}: the screenshot says {mime} but is not a PNG")
    return ppm_to_png(data)
