"""Key names, key combinations and text as Linux input keycodes (pure; console layer).

libvirt's virDomainSendKey takes keycodes in a named code set; vmdeck uses the
Linux set (VIR_KEYCODE_SET_LINUX, <linux/input-event-codes.h>) because it is
layout-free and QEMU maps it to every emulated keyboard. Text is typed as a US
keyboard would type it: shifted characters are sent with left Shift held.
"""

from __future__ import annotations

import re

from vmdeck.errors import InvalidInput

__all__ = ["KEYCODES", "ALIASES", "MODIFIERS", "MAX_KEYS", "parse_combo", "parse_combos", "text_to_presses",
           "key_names"]

# libvirt accepts at most this many keys in one virDomainSendKey call (VIR_DOMAIN_SEND_KEY_MAX_KEYS).
MAX_KEYS = 16

# Linux input keycodes (include/uapi/linux/input-event-codes.h), by their KEY_* name in lower case.
KEYCODES: dict[str, int] = {
    "esc": 1, "1": 2, "2": 3, "3": 4, "4": 5, "5": 6, "6": 7, "7": 8, "8": 9, "9": 10, "0": 11,
    "minus": 12, "equal": 13, "backspace": 14, "tab": 15,
    "q": 16, "w": 17, "e": 18, "r": 19, "t": 20, "y": 21, "u": 22, "i": 23, "o": 24, "p": 25,
    "leftbrace": 26, "rightbrace": 27, "enter": 28, "leftctrl": 29,
    "a": 30, "s": 31, "d": 32, "f": 33, "g": 34, "h": 35, "j": 36, "k": 37, "l": 38,
    "semicolon": 39, "apostrophe": 40, "grave": 41, "leftshift": 42, "backslash": 43,
    "z": 44, "x": 45, "c": 46, "v": 47, "b": 48, "n": 49, "m": 50,
    "comma": 51, "dot": 52, "slash": 53, "rightshift": 54, "kpasterisk": 55, "leftalt": 56, "space": 57,
    "capslock": 58, "f1": 59, "f2": 60, "f3": 61, "f4": 62, "f5": 63, "f6": 64, "f7": 65, "f8": 66,
    "f9": 67, "f10": 68, "numlock": 69, "scrolllock": 70,
    "kp7": 71, "kp8": 72, "kp9": 73, "kpminus": 74, "kp4": 75, "kp5": 76, "kp6": 77, "kpplus": 78,
    "kp1": 79, "kp2": 80, "kp3": 81, "kp0": 82, "kpdot": 83, "102nd": 86, "f11": 87, "f12": 88,
    "kpenter": 96, "rightctrl": 97, "kpslash": 98, "sysrq": 99, "rightalt": 100,
    "home": 102, "up": 103, "pageup": 104, "left": 105, "right": 106, "end": 107, "down": 108,
    "pagedown": 109, "insert": 110, "delete": 111, "mute": 113, "volumedown": 114, "volumeup": 115,
    "power": 116, "kpequal": 117, "pause": 119, "leftmeta": 125, "rightmeta": 126, "compose": 127,
    "sleep": 142, "wakeup": 143,
}

# Names people type for the same keys.
ALIASES: dict[str, str] = {
    "ctrl": "leftctrl", "control": "leftctrl", "alt": "leftalt", "altgr": "rightalt", "shift": "leftshift",
    "meta": "leftmeta", "super": "leftmeta", "win": "leftmeta", "cmd": "leftmeta",
    "del": "delete", "ins": "insert", "return": "enter", "ret": "enter", "escape": "esc",
    "bksp": "backspace", "pgup": "pageup", "pgdn": "pagedown", "prtsc": "sysrq", "print": "sysrq",
    "spc": "space", "menu": "compose", "period": "dot", "equals": "equal", "bracketleft": "leftbrace",
    "bracketright": "rightbrace", "quote": "apostrophe", "backquote": "grave", "caps": "capslock",
}

MODIFIERS = frozenset({"leftctrl", "rightctrl", "leftalt", "rightalt", "leftshift", "rightshift",
                       "leftmeta", "rightmeta"})

_SHIFT = KEYCODES["leftshift"]

# Printable ASCII on a US layout: char -> (key name, shifted).
_CHARS: dict[str, tuple[str, bool]] = {" ": ("space", False), "\n": ("enter", False), "\t": ("tab", False)}
for _c in "abcdefghijklmnopqrstuvwxyz0123456789":
    _CHARS[_c] = (_c, False)
for _c in "abcdefghijklmnopqrstuvwxyz":
    _CHARS[_c.upper()] = (_c, True)
for _plain, _shifted, _name in (
    ("-", "_", "minus"), ("=", "+", "equal"), ("[", "{", "leftbrace"), ("]", "}", "rightbrace"),
    (";", ":", "semicolon"), ("'", '"', "apostrophe"), ("`", "~", "grave"), ("\\", "|", "backslash"),
    (",", "<", "comma"), (".", ">", "dot"), ("/", "?", "slash"),
):
    _CHARS[_plain] = (_name, False)
    _CHARS[_shifted] = (_name, True)
for _digit, _shifted in zip("1234567890", "!@#$%^&*()", strict=True):
    _CHARS[_shifted] = (_digit, True)


def key_names() -> list[str]:
    return sorted(KEYCODES)


def _keycode(name: str, combo: str) -> int:
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key.startswith("key_"):  # KEY_A as in input-event-codes.h
        key = key[4:]
    if key not in KEYCODES:
        raise InvalidInput(f"unknown key {name!r} in {combo!r}: use names like ctrl, alt, shift, delete, enter, "
                           "f1..f12, a..z, 0..9, up, pageup (see `vmdeck send-keys --list`)", field="keys")
    return KEYCODES[key]


def parse_combo(combo: str) -> list[int]:
    """'ctrl-alt-delete' or 'ctrl+alt+f2' -> keycodes pressed together (modifiers first, released last)."""
    text = combo.strip()
    if not text:
        raise InvalidInput("empty key combination", field="keys")
    # '-' and '+' separate keys, but a lone "-" or "+" (or one at the end, "ctrl-+") is the key itself.
    parts = [p for p in re.split(r"(?<=[^-+])[-+]", text)] if len(text) > 1 else [text]
    names = [{"-": "minus", "+": "equal"}.get(p, p) for p in parts]
    codes = [_keycode(name, combo) for name in names]
    if len(set(codes)) != len(codes):
        raise InvalidInput(f"key combination {combo!r} names a key twice", field="keys")
    if len(codes) > MAX_KEYS:
        raise InvalidInput(f"key combination {combo!r} has {len(codes)} keys: at most {MAX_KEYS} at once",
                           field="keys")
    return codes


def parse_combos(combos: list[str] | tuple[str, ...]) -> list[list[int]]:
    """Every combination validated before any is sent: a typo never sends half a sequence."""
    if not combos:
        raise InvalidInput("no keys given (for example: vmdeck send-keys VM ctrl-alt-delete)", field="keys")
    return [parse_combo(c) for c in combos]


def text_to_presses(text: str) -> list[list[int]]:
    """Text -> one key press per character, with Shift held for upper case and shifted symbols."""
    presses = []
    for index, char in enumerate(text):
        if char == "\r":
            char = "\n"
        if char not in _CHARS:
            raise InvalidInput(f"cannot type {char!r} (character {index + 1}): only printable ASCII, "
                               "newline and tab have keys on a US keyboard", field="text")
        name, shifted = _CHARS[char]
        code = KEYCODES[name]
        presses.append([_SHIFT, code] if shifted else [code])
    return presses
