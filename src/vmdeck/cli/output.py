"""Printing for the CLI: rich tables for people, --json for scripts, errors as one line on stderr."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console

# Piped or redirected (`vmdeck show NAME | cat`, a file), there is no terminal width to respect: rich
# would lay tables out for 80 columns and cut long paths, so the full values are printed instead.
# COLUMNS still wins when set, as rich documents.
_WIDE = 100_000


def _console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    piped = not stream.isatty() and "COLUMNS" not in os.environ
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=_WIDE if piped else None)


out = _console()
err = _console(stderr=True)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(_plain(value), indent=2, sort_keys=False) + "\n")


def info(message: str) -> None:
    err.print(f"[dim]{message}[/dim]")


@contextmanager
def progress_reporter(title: str) -> Iterator[Callable[[str], None]]:
    """A spinner with the current step on stderr (plain lines when stderr is not a terminal)."""
    if not err.is_terminal:
        yield lambda message: err.print(message, markup=False)
        return
    with err.status(title) as status:
        def report(message: str) -> None:
            err.print(f"  {message}", markup=False)
            status.update(f"{title}: {message}")
        yield report
