"""One HTTP/1.1 response read off a socket by hand (cli layer): the local server's Unix socket
(vmdeck.cli.handoff) and a remote server's TLS socket (vmdeck.cli.remote_client) both answer this way.

Standard library only, and only socket-level calls: http.client and the email parser it imports cost
more than the exchange itself on a command that lists VMs (docs/PERFORMANCE.md).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~3 ms at every start)
if TYPE_CHECKING:
    import socket
    import ssl

__all__ = ["read_response"]


def read_response(conn: socket.socket | ssl.SSLSocket) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers (names in lower case) and body of the one HTTP/1.1 response on `conn` (also a TLS
    socket). vmdeck answers with a Content-Length (JSON, never streamed); without one, the body is what
    comes until the server closes."""
    from vmdeck.errors import HostError

    data = bytearray()
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise HostError("vmdeck serve closed the connection without an answer")
        data += chunk
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = [(name.strip().lower(), value.strip())
               for name, _, value in (line.partition(":") for line in lines[1:] if ":" in line)]
    length = next((value for name, value in headers if name == "content-length"), None)
    rest = bytearray(body)
    while length is None or len(rest) < int(length):
        chunk = conn.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, headers, bytes(rest)
