"""stdin/stdout to a VM's SSH tunnel through a vmdeck server (cli layer): the ProxyCommand of
`vmdeck --remote R ssh NAME`, run by ssh(1) as `python -m vmdeck.cli.ssh_bridge`.

The remote and the VM come in the environment (VMDECK_BRIDGE_REMOTE, VMDECK_BRIDGE_VM), set by the
command that runs ssh: the ProxyCommand string ssh hands to a shell holds only this interpreter's path
and this module's name, never anything a user typed.
"""

from __future__ import annotations

import os
import sys
import threading

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection

from vmdeck.cli.remote_client import RemoteClient
from vmdeck.cli.remote_socket import open_console

__all__ = ["REMOTE_VARIABLE", "VM_VARIABLE", "bridge", "banner"]

REMOTE_VARIABLE = "VMDECK_BRIDGE_REMOTE"
VM_VARIABLE = "VMDECK_BRIDGE_VM"
_CHUNK = 1 << 16


def bridge(ws: ClientConnection, infd: int, outfd: int) -> None:
    """Bytes both ways until either side ends (ssh closes stdin, or the tunnel closes)."""

    def down() -> None:
        try:
            for message in ws:
                os.write(outfd, message if isinstance(message, bytes) else message.encode())
        except (ConnectionClosed, OSError):
            pass
        finally:
            os.close(outfd)  # ssh sees the end of the connection

    thread = threading.Thread(target=down, daemon=True)
    thread.start()
    try:
        while data := os.read(infd, _CHUNK):
            ws.send(data)
    except (ConnectionClosed, OSError):
        pass
    finally:
        ws.close()
    thread.join(30)


def banner(client: RemoteClient, name: str, timeout: float) -> bool:
    """Whether the guest's SSH server greets through the tunnel within `timeout` seconds."""
    ws = open_console(client, name, "ssh")
    try:
        return ws.recv(timeout=timeout, decode=False).startswith(b"SSH-")
    except (ConnectionClosed, TimeoutError):
        return False
    finally:
        ws.close()


def main() -> None:
    from vmdeck.cli import remotes
    from vmdeck.errors import VmdeckError

    try:
        remote = remotes.load().get(os.environ[REMOTE_VARIABLE])
        ws = open_console(RemoteClient(remote.url, remote.token, remote.fingerprint), os.environ[VM_VARIABLE], "ssh")
    except (VmdeckError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)  # ssh shows it and exits 255
        sys.exit(getattr(error, "exit_code", 2))
    bridge(ws, sys.stdin.fileno(), sys.stdout.fileno())


if __name__ == "__main__":
    main()
