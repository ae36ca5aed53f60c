"""The key table, key combinations and text-to-keys conversion (pure)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vmdeck.console.keys import ALIASES, KEYCODES, MAX_KEYS, parse_combo, parse_combos, text_to_presses
from vmdeck.errors import InvalidInput

HEADER = Path("/usr/include/linux/input-event-codes.h")
SHIFT, CTRL, ALT = KEYCODES["leftshift"], KEYCODES["leftctrl"], KEYCODES["leftalt"]


def _kernel_codes() -> dict[str, int]:
    codes = {}
    for name, value in re.findall(r"^#define KEY_(\w+)\s+(\d+)\b", HEADER.read_text(), re.M):
        codes.setdefault(name.lower(), int(value))
    return codes


def test_every_key_matches_the_linux_input_header() -> None:
    # linux-libc-dev ships the header the kernel itself uses; the table must agree with it key by key.
    kernel = _kernel_codes()
    assert len(kernel) > 200
    wrong = {name: (code, kernel.get(name)) for name, code in KEYCODES.items() if kernel.get(name) != code}
    assert wrong == {}


def test_aliases_point_at_known_keys() -> None:
    assert set(ALIASES.values()) <= set(KEYCODES)


@pytest.mark.parametrize(
    ("combo", "codes"),
    [
        ("ctrl-alt-delete", [CTRL, ALT, 111]),
        ("Ctrl+Alt+Del", [CTRL, ALT, 111]),
        ("ctrl-alt-f2", [CTRL, ALT, 60]),
        ("enter", [28]),
        ("KEY_A", [30]),
        ("-", [12]),
        ("ctrl-minus", [CTRL, 12]),
        ("ctrl--", [CTRL, 12]),
        ("shift-+", [SHIFT, 13]),
        ("super", [125]),
    ],
)
def test_combos(combo: str, codes: list[int]) -> None:
    assert parse_combo(combo) == codes


@pytest.mark.parametrize("bad", ["ctrl-alt-delet", "hyper", "", "ctrl-ctrl", "f13"])
def test_bad_combos_are_invalid_input(bad: str) -> None:
    with pytest.raises(InvalidInput):
        parse_combo(bad)


def test_unknown_key_message_names_the_key() -> None:
    with pytest.raises(InvalidInput, match="unknown key 'bogus' in 'ctrl-bogus'"):
        parse_combo("ctrl-bogus")


def test_all_combos_are_checked_before_any_is_used() -> None:
    with pytest.raises(InvalidInput, match="nope"):
        parse_combos(["enter", "ctrl-alt-delete", "nope"])
    with pytest.raises(InvalidInput, match="no keys"):
        parse_combos([])


def test_too_many_keys_at_once() -> None:
    combo = "-".join("abcdefghijklmnopq")
    assert len(combo.split("-")) == MAX_KEYS + 1
    with pytest.raises(InvalidInput, match="at most 16"):
        parse_combo(combo)


def test_text_shift_state() -> None:
    presses = text_to_presses("aA1!_ \n")
    assert presses == [
        [KEYCODES["a"]],
        [SHIFT, KEYCODES["a"]],
        [KEYCODES["1"]],
        [SHIFT, KEYCODES["1"]],
        [SHIFT, KEYCODES["minus"]],
        [KEYCODES["space"]],
        [KEYCODES["enter"]],
    ]


def test_every_printable_ascii_character_can_be_typed() -> None:
    text = "".join(chr(c) for c in range(32, 127))
    presses = text_to_presses(text)
    assert len(presses) == len(text)
    shifted = {c for c, p in zip(text, presses, strict=True) if p[0] == SHIFT}
    assert shifted == set('~!@#$%^&*()_+{}|:"<>?ABCDEFGHIJKLMNOPQRSTUVWXYZ')


def test_untypeable_text_is_refused_with_its_position() -> None:
    with pytest.raises(InvalidInput, match="character 3"):
        text_to_presses("ab\u00e9")
