"""`vmdeck remote add|list|switch|remove|show`: the vmdeck servers this user works with (cli layer).

`add` makes the first contact: it shows the server certificate's SHA-256 fingerprint and pins it
(`--accept-fingerprint` makes a script insist on the one it expects), then stores an API token: given on
stdin, or made from a user name and password (the password itself is never stored).
"""

from __future__ import annotations

import sys

import typer
from rich.table import Table

from vmdeck.cli import remotes
from vmdeck.cli.output import info, out, print_json
from vmdeck.cli.remote_client import CertificateChanged, RemoteClient, server_fingerprint
from vmdeck.errors import InvalidInput

remote_app = typer.Typer(help="The vmdeck servers you work with (vmdeck --remote NAME ..., NAME:vm).",
                         no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(remote_app, name="remote")


def _stdin_line(what: str) -> str:
    line = sys.stdin.readline().rstrip("\n")
    if not line:
        raise InvalidInput(f"no {what} on stdin")
    return line


@remote_app.command("add")
def add(
    name: str = typer.Argument(..., help="A short name for the server."),
    url: str = typer.Argument(..., help="https://HOST:PORT of its vmdeck serve."),
    token_stdin: bool = typer.Option(False, "--token-stdin", help="Read an API token from stdin."),
    user: str = typer.Option(None, "--user", help="Sign in as this user (with --password-stdin) to make a token."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
    accept_fingerprint: str = typer.Option(None, "--accept-fingerprint",
                                           help="SHA256:... the server's certificate must have (for scripts)."),
    expires_days: int = typer.Option(90, "--expires-days", help="Lifetime of a token made with --user."),
) -> None:
    """Add a server: pin its certificate and keep an API token for it."""
    remotes.check_name(name)
    url = remotes.check_url(url)
    known = remotes.load()
    if name in known.remotes:
        raise InvalidInput(f"a remote named {name!r} exists already (vmdeck remote remove {name} first)")
    if token_stdin == bool(user):
        raise InvalidInput("give one of --token-stdin or --user NAME --password-stdin")
    seen = server_fingerprint(url)
    if seen is not None:
        if accept_fingerprint is not None and remotes.normalize_fingerprint(accept_fingerprint) != seen:
            raise CertificateChanged(f"the server at {url} shows certificate {seen}, not the expected "
                                     f"{remotes.normalize_fingerprint(accept_fingerprint)}: not added")
        info(f"certificate of {url}: {seen} (pinned)")
    if token_stdin:
        token = _stdin_line("token")
    else:
        if not password_stdin:
            raise InvalidInput("--user needs --password-stdin (the password is never a command-line argument)")
        token = _token_from_password(url, seen, user, _stdin_line("password"), expires_days)
    client = RemoteClient(url, token, seen)
    me = client.request("GET", "/api/auth/me")  # the token works, or this fails with its exit code
    known.remotes[name] = remotes.Remote(name=name, url=url, fingerprint=seen, token=token)
    remotes.save(known)
    out.print(f"remote {name} added: {url} as {me.get('username')} (vmdeck --remote {name} list, "
              f"or vmdeck remote switch {name})", highlight=False)


def _token_from_password(url: str, fingerprint: str | None, user: str, password: str, days: int) -> str:
    cookies: dict[str, str] = {}
    client = RemoteClient(url, None, fingerprint)
    signed_in = client.request("POST", "/api/auth/login", {"username": user, "password": password},
                               cookies_to=cookies)
    session = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items()),
               "X-CSRF-Token": signed_in.get("csrf_token") or ""}
    made = client.request("POST", "/api/auth/tokens", {"name": "vmdeck-cli", "expires_in_days": days},
                          headers=session)
    client.request("POST", "/api/auth/logout", headers=session)
    return str(made["token"])


@remote_app.command("list")
def list_(as_json: bool = typer.Option(False, "--json")) -> None:
    """The servers you added; * marks the current one (local: this machine)."""
    known = remotes.load()
    rows = [{"name": remotes.LOCAL, "url": "(this machine)", "fingerprint": None, "current": known.current == "local"}]
    rows += [{"name": r.name, "url": r.url, "fingerprint": r.fingerprint, "current": known.current == r.name}
             for r in known.remotes.values()]
    if as_json:
        print_json(rows)
        return
    table = Table("", "NAME", "URL", "CERTIFICATE", box=None, header_style="bold")
    for row in rows:
        table.add_row("*" if row["current"] else "", str(row["name"]), str(row["url"]), str(row["fingerprint"] or "-"))
    out.print(table)


@remote_app.command("switch")
def switch(name: str) -> None:
    """Make NAME the server commands go to (local: this machine again)."""
    known = remotes.load()
    if name != remotes.LOCAL:
        known.get(name)
    known.current = name
    remotes.save(known)
    out.print(f"commands now go to {name}")


@remote_app.command("remove")
def remove(name: str) -> None:
    """Forget a server and its token (the token itself stays valid until revoked or expired)."""
    known = remotes.load()
    known.get(name)
    del known.remotes[name]
    if known.current == name:
        known.current = remotes.LOCAL
    remotes.save(known)
    out.print(f"remote {name} removed")


@remote_app.command("show")
def show(name: str = typer.Argument(None), as_json: bool = typer.Option(False, "--json")) -> None:
    """One server: URL, pinned certificate, and who its token is."""
    known = remotes.load()
    remote = known.get(name or known.current)
    me = RemoteClient(remote.url, remote.token, remote.fingerprint).request("GET", "/api/auth/me")
    shown = {"name": remote.name, "url": remote.url, "fingerprint": remote.fingerprint,
             "user": me.get("username"), "roles": me.get("roles") or me.get("projects"), "current": known.current == remote.name}
    if as_json:
        print_json(shown)
        return
    for key, value in shown.items():
        out.print(f"{key}: {value}", highlight=False)
