"""Which server a command line is for (cli layer, imported by every command: keep it light).

`--remote NAME` before the command, a `NAME:vm` argument, or the remote chosen with `vmdeck remote
switch`; `--remote local` (or no remote) keeps the command on this machine. A command that only exists
here (serve, image, host ...) with a remote chosen is refused in one line, never run on the wrong side.
"""

from __future__ import annotations

import re

from vmdeck.errors import InvalidInput

__all__ = ["split_remote"]

# Also in vmdeck.cli.remote_run (which imports typer): tests/unit/test_remote_cli.py keeps them equal.
REMOTE_COMMANDS = frozenset({"list", "show", "create", "start", "shutdown", "poweroff", "reboot", "reset", "pause",
                             "resume", "delete", "exec", "screenshot", "guest-info", "token", "console", "ssh",
                             "set", "cdrom", "disk", "nic", "snapshot", "clone", "send-keys", "type", "backup",
                             "display", "hostview"})
_LOCAL_ONLY_OK = frozenset({"remote", "--help", "-h", "--version", "-V"})
_PREFIXED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]{0,62}):([A-Za-z0-9].*)$")


def split_remote(argv: list[str]) -> tuple[str | None, list[str]]:
    """(remote name or None for this machine, the command line without the remote's marks)."""
    from vmdeck.cli import remotes

    chosen: str | None = None
    rest = list(argv)
    if rest and rest[0].startswith("--remote"):
        if rest[0] == "--remote" and len(rest) > 1:
            chosen, rest = rest[1], rest[2:]
        elif rest[0].startswith("--remote="):
            chosen, rest = rest[0].split("=", 1)[1], rest[1:]
        else:
            raise InvalidInput("--remote needs a name: vmdeck --remote NAME COMMAND ...")
    command = rest[0] if rest else ""
    if chosen is None and command in REMOTE_COMMANDS:
        known = None
        for index, arg in enumerate(rest[1:], start=1):
            match = _PREFIXED.match(arg)
            if match:
                known = known if known is not None else remotes.load()
                if match.group(1) in known.remotes:
                    chosen = match.group(1)
                    rest[index] = match.group(2)
                    break
    if chosen is None:
        if command in _LOCAL_ONLY_OK or not command:
            return None, rest
        current = remotes.load().current
        chosen = None if current == remotes.LOCAL else current
    if chosen in (None, remotes.LOCAL):
        return None, rest
    if command not in REMOTE_COMMANDS:
        raise InvalidInput(f"vmdeck {command or '(no command)'} runs only on this machine, not through remote "
                           f"{chosen!r}: use --remote local (remote commands: {', '.join(sorted(REMOTE_COMMANDS))})")
    return chosen, rest
