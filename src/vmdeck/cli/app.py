"""The full `vmdeck` command (typer): global options and lazy sub-command registration.

vmdeck.cli.main runs it for every command line its fast path does not answer."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import typer
import typer.main
from typer.core import TyperGroup

from vmdeck import __version__

if TYPE_CHECKING:
    from vmdeck.cluster.fleet import Fleet
    from vmdeck.cluster.registry import HostEntry
    from vmdeck.host.connection import Host

# Which module defines each top-level command. A command's module is imported only when that
# command runs (or for --help), so `vmdeck list` does not pay for the web server's imports.
COMMAND_MODULES: dict[str, str] = {
    **dict.fromkeys(("create", "start", "list", "show", "shutdown", "poweroff", "reboot", "reset", "pause",
                     "resume", "delete", "exec", "set", "ssh"), "lifecycle_cmds"),
    "template": "template_cmds",
    "image": "image_cmds",
    "host": "host_cmds",
    **dict.fromkeys(("cdrom", "iso", "disk", "nic"), "device_cmds"),
    **dict.fromkeys(("screenshot", "send-keys", "type", "mouse", "console", "display", "guest-info"), "console_cmds"),
    **dict.fromkeys(("hostview", "pin", "balloon"), "hostview_cmds"),
    "serve": "serve_cmds",
    "migrate": "migrate_cmds",
    "doctor": "doctor_cmds",
    "top": "top_cmds",
    **dict.fromkeys(("snapshot", "clone"), "snapshot_cmds"),
    **dict.fromkeys(("backup", "export", "import-backup"), "backup_cmds"),
    **dict.fromkeys(("project", "user", "vm", "audit"), "admin_cmds"),
    "network": "network_cmds",
    "forward": "forward_cmds",
    "remote": "remote_cmds",
    "import": "import_cmds",
    "task": "task_cmds",
}


def hide_flag_placeholders(command: Any, ctx: Any) -> None:
    """Typer's rich help prints a type placeholder (`<bool>`) beside on/off flags, which take no value:
    show none. Walks sub-groups too."""
    for param in command.get_params(ctx):
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    # Typer carries its own copy of click: a group is whatever has sub-commands.
    for sub in (getattr(command, "commands", None) or {}).values():
        hide_flag_placeholders(sub, ctx)


class LazyGroup(TyperGroup):
    """The root command group: knows every command's name, imports its module on first use."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        hide_flag_placeholders(self, ctx)
        super().format_help(ctx, formatter)

    def list_commands(self, ctx: Any) -> list[str]:
        return list(dict.fromkeys([*COMMAND_MODULES, *super().list_commands(ctx)]))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands and cmd_name in COMMAND_MODULES:
            module = importlib.import_module(f"vmdeck.cli.{COMMAND_MODULES[cmd_name]}")
            staging = typer.Typer()
            module.register(staging)
            group = typer.main.get_group(staging)
            for name, command in group.commands.items():
                hide_flag_placeholders(command, ctx)
                self.commands.setdefault(name, command)
        return super().get_command(ctx, cmd_name)


app = typer.Typer(
    name="vmdeck",
    cls=LazyGroup,
    help="vmdeck: a virtual machine manager for QEMU/KVM hosts, built on libvirt.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class State:
    """Per-invocation settings shared by every command; connections open lazily.

    Which host a command talks to is vmdeck.cli.target's decision: `--connect URI`, or the host
    registry (a command about a VM goes to that VM's host, found by the one resolver).
    """

    # Commands whose NAME argument is not an existing VM: they never resolve it to a host.
    _NOT_A_VM = {"create", "build", "make"}
    _NOT_VM_GROUPS = {"template", "image", "host", "iso"}
    # ... but `backup create NAME` and `snapshot create NAME` are about the existing VM NAME.
    _VM_CREATE_GROUPS = {"backup", "snapshot"}

    def __init__(self, uri: str | None, host_name: str | None = None) -> None:
        self.uri = uri
        self.host_name = host_name
        self._host: Host | None = None
        self._fleet: Fleet | None = None
        self._entries: list[HostEntry] | None = None

    def entries(self) -> list[HostEntry]:
        if self._entries is None:
            from vmdeck.cli.target import registered

            self._entries = registered()
        return self._entries

    def fleet(self) -> Fleet:
        """The registered hosts, opened on demand."""
        from vmdeck.cluster.fleet import Fleet

        if self._fleet is None:
            self._fleet = Fleet()
        return self._fleet

    def single_host(self) -> bool:
        """True when commands talk to one libvirt host only (--connect given, or only `local` registered)."""
        from vmdeck.cli.target import only_local

        return bool(self.uri) or (self.host_name is None and only_local(self.entries()))

    def host(self) -> Host:
        if self._host is None:
            from vmdeck.cli.target import open_host

            entries = [] if self.uri else self.entries()
            fleet = None if self.single_host() else self.fleet()
            self._host = open_host(self.uri, self.host_name, self._vm_argument(), entries, fleet)
        return self._host

    def _vm_argument(self) -> str | None:
        """The VM the running command is about: its NAME argument (read from click's context)."""
        # Typer (pinned) carries its own copy of click since 0.22: the context stack is that copy's.
        try:
            from typer._click.globals import get_current_context
        except ImportError:  # pragma: no cover - an older Typer on plain click
            from click import get_current_context  # type: ignore[no-redef]

        current = get_current_context(silent=True)
        if current is None:
            return None
        if current.info_name in self._NOT_A_VM and not (
                current.parent is not None and current.parent.info_name in self._VM_CREATE_GROUPS):
            return None
        if current.parent is not None and current.parent.info_name in self._NOT_VM_GROUPS:
            return None
        name = current.params.get("name")
        if name is None:  # `start NAME...`: one VM names its host (several go to the first host, or --host)
            names = current.params.get("names")
            name = names[0] if isinstance(names, (list, tuple)) and len(names) == 1 else None
        return name if isinstance(name, str) else None



def _print_version(value: bool) -> None:
    if value:
        print(f"vmdeck {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    ctx: typer.Context,
    connect_uri: str = typer.Option(None, "--connect", "-c", envvar="VMDECK_URI",
                                    help="libvirt URI of one host to talk to, bypassing the host registry."),
    host_name: str = typer.Option(None, "--host", "-H", envvar="VMDECK_HOST",
                                  help="Registered host the command is about (default: the VM's own host)."),
    _version: bool = typer.Option(False, "--version", "-V", is_eager=True, callback=_print_version,
                                  help="Print vmdeck's version and exit."),
) -> None:
    ctx.obj = State(connect_uri, host_name)
