"""A websocket to a vmdeck server, on the TLS connection whose certificate was pinned (cli layer).

The serial console and the SSH tunnel through a remote (`vmdeck --remote R console|ssh NAME`) are the
server's console websockets: a single-use ticket asked for with the remote's token (POST
/api/vms/{name}/console/ticket, as the web page asks with its session), then the websocket, on a
connection opened by vmdeck.cli.remote_client (fingerprint checked before anything is sent) and carrying
the token too: the server matches the ticket to the token's user.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
from urllib.parse import quote

from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from vmdeck.cli.remote_client import NotAllowed, RemoteClient, open_pinned
from vmdeck.console.terminal import ESCAPE, raw_terminal
from vmdeck.errors import HostError

__all__ = ["open_console", "attach_terminal", "ESCAPE"]


def open_console(client: RemoteClient, name: str, kind: str) -> ClientConnection:
    """The open websocket of VM `name`'s console of `kind` ("serial", "ssh"); vmdeck's errors (and exit
    codes) for a VM unknown, not running, or not the caller's (the ticket's answer)."""
    ticket = client.request("POST", f"/api/vms/{quote(name, safe='')}/console/ticket", {"kind": kind})
    path = str(ticket["path"])
    conn = open_pinned(client)
    host = client.url.partition("://")[2].split("/", 1)[0]
    try:
        # ws:// on a socket that is already TLS: websockets must not wrap it a second time.
        return connect(f"ws://{host}{path}", sock=conn, additional_headers={"Authorization": f"Bearer {client.token}"},
                       compression=None, max_size=None, open_timeout=60, ping_interval=None)
    except InvalidStatus as refused:
        conn.close()
        status = refused.response.status_code
        if status in (401, 403):
            raise NotAllowed(f"the server at {client.url} refused the {kind} console of {name} (HTTP {status})") from None
        raise HostError(f"the server at {client.url} refused the {kind} console of {name} (HTTP {status})") from None
    except (OSError, TimeoutError) as err:
        conn.close()
        raise HostError(f"no {kind} console of {name} from the server at {client.url}: {err}") from err




def attach_terminal(ws: ClientConnection, infd: int, outfd: int) -> str:
    """The terminal on the console websocket until Ctrl+], the end of input or the console's end;
    returns why it ended, in vmdeck.console.serial's words."""
    done = threading.Event()
    reasons: list[str] = []  # the first one is the answer

    def down() -> None:
        try:
            for message in ws:
                os.write(outfd, message if isinstance(message, bytes) else message.encode())
        except (ConnectionClosed, OSError):
            pass
        reasons.append("the console closed (the VM stopped?)")
        done.set()

    threading.Thread(target=down, daemon=True).start()
    with raw_terminal(infd):
        while not done.is_set():
            if not select.select([infd], [], [], 0.2)[0]:
                continue
            try:
                data = os.read(infd, 4096)
            except OSError:
                data = b""
            if not data:
                reasons.append("end of input")
                break
            if ESCAPE in data:
                data = data[: data.index(ESCAPE)]
                reasons.append("detached")
            if data:
                with contextlib.suppress(ConnectionClosed):
                    ws.send(data)
            if reasons:
                break
    ws.close()
    return reasons[0]


