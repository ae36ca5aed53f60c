"""The fast path of the `vmdeck` command: the most frequent command lines without typer, rich or pydantic.

Importing typer (with click), rich and pydantic costs ~0.2-0.4 s on these hosts, several times the
work of `vmdeck list` itself. `answer()` recognises a few exact shapes of command line —
`--version`, `list [--json]`, `start NAME... [--wait] [--timeout S]`, `create NAME [common options]`,
with an optional `-c/--connect URI` first — and runs them with plain output (vmdeck.cli.plain).
Anything else, including every `--help` and every malformed line, returns None and the full typer
command (vmdeck.cli.app) handles it, so help texts and usage errors stay exactly typer's.
The output of each fast command is the same as the typer command's (tests/unit/test_cli_fast.py).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["answer"]

_STATE_STYLE = {"running": "green", "paused": "yellow", "shut off": "dim", "crashed": "red"}


class _NotFast(Exception):
    """This command line is not one the fast path knows: let typer handle it."""


def _options(args: list[str], flags: set[str], valued: dict[str, Callable[[str], Any]],
             aliases: dict[str, str] | None = None) -> tuple[list[str], dict[str, Any]]:
    """Split `args` into positionals and options; unknown or malformed options raise _NotFast."""
    aliases = aliases or {}
    positionals: list[str] = []
    seen: dict[str, Any] = {}
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        if not arg.startswith("-") or arg == "-":
            positionals.append(arg)
            continue
        key, eq, inline = arg.partition("=")
        key = aliases.get(key, key)
        if key in flags and not eq:
            seen[key] = True
        elif key in valued:
            if eq:
                raw = inline
            elif index < len(args):
                raw, index = args[index], index + 1
            else:
                raise _NotFast
            try:
                seen[key] = valued[key](raw)
            except ValueError as err:
                raise _NotFast from err
        else:
            raise _NotFast
    return positionals, seen


def _host(uri: str | None):  # type: ignore[no-untyped-def]
    from vmdeck.host.connection import connect

    return connect(uri)


def _list(uri: str | None, args: list[str]) -> None:
    from vmdeck.cli.plain import print_columns, print_json
    from vmdeck.vm.inventory import list_vms

    positionals, options = _options(args, {"--json"}, {})
    if positionals:
        raise _NotFast
    if options.get("--json"):
        print_json(list_vms(_host(uri)))
        return
    vms = list_vms(_host(uri), usage=False)  # the table shows no RSS: no QEMU monitor round trips
    if not vms:
        print("no VMs on this host. Create one with: vmdeck create NAME (templates: vmdeck template list)")
        return
    rows = [(vm.name, vm.state, str(vm.vcpus), f"{vm.memory_mib} MiB", vm.project or "-", vm.host) for vm in vms]
    print_columns(("NAME", "STATE", "vCPUs", "MEMORY", "PROJECT", "HOST"), rows,
                  [("", _STATE_STYLE.get(vm.state, "")) for vm in vms])


def _start(uri: str | None, args: list[str]) -> None:
    from vmdeck.cli.plain import progress_lines

    names, options = _options(args, {"--wait"}, {"--timeout": float})
    if not names:
        raise _NotFast
    wait = bool(options.get("--wait"))
    timeout = options.get("--timeout", 120.0)
    host = _host(uri)
    progress = progress_lines()
    if len(names) == 1:
        from vmdeck.vm import lifecycle

        lifecycle.start(host, names[0], wait=wait, timeout=timeout, progress=progress)
    else:
        from vmdeck.vm.boot import start_many

        start_many(host, names, wait=wait, timeout=timeout, progress=progress)
    for name in dict.fromkeys(names):
        print(f"{name} started" + (" and ready" if wait else ""))


def _create(uri: str | None, args: list[str]) -> None:
    from pathlib import Path

    from vmdeck.cli.plain import print_json, progress_lines, styled

    positionals, options = _options(
        args, {"--start", "--wait", "--json"},
        {"--template": str, "--cpus": int, "--memory": int, "--disk": float, "--cdrom": Path, "--accel": str,
         "--network": str, "--project": str},
        aliases={"-t": "--template"})
    if len(positionals) != 1:
        raise _NotFast
    # Every VM belongs to a project and is held to its quota, exactly as in the full command.
    from vmdeck.cli.stores import create_in_project
    from vmdeck.spec.templates import Overrides, resolve
    from vmdeck.vm import lifecycle

    name = positionals[0]
    template = options.get("--template", "tiny")
    start_now = bool(options.get("--start"))
    host = _host(uri)
    spec = resolve(template, name, Overrides(vcpus=options.get("--cpus"), memory_mib=options.get("--memory"),
                                             disk_gib=options.get("--disk"), cdrom=options.get("--cdrom"),
                                             accel=options.get("--accel"), network=options.get("--network")))
    progress = progress_lines()
    view = create_in_project(host, spec, options.get("--project"), progress)
    if start_now:
        lifecycle.start(host, name, wait=bool(options.get("--wait")), progress=progress)
    if options.get("--json"):
        from vmdeck.vm.inventory import show_vm

        print_json(show_vm(host, name).to_dict())
        return
    accel_name = "KVM" if view.domain_type == "kvm" else "TCG"
    print(f"created {styled(name, 'bold')} from template {template}: {view.vcpus} vCPU, "
          f"{view.memory_mib} MiB, {accel_name}" + (", started" if start_now else ""))


_COMMANDS: dict[str, Callable[[str | None, list[str]], None]] = {"list": _list, "start": _start, "create": _create}


def answer(argv: list[str]) -> bool:
    """Run `argv` (without the program name) if the fast path knows it; False: hand it to typer.

    vmdeck's own errors propagate to the caller (vmdeck.cli.main), which prints them.
    """
    args = list(argv)
    uri = None
    if args and args[0] in ("-c", "--connect"):
        if len(args) < 2:
            return False
        uri, args = args[1], args[2:]
    elif args and args[0].startswith("--connect="):
        uri, args = args[0].partition("=")[2], args[1:]
    if args in (["--version"], ["-V"]):
        from vmdeck import __version__

        print(f"vmdeck {__version__}")
        return True
    if not args or args[0] not in _COMMANDS or "--" in args or any(a in ("-h", "--help") for a in args):
        return False
    if uri is None and not os.environ.get("VMDECK_URI"):
        from vmdeck.cli.target import only_local

        if not only_local():
            return False  # several hosts registered: the typer command asks them all (vmdeck.cluster)
    try:
        _COMMANDS[args[0]](uri, args[1:])
    except _NotFast:
        return False
    sys.stdout.flush()
    return True
