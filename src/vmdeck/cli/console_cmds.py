"""`vmdeck screenshot|send-keys|type|mouse|console|display|guest-info`: the VM's screen, keyboard and guest.

Thin: keys, text and the pointer are use cases (vmdeck.usecases.guest: policy and the audit line, as through
the API), the screenshot checks policy there; the rest calls the core in vmdeck.console and vmdeck.vm.guestinfo.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from vmdeck.cli.output import info, out, print_json
from vmdeck.console import input as vm_input
from vmdeck.console.display import display_info
from vmdeck.console.keys import key_names
from vmdeck.console.screen import png_size
from vmdeck.console.serial import attach_console
from vmdeck.errors import InvalidInput
from vmdeck.usecases import guest as guest_cases
from vmdeck.vm.guestinfo import guest_info


def _cases(ctx: typer.Context, command: str) -> tuple[Any, Any, Any]:
    """(Services, Actor, host) for a use case: the same functions as the API's routes."""
    from vmdeck.cli.stores import command_services
    from vmdeck.usecases import Actor

    return command_services(ctx.obj), Actor.cli(command), ctx.obj.host()


def screenshot_cmd(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The VM."),
    output: Path = typer.Option(..., "--output", "-o", help="PNG file to write."),
    screen: int = typer.Option(0, "--screen", help="Display head (0 for the first)."),
) -> None:
    """Save a PNG of the VM's screen."""
    if output.is_dir():
        raise InvalidInput(f"{output} is a directory: give a file name such as {output / 'screen.png'}")
    from vmdeck.usecases import Actor

    data = guest_cases.screenshot(Actor.cli(f"screenshot {name}"), ctx.obj.host(), name, screen)
    output.write_bytes(data)
    width, height = png_size(data)
    out.print(f"wrote {output} ({width}x{height})", markup=False)


def send_keys_cmd(
    ctx: typer.Context,
    name: str = typer.Argument(None, help="The VM."),
    keys: list[str] = typer.Argument(None, help="Keys or combinations, pressed in turn: ctrl-alt-delete enter f2"),
    list_keys: bool = typer.Option(False, "--list", help="List the key names and exit."),
    hold: int = typer.Option(vm_input.HOLD_MS, "--hold-ms", help="How long each key stays down."),
) -> None:
    """Press keys or key combinations on the VM's keyboard."""
    if list_keys:
        out.print(" ".join(key_names()), markup=False)
        return
    if not name:
        raise InvalidInput("send-keys needs a VM name and keys (or --list)")
    sent = guest_cases.send_keys(*_cases(ctx, f"send-keys {name}"), name, keys or [], hold_ms=hold)
    out.print(f"{name}: sent {sent} key press{'es' if sent != 1 else ''}", markup=False)


def type_cmd(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The VM."),
    text: str = typer.Argument(..., help=r"Text to type; \n is Enter, \t is Tab."),
    raw: bool = typer.Option(False, "--raw", help=r"Type backslashes literally (no \n \t escapes)."),
) -> None:
    """Type text on the VM's keyboard (US layout)."""
    if not raw:
        text = text.replace("\\\\", "\x00").replace("\\n", "\n").replace("\\t", "\t").replace("\x00", "\\")
    count = guest_cases.type_text(*_cases(ctx, f"type {name}"), name, text)
    out.print(f"{name}: typed {count} key{'s' if count != 1 else ''}", markup=False)


def mouse_cmd(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The VM."),
    action: str = typer.Argument(..., help="move X Y | click [left|middle|right]"),
    args: list[str] = typer.Argument(None, help="X Y for move, the button for click."),
) -> None:
    """Move the pointer to screen pixel X Y, or click a button (through the VM's tablet)."""
    args = args or []
    if action == "move":
        if len(args) != 2 or not all(a.lstrip("-").isdigit() for a in args):
            raise InvalidInput("mouse move needs two whole numbers: X Y (screen pixels)")
        guest_cases.mouse_move(*_cases(ctx, f"mouse {name} move"), name, int(args[0]), int(args[1]))
        out.print(f"{name}: pointer at {args[0]},{args[1]}", markup=False)
    elif action == "click":
        if len(args) > 1:
            raise InvalidInput("mouse click takes at most one button name")
        button = args[0] if args else "left"
        guest_cases.mouse_click(*_cases(ctx, f"mouse {name} click"), name, button)
        out.print(f"{name}: {button} click", markup=False)
    else:
        raise InvalidInput(f"unknown mouse action {action!r}: use move X Y or click [BUTTON]")


def console_cmd(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The VM."),
    force: bool = typer.Option(False, "--force", help="Take the console over from another client."),
) -> None:
    """Attach to the VM's serial console (Ctrl+] leaves)."""
    reason = attach_console(ctx.obj.host(), name, announce=info, force=force)
    info(f"\r\n{reason}")


def display_cmd(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The VM."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Show how to reach the VM's graphical console (its VNC socket, or address and ports)."""
    shown = display_info(ctx.obj.host().lookup(name))
    if as_json:
        print_json({"vm": shown.vm, "type": shown.type, "listen": shown.listen, "port": shown.port,
                    "socket": shown.socket, "websocket": shown.websocket, "uri": shown.uri,
                    "websocket_uri": shown.websocket_uri, "loopback_only": shown.loopback_only})
        return
    if shown.socket is not None:
        out.print(f"{shown.type.upper()}: Unix socket {shown.socket}   (root and QEMU only)", markup=False)
        out.print(f"as root: virt-viewer --connect {ctx.obj.host().uri} {shown.vm}   or vmdeck's web UI "
                  "(from another machine: through its web UI, or virt-viewer over qemu+ssh://)", markup=False)
        return
    out.print(f"{shown.type.upper()}: {shown.uri}   (e.g. vncviewer {shown.listen}::{shown.port})", markup=False)
    if shown.websocket_uri:
        out.print(f"websocket: {shown.websocket_uri}   (noVNC and other browser clients)", markup=False)
    if shown.loopback_only:
        out.print("listening on loopback only: from another machine use an SSH tunnel "
                  f"(ssh -L {shown.port}:{shown.listen}:{shown.port} HOST) or vmdeck's web UI", markup=False)


def guest_info_cmd(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The VM."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Show what the guest reports through its agent: OS, hostname, addresses, filesystems."""
    got = guest_info(ctx.obj.host(), name)
    if as_json:
        print_json(got)
        return
    os_name = got.os.get("pretty-name") or got.os.get("name") or "-"
    kernel = " ".join(v for v in (got.os.get("kernel-release"), got.os.get("machine")) if v)
    out.print(f"[bold]{name}[/bold]  hostname {got.hostname or '-'}")
    out.print(f"  OS: {os_name}" + (f"  (kernel {kernel})" if kernel else ""), markup=False)
    table = Table("INTERFACE", "MAC", "ADDRESSES", box=None, header_style="bold")
    for iface in got.interfaces:
        table.add_row(iface.name, iface.mac or "", " ".join(iface.addresses) or "-")
    out.print(table)
    if got.filesystems:
        fs_table = Table("MOUNT", "TYPE", "DEVICE", "USED", "TOTAL", box=None, header_style="bold")
        for fs in got.filesystems:
            fs_table.add_row(fs.mountpoint, fs.type, fs.device, _gib(fs.used_bytes), _gib(fs.total_bytes))
        out.print(fs_table)
    else:
        out.print("  filesystems: none reported", markup=False)
    for command, why in got.unavailable.items():
        info(f"{command}: not answered ({why})")


def _gib(value: int | None) -> str:
    return f"{value / 1024**3:.1f} GiB" if value is not None else "-"


def register(app: typer.Typer) -> None:
    app.command("screenshot")(screenshot_cmd)
    app.command("send-keys")(send_keys_cmd)
    app.command("type")(type_cmd)
    app.command("mouse")(mouse_cmd)
    app.command("console")(console_cmd)
    app.command("display")(display_cmd)
    app.command("guest-info")(guest_info_cmd)
