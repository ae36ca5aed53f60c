"""The customer's commands against a vmdeck server (cli layer): `vmdeck --remote R list`, `R:vm` names, or
the remote chosen with `vmdeck remote switch`. Each command sends the REST call the web UI sends, with the
remote's API token, and prints through the same renderers as in-process (vmdeck.cli.vm_views), so the
output, the --json shape and the exit codes are the same whether the VM is here or there.
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import typer

from vmdeck.cli.output import info, out, print_json
from vmdeck.cli.remote_client import RemoteClient
from vmdeck.cli.remotes import Remote
from vmdeck.cli.vm_views import render_list, render_show
from vmdeck.errors import InvalidInput
from vmdeck.vm.inventory import VmSummary

__all__ = ["app", "run"]

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True,
                  context_settings={"help_option_names": ["-h", "--help"]})
_client: RemoteClient | None = None
_remote: str | None = None  # its name: `ssh` hands it to its ProxyCommand


def _api() -> RemoteClient:
    assert _client is not None, "run() sets the client"
    return _client


def _vm(name: str) -> str:
    return f"/api/vms/{quote(name, safe='')}"


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json")) -> None:
    """List the VMs you may see on the server."""
    vms = [VmSummary(**{k: v for k, v in vm.items() if k in VmSummary.__dataclass_fields__})
           for vm in _api().request("GET", "/api/vms")]
    render_list(vms, {}, as_json)


@app.command()
def show(name: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Show one VM: settings, state and devices."""
    details: dict[str, Any] = _api().request("GET", _vm(name))
    details["devices"] = _api().request("GET", f"{_vm(name)}/devices")
    render_show(details, as_json)


@app.command()
def create(
    name: str,
    template: str = typer.Option(None, "--template", "-t", help="Template (base form) to start from."),
    cpus: int = typer.Option(None, "--cpus"),
    memory: int = typer.Option(None, "--memory", help="Memory in MiB."),
    disk: float = typer.Option(None, "--disk", help="Size of the first disk in GiB."),
    cdrom: str = typer.Option(None, "--cdrom", help="Name of an ISO in the server's ISO library."),
    network: str = typer.Option(None, "--network"),
    image: str = typer.Option(None, "--image", help="Library image the disk is a linked clone of."),
    ssh_key: list[Path] = typer.Option(None, "--ssh-key", help="Public key file for the user (repeatable)."),
    user: str = typer.Option(None, "--user"),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the user's password from stdin."),
    hostname: str = typer.Option(None, "--hostname"),
    user_data: Path = typer.Option(None, "--user-data"),
    project: str = typer.Option(None, "--project"),
    start_now: bool = typer.Option(False, "--start"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create a VM from a template on the server, in your project and within its quotas."""
    body: dict[str, Any] = {"name": name, "template": template, "vcpus": cpus, "memory_mib": memory,
                            "disk_gib": disk, "cdrom": cdrom, "network": network, "image": image, "user": user,
                            "hostname": hostname, "project": project, "start": start_now}
    body["ssh_keys"] = [_read(path) for path in ssh_key or []]
    if user_data is not None:
        body["user_data"] = _read(user_data)
    if password_stdin:
        body["password"] = sys.stdin.readline().rstrip("\n")
    made = _api().request("POST", "/api/vms", {k: v for k, v in body.items() if v is not None})
    if as_json:
        print_json(made)
        return
    out.print(f"created [bold]{name}[/bold] from template {made.get('template') or template or '-'}: "
              f"{made['vcpus']} vCPU, {made['memory_mib']} MiB, {made['accel']}" + (", started" if start_now else ""))


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as err:
        raise InvalidInput(f"cannot read {path}: {err.strerror}") from err


@app.command()
def start(name: str, wait: bool = typer.Option(False, "--wait"),
          timeout: float = typer.Option(120.0, "--timeout")) -> None:
    """Start (power on) a VM."""
    _api().request("POST", f"{_vm(name)}/start", {"wait": wait, "timeout": timeout})
    out.print(f"{name} started" + (" and ready" if wait else ""))


@app.command()
def shutdown(name: str, timeout: float = typer.Option(60.0, "--timeout"),
             force: bool = typer.Option(False, "--force")) -> None:
    """Shut a VM down through ACPI."""
    reply = _api().request("POST", f"{_vm(name)}/shutdown", {"timeout": timeout, "force": force})
    out.print(f"{name}: {reply['result']}")


def _power(verb: str, outcome: str, help_text: str) -> None:
    def command(name: str) -> None:
        _api().request("POST", f"{_vm(name)}/{verb}")
        out.print(outcome.format(name=name))

    command.__doc__ = help_text
    app.command(verb)(command)


def _power_verbs() -> None:
    from vmdeck.vm.state import POWER_VERBS

    for verb in POWER_VERBS.values():
        if verb.name not in ("start", "shutdown"):
            _power(verb.name, verb.outcome, verb.help)


_power_verbs()


@app.command()
def delete(name: str, force: bool = typer.Option(False, "--force"),
           keep_disks: bool = typer.Option(False, "--keep-disks")) -> None:
    """Delete a VM and the disks vmdeck created for it."""
    query = urlencode({"force": str(force).lower(), "keep_disks": str(keep_disks).lower()})
    reply = _api().request("DELETE", f"{_vm(name)}?{query}")
    removed = reply.get("removed_volumes") or []
    out.print(f"deleted {name}" + (f" and {len(removed)} volume(s)" if removed else ""))


@app.command("exec")
def exec_(name: str = typer.Argument(...), command: list[str] = typer.Argument(...),
          timeout: float = typer.Option(60.0, "--timeout")) -> None:
    """Run a command in the guest (through its agent); exit with its status."""
    reply = _api().request("POST", f"{_vm(name)}/exec", {"command": command, "timeout": timeout})
    sys.stdout.buffer.write(base64.b64decode(reply["stdout_b64"]))
    sys.stdout.flush()
    sys.stderr.buffer.write(base64.b64decode(reply["stderr_b64"]))
    sys.stderr.flush()
    if reply.get("signal"):
        info(f"killed by signal {reply['signal']}")
    raise typer.Exit(reply["exit_code"])


@app.command()
def screenshot(name: str, output: Path = typer.Option(..., "--output", "-o", help="PNG file to write.")) -> None:
    """Save the VM's screen as PNG."""
    png = _api().request("GET", f"{_vm(name)}/screenshot")
    output.write_bytes(png)
    out.print(f"{name}: screen saved to {output} ({len(png)} bytes)")


@app.command("guest-info")
def guest_info(name: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """What the guest agent reports: OS, hostname, addresses."""
    reply = _api().request("GET", f"{_vm(name)}/guest")
    if as_json:
        print_json(reply)
        return
    for key, value in reply.items():
        out.print(f"{key}: {value}", highlight=False)


@app.command()
def hostview(name: str, as_json: bool = typer.Option(False, "--json",
                                                     help="Print the snapshot as JSON (units in the field names).")
             ) -> None:
    """How the VM looks from the server's host: QEMU process and threads, scheduling, memory, storage, CPU mode
    (the host's own facts are its administrator's: a customer's view leaves them out)."""
    from vmdeck.cli.hostview_cmds import render_vm
    from vmdeck.hostview.collect import Snapshot

    reply = _api().request("GET", f"{_vm(name)}/hostview")
    snapshot = {"taken_at_epoch_s": reply["taken_at_epoch_s"], "collect_ms": reply["collect_ms"],
                "host": reply["host"], "vms": [reply["detail"]]}
    if as_json:  # the shape of `vmdeck hostview NAME --json` on the host
        print_json(snapshot)
        return
    shown = Snapshot.from_dict(snapshot)
    out.print(render_vm(shown.vms[0], shown))


@app.command()
def display(name: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """A one-time URL of the VM's screen in a browser (it opens the console once, within two minutes)."""
    reply = _api().request("POST", f"{_vm(name)}/console/link")
    if as_json:
        print_json(reply)
        return
    out.print(reply["url"], markup=False, highlight=False, soft_wrap=True)
    info(f"opens {name}'s screen once, within {int(reply['expires_in'])} s; it signs nobody in")


@app.command()
def console(name: str, force: bool = typer.Option(False, "--force", help="Take the console over from another client.")) -> None:
    """Attach to the VM's serial console through the server (Ctrl+] leaves)."""
    from vmdeck.cli.remote_socket import attach_terminal, open_console

    del force  # the server's console always takes over (a tab left open must not lock its owner out)
    ws = open_console(_api(), name, "serial")
    info(f"connected to {name}'s serial console (Ctrl+] leaves)")
    sys.stdout.flush()
    reason = attach_terminal(ws, sys.stdin.fileno(), sys.stdout.fileno())
    info(f"\r\n{reason}")


@app.command()
def ssh(
    name: str = typer.Argument(..., help="The VM."),
    command: list[str] = typer.Argument(None, help="Command to run (after --); none: a login shell."),
    user: str = typer.Option(None, "--user", "-l", help="Log in as (default: the user cloud-init created)."),
    identity: Path = typer.Option(None, "--identity", "-i", help="Private key file."),
    timeout: float = typer.Option(120.0, "--timeout", help="Seconds to wait for a booting guest's SSH server; "
                                                            "0: do not wait."),
) -> None:
    """SSH into the guest through the server (a websocket to its port forward: no other port needed)."""
    import os
    import shlex
    import shutil
    import time

    from vmdeck.cli import ssh_bridge
    from vmdeck.errors import GuestError, HostError, NotFound, StateError
    from vmdeck.vm.ssh import known_hosts_path

    details: dict[str, Any] = _api().request("GET", _vm(name))
    if not any(f["guest_port"] == 22 and f["proto"] == "tcp" for f in details["port_forwards"]):
        raise NotFound(f"VM {name!r} has no port forward to its port 22 "
                       "(create it from an image, or with a template whose NIC has forward_ssh: true)")
    if details["state"] != "running":
        raise StateError(name, details["state"], "running", "ssh into")
    login = user or details["extra"].get("login-user")
    if not login:
        raise InvalidInput(f"VM {name!r} records no login user: give --user")
    program = shutil.which("ssh") or "/usr/bin/ssh"
    if not Path(program).exists():
        raise HostError("ssh is not installed (Debian package openssh-client)")
    if identity is not None and not identity.expanduser().is_file():
        raise InvalidInput(f"identity file {identity} does not exist")
    started = time.monotonic()
    while timeout > 0 and not ssh_bridge.banner(_api(), name, min(15.0, timeout)):
        left = timeout - (time.monotonic() - started)
        if left <= 0:
            raise GuestError(f"VM {name!r} is not reachable by ssh after {timeout:g} s: SSH does not answer")
        info(f"waiting for {name} to be reachable by ssh: SSH does not answer (up to {left:.0f} s more)")
        time.sleep(min(2.0, left))
    known = known_hosts_path()
    known.parent.mkdir(parents=True, exist_ok=True)
    # ssh hands ProxyCommand to a shell: it holds this interpreter and a module name only (quoted, and %
    # doubled for ssh's own tokens); the remote and the VM travel in the environment.
    proxy = shlex.join([sys.executable, "-m", "vmdeck.cli.ssh_bridge"]).replace("%", "%%")
    argv = [program, "-o", f"ProxyCommand={proxy}", "-o", "StrictHostKeyChecking=accept-new",
            "-o", f"UserKnownHostsFile={known}", "-o", f"HostKeyAlias=vmdeck-{details['uuid']}",
            "-o", "ConnectTimeout=15"]
    if identity is not None:
        argv += ["-i", str(identity.expanduser()), "-o", "IdentitiesOnly=yes"]
    argv += ["-l", login, f"vmdeck-{details['uuid']}", *(command or [])]
    assert _remote is not None, "run() sets the remote"
    env = {**os.environ, ssh_bridge.REMOTE_VARIABLE: _remote, ssh_bridge.VM_VARIABLE: name}
    sys.stdout.flush()
    os.execve(program, argv, env)  # an argument list, never a shell: ssh's exit status is ours


token_app = typer.Typer(help="Your API tokens on the server.", no_args_is_help=True)
app.add_typer(token_app, name="token")


@token_app.command("create")
def token_create(name: str = typer.Option("cli", "--name"),
                 expires: int = typer.Option(30, "--expires-days", help="Days until it expires."),
                 project: str = typer.Option(None, "--project"), role: str = typer.Option(None, "--role"),
                 as_json: bool = typer.Option(False, "--json")) -> None:
    """Create a token (never more than you hold); the secret is shown once."""
    body = {"name": name, "expires_in_days": expires, "project": project, "role": role}
    made = _api().request("POST", "/api/auth/tokens", {k: v for k, v in body.items() if v is not None})
    if as_json:
        print_json(made)
        return
    out.print(f"token {made['id']} ({made.get('role') or 'your roles'}, project {made.get('project') or '-'}, "
              f"expires {made.get('expires_at') or 'never'}):\n{made['token']}", highlight=False)


@token_app.command("list")
def token_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """Your tokens on the server (never their secrets)."""
    tokens = _api().request("GET", "/api/auth/tokens")
    if as_json:
        print_json(tokens)
        return
    for t in tokens:
        out.print(f"{t['id']}  {t.get('name', '')}  {t.get('project') or '-'}  {t.get('role') or '-'}  "
                  f"expires {t.get('expires_at') or 'never'}", highlight=False)


@token_app.command("revoke")
def token_revoke(token_id: int) -> None:
    """Revoke one of your tokens (it stops working at once)."""
    _api().request("DELETE", f"/api/auth/tokens/{token_id}")
    out.print(f"token {token_id} revoked")


def _register_more() -> None:
    from vmdeck.cli import remote_manage

    remote_manage.register(app)


_register_more()


def run(remote: Remote, argv: list[str]) -> None:
    """Run one customer command against `remote` (typer's standalone mode: exits with the code)."""
    global _client, _remote
    _client = RemoteClient(remote.url, remote.token, remote.fingerprint)
    _remote = remote.name
    app(args=argv, prog_name=f"vmdeck --remote {remote.name}")
