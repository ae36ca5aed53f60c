"""Printing for the CLI: rich tables for people, --json for scripts, errors as one line on stderr."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console

from vmdeck.cli.plain import print_json

__all__ = ["out", "err", "print_json", "info", "progress_reporter"]

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
