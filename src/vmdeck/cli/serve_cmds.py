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
    db: Path = typer.Option(None, "--db", help="Accounts database (default: <data dir>/web/vmdeck.sqlite)."),
    log_level: str = typer.Option("warning", "--log-level", help="uvicorn log level."),
) -> None:
    """Serve the web UI and REST API; the first start creates the admin account and prints its password."""
    import uvicorn

    from vmdeck.api import Settings, create_app
    from vmdeck.api.settings import default_db_path

    settings = Settings(uri=ctx.obj.uri, db_path=db or default_db_path(),
                        admin_password=os.environ.get("VMDECK_ADMIN_PASSWORD") or None)
    app = create_app(settings)
    shown = f"[{listen}]" if ":" in listen else listen
    out.print(f"vmdeck web UI: [bold]http://{shown}:{port}/[/bold]  (REST API: /api, OpenAPI: /api/openapi.json)")
    password = app.state.ctx.admin_password
    if password:
        out.print(f"first start: created user [bold]admin[/bold] with one-time password [bold]{password}[/bold] "
                  "(change it: POST /api/auth/password)", highlight=False)
    elif app.state.ctx.admin_created:
        out.print("first start: created user admin with the password from VMDECK_ADMIN_PASSWORD")
    out.print(f"accounts database: {settings.db_path}", highlight=False)
    # proxy_headers off: vmdeck is reached directly; X-Forwarded-* from a client must not change its origin.
    uvicorn.run(app, host=listen, port=port, log_level=log_level, proxy_headers=False, server_header=False)


def register(app: typer.Typer) -> None:
    app.command()(serve)
