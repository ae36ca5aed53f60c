"""`vmdeck serve`: run the web UI and REST API (ASGI app in vmdeck.api, served by uvicorn)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from vmdeck.cli.output import out


def serve(
    ctx: typer.Context,
    listen: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (loopback by default)."),
    port: int = typer.Option(8470, "--port", help="TCP port."),
    db: str = typer.Option(None, "--db", help="The control plane's database: a file, sqlite:///PATH or "
                           "postgresql://USER@HOST/DB, shared by several servers (default: $VMDECK_DB, else "
                           "<data dir>/web/vmdeck.sqlite)."),
    log_level: str = typer.Option("warning", "--log-level", help="uvicorn log level."),
    allowed_host: list[str] = typer.Option([], "--allowed-host", help="A host name browsers reach this server "
                                           "by (Host header); loopback names are always allowed. May be repeated."),
    tls_cert: Path = typer.Option(None, "--tls-cert", help="PEM certificate: serve HTTPS."),
    tls_key: Path = typer.Option(None, "--tls-key", help="PEM private key of --tls-cert."),
    insecure_http: bool = typer.Option(False, "--insecure-http", help="Allow plain HTTP on a non-loopback "
                                       "address (passwords and consoles cross the network unencrypted)."),
    tls_self_signed: bool = typer.Option(False, "--tls-self-signed", help="Serve HTTPS with a certificate made "
                                         "on the first start and kept beside the database (customers pin its "
                                         "fingerprint with vmdeck remote add)."),
) -> None:
    """Serve the web UI and REST API; the first start creates the admin account and prints its password."""
    from vmdeck.errors import InvalidInput
    from vmdeck.store.db import locate

    location = locate(db or None)  # a setting vmdeck cannot use stops here: InvalidInput, exit code 2
    if (tls_cert is None) != (tls_key is None):
        raise InvalidInput("--tls-cert and --tls-key go together")
    if tls_self_signed and tls_cert is not None:
        raise InvalidInput("--tls-self-signed or --tls-cert/--tls-key, not both")
    if tls_self_signed:
        from vmdeck.api.selfsigned import ensure_self_signed
        from vmdeck.api.settings import default_db_path as _default_db

        # Beside the database file; on PostgreSQL (no file) in the default database's private folder.
        names = [n for n in [listen, *allowed_host] if n not in ("0.0.0.0", "::")]
        tls_cert, tls_key = ensure_self_signed((location.path or _default_db()).parent / "tls", names)
    if tls_cert is None and not is_loopback(listen) and not insecure_http:
        raise InvalidInput(f"--host {listen} is reachable from the network: give --tls-cert/--tls-key "
                           "(or --insecure-http to serve plain HTTP anyway)")
    if tls_key is not None:
        check_private_key(tls_key)
    import uvicorn

    from vmdeck.api import Settings, create_app
    from vmdeck.api.connlimits import KEEP_ALIVE_S, GuardedHttpProtocol
    from vmdeck.api.hardening import LOOPBACK_NAMES
    from vmdeck.api.local_socket import LocalSocketServer, bind_local_socket
    from vmdeck.api.settings import default_db_path
    from vmdeck.local_socket import socket_path

    hosts = tuple(dict.fromkeys([*LOOPBACK_NAMES, *allowed_host] + ([] if is_wildcard(listen) else [listen])))
    # On PostgreSQL there is no file: the local socket goes where the default one would be.
    db_path = location.path or default_db_path()
    db_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # as the database makes it
    # Bound before the app starts any thread: the umask that keeps the socket private is process-wide.
    local, why_not = bind_local_socket(socket_path(db_path))
    settings = Settings(uri=ctx.obj.uri, db_path=db_path, db_url=None if location.is_sqlite else location.url,
                        admin_password=os.environ.get("VMDECK_ADMIN_PASSWORD") or None, allowed_hosts=hosts,
                        local_socket=socket_path(db_path) if local else None)
    app = create_app(settings)
    shown = f"[{listen}]" if ":" in listen else listen
    scheme = "https" if tls_cert else "http"
    out.print(f"vmdeck web UI: [bold]{scheme}://{shown}:{port}/[/bold]  (REST API: /api, OpenAPI: /api/openapi.json)")
    out.print(f"answers to host names: {', '.join(hosts)}", highlight=False)
    if tls_cert is not None:
        import hashlib
        import ssl

        der = ssl.PEM_cert_to_DER_cert(tls_cert.read_text())
        out.print(f"TLS certificate: {tls_cert} (SHA256:{hashlib.sha256(der).hexdigest()}: customers compare it "
                  "with what vmdeck remote add shows)", highlight=False)
    password = app.state.ctx.admin_password
    if password:
        out.print(f"first start: created user [bold]admin[/bold] with one-time password [bold]{password}[/bold] "
                  "(change it: POST /api/auth/password)", highlight=False)
    elif app.state.ctx.admin_created:
        out.print("first start: created user admin with the password from VMDECK_ADMIN_PASSWORD")
    out.print(f"database: {location.shown}", highlight=False)
    if local is not None:
        out.print(f"the vmdeck command on this machine hands list, start and create to: {settings.local_socket}",
                  highlight=False)
    else:
        out.print(f"no socket for the vmdeck command ({why_not}): it works without this server", highlight=False)
    # proxy_headers off: vmdeck is reached directly; X-Forwarded-* from a client must not change its origin.
    # loop="asyncio", not uvloop: under uvloop the server stopped answering websocket pings for 20 s and
    # more while libvirtd restarted (tests/integration/test_faults_libvirtd_restart.py); asyncio's loop
    # kept the event stream alive through all 20 restarts.
    # GuardedHttpProtocol: uvicorn's httptools protocol with a deadline for request headers, a cap on their
    # size and on connections per client address (vmdeck.api.connlimits); bodies: vmdeck.api.limits.
    config = uvicorn.Config(app, host=listen, port=port, log_level=log_level, proxy_headers=False,
                            server_header=False, loop="asyncio", ssl_certfile=str(tls_cert) if tls_cert else None,
                            ssl_keyfile=str(tls_key) if tls_key else None, http=GuardedHttpProtocol,
                            timeout_keep_alive=KEEP_ALIVE_S)
    server = LocalSocketServer(config, local)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.remove_socket()  # also when start-up failed before uvicorn's shutdown could
    if not server.started:
        raise SystemExit(3)  # uvicorn's own exit code when it cannot start (the port is taken, ...)


def check_private_key(path: Path) -> None:
    """Refuse a TLS key other users can read (InvalidInput, exit 2): it would already be theirs."""
    from vmdeck.errors import InvalidInput, NotFound

    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise NotFound(f"--tls-key {path}: no such file") from None
    if mode & 0o004:
        raise InvalidInput(f"--tls-key {path} is readable by every user (mode {mode & 0o777:04o}): "
                           f"chmod o-rwx {path}, and make a new key if others may have read it")


def is_wildcard(address: str) -> bool:
    return address in ("0.0.0.0", "::", "")


def is_loopback(address: str) -> bool:
    """127.0.0.0/8, ::1 and localhost: reachable from this machine only."""
    import ipaddress

    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def register(app: typer.Typer) -> None:
    app.command()(serve)
