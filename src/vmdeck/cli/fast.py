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

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~3 ms of every start)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from vmdeck.cli.handoff import LocalServer

__all__ = ["answer", "answer_remote"]

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


# Each command's options, shared by the in-process run and the hand-off to a local `vmdeck serve`.
_LIST_FLAGS = {"--json"}
_START_FLAGS = {"--wait"}
_START_VALUED: dict[str, Callable[[str], Any]] = {"--timeout": float}
_CREATE_FLAGS = {"--start", "--wait", "--json"}
_CREATE_VALUED: dict[str, Callable[[str], Any]] = {
    "--template": str, "--cpus": int, "--memory": int, "--disk": float, "--cdrom": str, "--accel": str,
    "--network": str, "--project": str}
_CREATE_ALIASES = {"-t": "--template"}
# A VM name that needs no escaping in a URL path; any other goes in-process (which explains what is wrong).
_PLAIN_NAME = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def _plain(name: str) -> bool:
    return bool(name) and set(name) <= _PLAIN_NAME


def _print_list(vms: list[dict[str, Any]], as_json: bool) -> None:
    from vmdeck.cli.plain import STATE_STYLE, print_columns, print_json

    if as_json:
        print_json(vms)
        return
    if not vms:
        print("no VMs on this host. Create one with: vmdeck create NAME (templates: vmdeck template list)")
        return
    rows = [(vm["name"], vm["state"], str(vm["vcpus"]), f"{vm['memory_mib']} MiB", vm["project"] or "-", vm["host"])
            for vm in vms]
    print_columns(("NAME", "STATE", "vCPUs", "MEMORY", "PROJECT", "HOST"), rows,
                  [("", STATE_STYLE.get(vm["state"], "")) for vm in vms])


def _list(uri: str | None, args: list[str]) -> None:
    from vmdeck.cli.plain import plain_data
    from vmdeck.vm.inventory import list_vms

    positionals, options = _options(args, _LIST_FLAGS, {})
    if positionals:
        raise _NotFast
    as_json = bool(options.get("--json"))
    # The table shows no RSS: no QEMU monitor round trips.
    _print_list(plain_data(list_vms(_host(uri), usage=as_json)), as_json)


def _list_served(server: LocalServer, args: list[str]) -> bool:
    positionals, options = _options(args, _LIST_FLAGS, {})
    if positionals:
        raise _NotFast
    vms = server.call("GET", "/api/vms", timeout=60.0)  # answered from memory: a minute means a hung server
    if vms is None:
        return False
    as_json = bool(options.get("--json"))
    _print_list(vms, as_json)
    # Several hosts: the ones that did not answer, as the in-process command names them.
    import json

    try:
        unreachable = json.loads(server.headers.get("x-vmdeck-unreachable") or "{}")
    except ValueError:
        unreachable = {}
    _print_unreachable(unreachable if isinstance(unreachable, dict) else {}, as_json)
    return True


def _print_unreachable(unreachable: dict[str, Any], as_json: bool) -> None:
    from vmdeck.cli.plain import styled

    for name, why in unreachable.items():
        if as_json:
            print(f"host {name} unreachable: {why}", file=sys.stderr)
        else:
            print(f"{styled(f'host {name} unreachable', 'red')}: {why}")


def _print_started(names: list[str], wait: bool) -> None:
    for name in dict.fromkeys(names):
        print(f"{name} started" + (" and ready" if wait else ""))


def _start(uri: str | None, args: list[str]) -> None:
    from vmdeck.cli.plain import progress_lines

    names, options = _options(args, _START_FLAGS, _START_VALUED)
    if not names:
        raise _NotFast
    wait = bool(options.get("--wait"))
    timeout = options.get("--timeout", 120.0)
    from vmdeck.cli.stores import services
    from vmdeck.usecases import Actor
    from vmdeck.usecases import vms as vm_cases

    host = _host(uri)
    progress = progress_lines()
    # Audited like the typer command and the hand-off: the same use case.
    actor = Actor.cli(f"start {' '.join(names)}")
    if len(names) == 1:
        vm_cases.start(services(), actor, host, names[0], wait=wait, timeout=timeout, progress=progress)
    else:
        vm_cases.start_many(services(), actor, host, names, wait=wait, timeout=timeout, progress=progress)
    _print_started(names, wait)


def _start_served(server: LocalServer, args: list[str]) -> bool:
    names, options = _options(args, _START_FLAGS, _START_VALUED)
    if len(names) != 1 or not _plain(names[0]):
        return False  # a boot storm starts its VMs at once in-process (vmdeck.vm.boot)
    wait = bool(options.get("--wait"))
    timeout = options.get("--timeout", 120.0)
    answered = server.call("POST", f"/api/vms/{names[0]}/start", {"wait": wait, "timeout": timeout},
                           timeout=timeout + 300.0 if wait else 300.0)
    if answered is None:
        return False
    _print_started(names, wait)
    return True


def _print_created(name: str, template: str, view: dict[str, Any], start_now: bool) -> None:
    from vmdeck.cli.plain import styled

    print(f"created {styled(name, 'bold')} from template {template}: {view['vcpus']} vCPU, "
          f"{view['memory_mib']} MiB, {view['accel']}" + (", started" if start_now else ""))


def _create(uri: str | None, args: list[str]) -> None:
    from pathlib import Path

    from vmdeck.cli.plain import print_json, progress_lines

    positionals, options = _options(args, _CREATE_FLAGS, _CREATE_VALUED, aliases=_CREATE_ALIASES)
    if len(positionals) != 1:
        raise _NotFast
    # Every VM belongs to a project and is held to its quota: the full command's use case.
    from vmdeck.cli.stores import services
    from vmdeck.spec.templates import Overrides, resolve
    from vmdeck.usecases import Actor
    from vmdeck.usecases import vms as vm_cases

    name = positionals[0]
    template = options.get("--template", "tiny")
    start_now = bool(options.get("--start"))
    cdrom = options.get("--cdrom")
    host = _host(uri)
    spec = resolve(template, name, Overrides(vcpus=options.get("--cpus"), memory_mib=options.get("--memory"),
                                             disk_gib=options.get("--disk"), cdrom=Path(cdrom) if cdrom else None,
                                             accel=options.get("--accel"), network=options.get("--network")))
    progress = progress_lines()
    view = vm_cases.create(services(), Actor.cli(f"create {name}"), spec, local=host, project=options.get("--project"),
                           start=start_now, wait=bool(options.get("--wait")), progress=progress).view
    if options.get("--json"):
        from vmdeck.vm.inventory import show_vm

        print_json(show_vm(host, name).to_dict())
        return
    _print_created(name, template, {"vcpus": view.vcpus, "memory_mib": view.memory_mib,
                                    "accel": "KVM" if view.domain_type == "kvm" else "TCG"}, start_now)


def _create_served(server: LocalServer, args: list[str]) -> bool:
    from vmdeck.cli.plain import print_json

    positionals, options = _options(args, _CREATE_FLAGS, _CREATE_VALUED, aliases=_CREATE_ALIASES)
    if len(positionals) != 1:
        raise _NotFast
    if "--cdrom" in options or not _plain(positionals[0]):
        return False  # the API's cdrom names an ISO of the library; --cdrom is a file here
    name, template = positionals[0], options.get("--template", "tiny")
    start_now, wait = bool(options.get("--start")), bool(options.get("--wait"))
    body = {"name": name, "template": template, "vcpus": options.get("--cpus"),
            "memory_mib": options.get("--memory"), "disk_gib": options.get("--disk"),
            "accel": options.get("--accel"), "network": options.get("--network"),
            "project": options.get("--project"), "start": start_now and not wait}
    view = server.call("POST", "/api/vms", body)
    if view is None:
        return False
    if start_now and wait:
        server.call("POST", f"/api/vms/{name}/start", {"wait": True}, timeout=420.0)
        view = server.call("GET", f"/api/vms/{name}")
    if options.get("--json"):
        print_json(view)
        return True
    _print_created(name, template, view, start_now)
    return True


_COMMANDS: dict[str, Callable[[str | None, list[str]], None]] = {"list": _list, "start": _start, "create": _create}
_SERVED: dict[str, Callable[[LocalServer, list[str]], bool]] = {
    "list": _list_served, "start": _start_served, "create": _create_served}


def answer_remote(server: Any, argv: list[str]) -> bool:
    """`list` and `start NAME` sent to a remote vmdeck server (`server.call` as the local socket's), without
    typer or rich; False: the full remote command (vmdeck.cli.remote_run) handles the line."""
    args = list(argv)
    if not args or args[0] not in ("list", "start") or "--" in args or any(a in ("-h", "--help") for a in args):
        return False
    try:
        if not _SERVED[args[0]](server, args[1:]):
            return False
    except _NotFast:
        return False
    sys.stdout.flush()
    return True


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
    try:
        # A running `vmdeck serve` on this machine does the work when it can (vmdeck.local_socket):
        # it has libvirt, the templates and the database open already.
        from vmdeck.cli.handoff import local_server

        server = local_server(uri)
        if server is not None and _SERVED[args[0]](server, args[1:]):
            sys.stdout.flush()
            return True
        if uri is None and not os.environ.get("VMDECK_URI"):
            from vmdeck.cli.target import only_local

            if not only_local():
                return False  # several hosts registered: the typer command asks them all (vmdeck.cluster)
        _COMMANDS[args[0]](uri, args[1:])
    except _NotFast:
        return False
    sys.stdout.flush()
    return True
