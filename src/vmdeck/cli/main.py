"""Entry point of the `vmdeck` command: global options, sub-command registration, error -> exit code."""

from __future__ import annotations

import sys

import typer

from vmdeck.errors import VmdeckError
from vmdeck.host.connection import Host, connect

app = typer.Typer(
    name="vmdeck",
    help="vmdeck: a virtual machine manager for QEMU/KVM hosts, built on libvirt.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class State:
    """Per-invocation settings shared by every command; the connection opens lazily."""

    def __init__(self, uri: str | None) -> None:
        self.uri = uri
        self._host: Host | None = None

    def host(self) -> Host:
        if self._host is None:
            self._host = connect(self.uri)
        return self._host


@app.callback()
def _global(
    ctx: typer.Context,
    connect_uri: str = typer.Option(None, "--connect", "-c", envvar="VMDECK_URI",
                                    help="libvirt URI of the host (default qemu:///system)."),
) -> None:
    ctx.obj = State(connect_uri)


def _register() -> None:
    # Each area lives in its own module; registering here keeps `main` the only place that knows them all.
    from vmdeck.cli import host_cmds, image_cmds, lifecycle_cmds, template_cmds

    for module in (lifecycle_cmds, template_cmds, image_cmds, host_cmds):
        module.register(app)


_register()


def main() -> None:
    # Typer's standalone mode already turns usage errors into exit 2 and typer.Exit into its code;
    # vmdeck's own errors become one line on stderr and their exit code, never a traceback.
    try:
        app()
    except VmdeckError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
