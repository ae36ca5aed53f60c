"""Entry point of the `vmdeck` command: the fast path first, then the full typer command; error -> exit code.

This module stays light on purpose: it imports neither typer nor rich nor the core, so that
`vmdeck --version`, `vmdeck list` and `vmdeck start NAME` only pay for what they use
(vmdeck.cli.fast; tests/unit/test_cli_fast.py keeps it so).
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> None:
    # Typer's standalone mode already turns usage errors into exit 2 and typer.Exit into its code;
    # vmdeck's own errors become one line on stderr and their exit code; anything else (a bug) one
    # line and exit 1: never a traceback.
    if sys.argv[1:] in (["--version"], ["-V"]):  # before any other import: scripts call it to probe
        from vmdeck import __version__

        print(f"vmdeck {__version__}")
        return
    from vmdeck.errors import VmdeckError

    try:
        from vmdeck.cli.remote_target import split_remote

        remote, argv = split_remote(sys.argv[1:])
        if remote is not None:
            from vmdeck.cli import remotes
            from vmdeck.cli.fast import answer_remote
            from vmdeck.cli.remote_client import RemoteClient, RemoteServer

            chosen = remotes.load().get(remote)
            if answer_remote(RemoteServer(RemoteClient(chosen.url, chosen.token, chosen.fingerprint)), argv):
                return
            from vmdeck.cli.remote_run import run

            run(chosen, argv)
            return
        from vmdeck.cli.fast import answer

        if answer(sys.argv[1:]):
            return
        from vmdeck.cli.app import app

        app()
    except VmdeckError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as error:  # the last resort: a bug, never a traceback for the user
        import os

        if os.environ.get("VMDECK_DEBUG"):
            import traceback

            traceback.print_exc()
        detail = " ".join(str(error).split()) or "no message"
        print(f"error: internal error ({type(error).__name__}): {detail} (VMDECK_DEBUG=1 shows where)",
              file=sys.stderr)
        sys.exit(1)


def __getattr__(name: str) -> object:
    # `from vmdeck.cli.main import app` keeps working (the typer app lives in vmdeck.cli.app).
    if name == "app":
        from vmdeck.cli.app import app

        return app
    raise AttributeError(name)


if __name__ == "__main__":
    main()
