"""Printing for the CLI: rich tables for people, --json for scripts, errors as one line on stderr."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console

from vmdeck.cli.plain import print_json

__all__ = ["out", "err", "print_json", "info", "progress_reporter"]

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


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
