"""One HTTPS request to a vmdeck server, with the certificate pinned by fingerprint (cli layer).

The server's certificate is usually self-signed (`vmdeck serve --tls-self-signed`), so no CA vouches
for it: trust comes from the SHA-256 fingerprint the user saw and pinned at `vmdeck remote add`. The
fingerprint is checked right after the TLS handshake, before the token is sent. HTTP answers become
vmdeck's errors, and so the command's exit codes, as in-process: 404 -> 3, 409 -> 4, 503 -> 5 ...
"""

from __future__ import annotations

import json
import socket
import ssl

from vmdeck.cli.wire import read_response
from vmdeck.errors import (
    Conflict,
    GuestError,
    HostError,
    InvalidInput,
    NotFound,
    TimedOut,
    VmdeckError,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (this module is on `list`'s path)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["NotAllowed", "CertificateChanged", "open_pinned", "fingerprint_of", "server_fingerprint", "RemoteClient",
           "RemoteServer"]


class NotAllowed(VmdeckError):
    """The server refused who we are: no valid token (401), or a role too low (403)."""

    exit_code = 8
    http_status = 403
    kind = "not_allowed"


class CertificateChanged(HostError):
    """The server shows another certificate than the one pinned: never send the token to it."""


_BY_STATUS: dict[int, type[VmdeckError]] = {400: InvalidInput, 413: InvalidInput, 422: InvalidInput,
                                            404: NotFound, 409: Conflict, 401: NotAllowed, 403: NotAllowed,
                                            502: GuestError, 503: HostError, 504: TimedOut}


def fingerprint_of(der: bytes) -> str:
    try:  # the builtin module: hashlib's import looks up every OpenSSL digest first (~2 ms)
        from _sha256 import sha256  # type: ignore[import-not-found]
    except ImportError:  # a Python built without it
        from hashlib import sha256
    return "SHA256:" + str(sha256(der).hexdigest())


def split_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a remote's URL as vmdeck.cli.remotes.check_url stored it (scheme://HOST[:PORT]):
    no urllib.parse (~2 ms) on every command."""
    scheme, _, rest = url.partition("://")
    netloc = rest.split("/", 1)[0]
    if netloc.startswith("["):  # [IPv6]:port
        host, _, tail = netloc[1:].partition("]")
        port = tail[1:]
    else:
        host, _, port = netloc.partition(":")
    return scheme, host, int(port) if port.isdigit() else (443 if scheme == "https" else 80)


def _context() -> ssl.SSLContext:
    # No CA check and no host name check: the pinned fingerprint is the whole trust (see the docstring).
    # Not ssl.create_default_context(): it loads the system's CA store (~40 ms) for a check never made.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _open(url: str, timeout: float) -> tuple[socket.socket, str | None]:
    """A connected socket (TLS for https) and the fingerprint of the certificate the server showed."""
    scheme, host, port = split_url(url)
    tls = scheme == "https"
    # An ASCII name as bytes: a str goes through the "idna" codec (encodings.idna, stringprep: ~1 ms).
    name: str | bytes = host.encode() if host.isascii() else host
    try:
        raw = socket.create_connection((name, port), timeout=timeout)  # type: ignore[arg-type]  # bytes work
    except OSError as err:
        raise HostError(f"cannot reach the vmdeck server at {url}: {err.strerror or err}") from err
    if not tls:
        return raw, None
    try:
        # No SNI for an address (RFC 6066); a name as the bytes ssl would make of it.
        conn = _context().wrap_socket(raw, server_hostname=None if _is_address(host) else name)
    except (OSError, ssl.SSLError) as err:
        raw.close()
        raise HostError(f"no TLS with the vmdeck server at {url}: {err}") from err
    der = conn.getpeercert(binary_form=True)
    return conn, fingerprint_of(der) if der else None


def _is_address(host: str) -> bool:
    return ":" in host or host.replace(".", "").isdigit()


def server_fingerprint(url: str, timeout: float = 15.0) -> str | None:
    """The fingerprint the server at `url` shows now (None over plain http)."""
    conn, seen = _open(url, timeout)
    conn.close()
    return seen


def open_pinned(client: RemoteClient) -> socket.socket:
    """A connection to the client's server whose certificate is the pinned one (checked before any byte
    of ours goes out); CertificateChanged naming both fingerprints otherwise."""
    conn, seen = _open(client.url, client.timeout)
    if client.fingerprint is not None and seen != client.fingerprint:
        conn.close()
        raise CertificateChanged(
            f"the server at {client.url} shows a different certificate ({seen}) than the one pinned "
            f"({client.fingerprint}): refusing to send the token. If the server's certificate really "
            "changed: vmdeck remote remove NAME, then add it again")
    return conn


class RemoteClient:
    def __init__(self, url: str, token: str | None, fingerprint: str | None, *, timeout: float = 300.0) -> None:
        self.url = url
        self.token = token
        self.fingerprint = fingerprint
        self.timeout = timeout
        self.last_headers: dict[str, str] = {}  # of the last answer, names in lower case

    def request(self, method: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None,
                cookies_to: dict[str, str] | None = None) -> Any:
        """The answer's JSON (or bytes for a non-JSON answer); a vmdeck error for an HTTP error.
        `cookies_to` collects the answer's cookies (signing in with a password).

        One request per connection, spoken by hand (vmdeck.cli.wire.read_response): http.client and
        the email parser it imports cost more than the exchange itself on a command that lists VMs."""
        conn = open_pinned(self)
        with conn:
            payload = json.dumps(body).encode() if body is not None else b""
            # X-Vmdeck-Messages: vmdeck's own error messages, as the in-process command prints them
            # (vmdeck.api.errors; the web pages get them reworded for their form's fields).
            sent = {"Host": self.url.partition("://")[2].split("/", 1)[0], "Accept": "application/json",
                    "Connection": "close", "X-Vmdeck-Messages": "plain", "Content-Length": str(len(payload)),
                    **(headers or {})}
            if body is not None:
                sent["Content-Type"] = "application/json"
            if self.token:
                sent["Authorization"] = f"Bearer {self.token}"
            if any(c in v for v in (*sent.values(), path) for c in "\r\n"):
                raise InvalidInput("a line break has no place in a request")
            head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in sent.items()) + "\r\n"
            try:
                conn.sendall(head.encode("utf-8") + payload)
                status, answer_headers, data = read_response(conn)
            except (OSError, VmdeckError) as err:
                raise HostError(f"the vmdeck server at {self.url} did not answer {method} {path}: {err}") from err
        self.last_headers = dict(answer_headers)
        if cookies_to is not None:
            for name, value in answer_headers:
                if name == "set-cookie":
                    key, _, rest = value.partition("=")
                    cookies_to[key.strip()] = rest.split(";", 1)[0]
        is_json = any(n == "content-type" and v.startswith("application/json") for n, v in answer_headers)
        answer = json.loads(data) if is_json and data else data
        if status >= 400:
            raise _error(status, answer if isinstance(answer, dict) else {})
        return answer


class RemoteServer:
    """A remote server as the fast path sees a local one (vmdeck.cli.fast: `call` answers JSON)."""

    def __init__(self, client: RemoteClient) -> None:
        self.client = client

    @property
    def headers(self) -> dict[str, str]:
        return self.client.last_headers

    def call(self, method: str, path: str, body: Any = None, timeout: float = 300.0) -> Any:
        self.client.timeout = timeout
        return self.client.request(method, path, body)


def _error(status: int, body: dict[str, Any]) -> VmdeckError:
    detail = str(body.get("detail") or f"HTTP {status}")
    cls = _BY_STATUS.get(status, VmdeckError)
    return cls(detail)
