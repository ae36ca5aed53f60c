"""Keyboard and mouse input into a running VM (console layer).

Keys go through virDomainSendKey with Linux keycodes (see console/keys.py):
libvirt's stable API, no monitor access. libvirt has no pointer API, so mouse
moves and clicks use QMP `input-send-event` through libvirt_qemu's monitor
passthrough; libvirt marks such a VM "tainted: custom-monitor" in its log,
which is harmless but visible. Absolute axes go to the VM's tablet (virtio or
USB), which QEMU scales from 0..32767 to the whole screen, so X/Y in screen
pixels are converted with the screen size taken from a screenshot.
"""

from __future__ import annotations

import json
import time
from typing import Any

from vmdeck.console.keys import parse_combos, text_to_presses
from vmdeck.console.screen import png_size, screenshot
from vmdeck.domxml.devices import input_types
from vmdeck.errors import InvalidInput, StateError
from vmdeck.host.libvirt_api import Domain
from vmdeck.vm.state import current_state

__all__ = ["send_keys", "type_text", "mouse_move", "mouse_click", "BUTTONS", "ABS_MAX"]

# QEMU's absolute axis range (INPUT_EVENT_ABS_MIN..MAX in ui/input.h).
ABS_MAX = 0x7FFF
BUTTONS = ("left", "middle", "right", "wheel-up", "wheel-down", "side", "extra")
# How long a key stays down. QEMU queues presses for the guest; 30 ms is what virsh send-key uses
# too, short enough to type fast and long enough that a TCG guest polling the keyboard sees each key.
HOLD_MS = 30


def _require_running(dom: Domain, action: str) -> None:
    state = current_state(dom)
    if state != "running":
        raise StateError(dom.name, state, "running", action)


def _send(dom: Domain, codes: list[int], hold_ms: int) -> None:
    dom.send_keys(codes, hold_ms)


def send_keys(dom: Domain, combos: list[str] | tuple[str, ...], *, hold_ms: int = HOLD_MS) -> int:
    """Press each combination in turn ("ctrl-alt-delete", "enter"); returns how many were sent."""
    presses = parse_combos(combos)  # all validated before the first is sent
    _require_running(dom, "send keys to")
    for codes in presses:
        _send(dom, codes, hold_ms)
    return len(presses)


def type_text(dom: Domain, text: str, *, hold_ms: int = HOLD_MS) -> int:
    """Type `text` as key presses (US layout, Shift where needed); returns the number of keys."""
    if not text:
        raise InvalidInput("nothing to type", field="text")
    presses = text_to_presses(text)
    _require_running(dom, "type into")
    for codes in presses:
        _send(dom, codes, hold_ms)
    return len(presses)


def _qmp(dom: Domain, command: str, arguments: dict[str, Any]) -> None:
    dom.qemu_monitor(json.dumps({"execute": command, "arguments": arguments}))


def _require_input(dom: Domain, kinds: tuple[str, ...], what: str) -> None:
    if not input_types(dom.xml()) & set(kinds):
        raise InvalidInput(f"VM {dom.name!r} has no {what} (add a tablet to the template: tablet: usb or virtio)")


def mouse_move(dom: Domain, x: int, y: int, *, size: tuple[int, int] | None = None) -> tuple[int, int]:
    """Move the pointer to pixel (x, y) of the screen; returns the absolute axis values sent."""
    _require_running(dom, "move the mouse of")
    # Absolute positions need an absolute device; a PS/2 mouse only takes relative motion.
    _require_input(dom, ("tablet",), "tablet for absolute pointing")
    width, height = size or png_size(screenshot(dom))
    if not (0 <= x < width and 0 <= y < height):
        raise InvalidInput(f"({x}, {y}) is outside the {width}x{height} screen", field="position")
    # Pixel centres map onto 0..32767 the way QEMU maps them back (qemu_input_scale_axis).
    ax = round(x * ABS_MAX / max(width - 1, 1))
    ay = round(y * ABS_MAX / max(height - 1, 1))
    _qmp(dom, "input-send-event", {"events": [
        {"type": "abs", "data": {"axis": "x", "value": ax}},
        {"type": "abs", "data": {"axis": "y", "value": ay}},
    ]})
    return ax, ay


def mouse_click(dom: Domain, button: str = "left", *, hold_ms: int = 50) -> None:
    """Press and release `button` where the pointer is."""
    if button not in BUTTONS:
        raise InvalidInput(f"unknown mouse button {button!r}: use {', '.join(BUTTONS)}", field="button")
    _require_running(dom, "click the mouse of")
    _require_input(dom, ("tablet", "mouse"), "pointing device")
    for down in (True, False):
        _qmp(dom, "input-send-event", {"events": [{"type": "btn", "data": {"down": down, "button": button}}]})
        if down:
            time.sleep(hold_ms / 1000)
