"""One HTTPS request to a vmdeck server, with the certificate pinned by fingerprint (cli layer).

The server's certificate is usually self-signed (`vmdeck serve --tls-self-signed`), so no CA vouches
for it: trust comes from the SHA-256 fingerprint the user saw and pinned at `vmdeck remote add`. The
fingerprint is checked right after the TLS handshake, before the token is sent. HTTP answers become
vmdeck's errors, and so the command's exit codes, as in-process: 404 -> 3, 409 -> 4, 503 -> 5 ...
"""

from __future__ import annotations

import hashlib
import json
import socket
import ssl
from typing import Any
from urllib.parse import urlsplit

from vmdeck.cli.handoff import read_response
from vmdeck.errors import (
    Conflict,
    GuestError,
    HostError,
    InvalidInput,
    NotFound,
    TimedOut,
    VmdeckError,
)

__all__ = ["NotAllowed", "CertificateChanged", "fingerprint_of", "server_fingerprint", "RemoteClient", "RemoteServer"]


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
    return "SHA256:" + hashlib.sha256(der).hexdigest()


def _context() -> ssl.SSLContext:
    # No CA check and no host name check: the pinned fingerprint is the whole trust (see the docstring).
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _open(url: str, timeout: float) -> tuple[socket.socket, str | None]:
    """A connected socket (TLS for https) and the fingerprint of the certificate the server showed."""
    parts = urlsplit(url)
    host, tls = parts.hostname or "", parts.scheme == "https"
    try:
        raw = socket.create_connection((host, parts.port or (443 if tls else 80)), timeout=timeout)
    except OSError as err:
        raise HostError(f"cannot reach the vmdeck server at {url}: {err.strerror or err}") from err
    if not tls:
        return raw, None
    try:
        conn = _context().wrap_socket(raw, server_hostname=host)
    except (OSError, ssl.SSLError) as err:
        raw.close()
        raise HostError(f"no TLS with the vmdeck server at {url}: {err}") from err
    der = conn.getpeercert(binary_form=True)
    return conn, fingerprint_of(der) if der else None


def server_fingerprint(url: str, timeout: float = 15.0) -> str | None:
    """The fingerprint the server at `url` shows now (None over plain http)."""
    conn, seen = _open(url, timeout)
    conn.close()
    return seen


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

        One request per connection, spoken by hand (vmdeck.cli.handoff.read_response): http.client and
        the email parser it imports cost more than the exchange itself on a command that lists VMs."""
        conn, seen = _open(self.url, self.timeout)
        with conn:
            if self.fingerprint is not None and seen != self.fingerprint:
                raise CertificateChanged(
                    f"the server at {self.url} shows a different certificate ({seen}) than the one pinned "
                    f"({self.fingerprint}): refusing to send the token. If the server's certificate really "
                    "changed: vmdeck remote remove NAME, then add it again")
            payload = json.dumps(body).encode() if body is not None else b""
            sent = {"Host": urlsplit(self.url).netloc, "Accept": "application/json", "Connection": "close",
                    "Content-Length": str(len(payload)), **(headers or {})}
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
