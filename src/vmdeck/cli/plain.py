"""Output without rich: JSON for scripts, aligned columns and one-line messages for people (cli layer).

The fast path (vmdeck.cli.fast) prints through this module so that `vmdeck list` and `vmdeck start`
do not import rich (~60 ms of start-up); vmdeck.cli.output reuses the JSON half.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~3 ms of every fast command)
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any, TextIO

__all__ = ["STATE_STYLE", "plain_data", "print_json", "styled", "print_columns", "progress_lines"]

_ANSI = {"bold": "1", "dim": "2", "green": "32", "yellow": "33", "red": "31"}


# How a VM state is coloured in both the rich tables and the fast path's plain columns.
STATE_STYLE = {"running": "green", "paused": "yellow", "shut off": "dim", "crashed": "red"}

def plain_data(value: Any) -> Any:
    """Dataclasses, tuples, paths and bytes as JSON-ready dicts, lists and strings."""
    # Checked by attribute, not by importing dataclasses: a dataclass instance has __dataclass_fields__.
    fields = getattr(type(value), "__dataclass_fields__", None)
    if fields is not None and not isinstance(value, type):
        return {name: plain_data(getattr(value, name)) for name in fields}
    if isinstance(value, dict):
        return {str(k): plain_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [plain_data(v) for v in value]
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def print_json(value: Any) -> None:
    import json  # only the --json outputs pay for it

    sys.stdout.write(json.dumps(plain_data(value), indent=2, sort_keys=False) + "\n")


def _colour(stream: TextIO) -> bool:
    # The conventions rich follows too: NO_COLOR, TERM=dumb, and only on a terminal.
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def styled(text: str, style: str, stream: TextIO = sys.stdout) -> str:
    codes = ";".join(_ANSI[word] for word in style.split() if word in _ANSI)
    return f"\x1b[{codes}m{text}\x1b[0m" if codes and _colour(stream) else text


def print_columns(header: Sequence[str], rows: Sequence[Sequence[str]], styles: Sequence[Sequence[str]] = ()) -> None:
    """Columns as rich's borderless Table prints them: one space of padding each side, a bold header."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    lines = [" " + "  ".join(styled(h.ljust(w), "bold") for h, w in zip(header, widths, strict=True)) + " "]
    for index, row in enumerate(rows):
        row_styles = styles[index] if index < len(styles) else ()
        cells = [styled(cell.ljust(w), row_styles[i]) if i < len(row_styles) and row_styles[i] else cell.ljust(w)
                 for i, (cell, w) in enumerate(zip(row, widths, strict=True))]
        lines.append(" " + "  ".join(cells) + " ")
    sys.stdout.write("\n".join(lines) + "\n")


def progress_lines() -> Callable[[str], None]:
    """Progress as plain lines on stderr (indented on a terminal, as the rich spinner's log is)."""
    indent = "  " if sys.stderr.isatty() else ""

    def report(message: str) -> None:
        print(indent + message, file=sys.stderr, flush=True)

    return report
