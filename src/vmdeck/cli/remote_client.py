"""One HTTPS request to a vmdeck server, with the certificate pinned by fingerprint (cli layer).

The server's certificate is usually self-signed (`vmdeck serve --tls-self-signed`), so no CA vouches
for it: trust comes from the SHA-256 fingerprint the user saw and pinned at `vmdeck remote add`. The
fingerprint is checked right after the TLS handshake, before the token is sent. HTTP answers become
vmdeck's errors, and so the command's exit codes, as in-process: 404 -> 3, 409 -> 4, 503 -> 5 ...
"""

from __future__ import annotations

import hashlib
import http.client
import json
import ssl
from typing import Any
from urllib.parse import urlsplit

from vmdeck.errors import (
    Conflict,
    GuestError,
    HostError,
    InvalidInput,
    NotFound,
    TimedOut,
    VmdeckError,
)

__all__ = ["NotAllowed", "CertificateChanged", "fingerprint_of", "server_fingerprint", "RemoteClient"]


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


def _connection(url: str, timeout: float) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https":
        return http.client.HTTPSConnection(host, parts.port or 443, timeout=timeout, context=_context())
    return http.client.HTTPConnection(host, parts.port or 80, timeout=timeout)


def _open(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str | None]:
    conn = _connection(url, timeout)
    try:
        conn.connect()
    except (OSError, ssl.SSLError) as err:
        conn.close()
        raise HostError(f"cannot reach the vmdeck server at {url}: {err}") from err
    sock = conn.sock
    der = sock.getpeercert(binary_form=True) if isinstance(sock, ssl.SSLSocket) else None
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

    def request(self, method: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None,
                cookies_to: dict[str, str] | None = None) -> Any:
        """The answer's JSON (or bytes for a non-JSON answer); a vmdeck error for an HTTP error.
        `cookies_to` collects the answer's cookies (signing in with a password)."""
        conn, seen = _open(self.url, self.timeout)
        try:
            if self.fingerprint is not None and seen != self.fingerprint:
                raise CertificateChanged(
                    f"the server at {self.url} shows a different certificate ({seen}) than the one pinned "
                    f"({self.fingerprint}): refusing to send the token. If the server's certificate really "
                    "changed: vmdeck remote remove NAME, then add it again")
            headers = {"Accept": "application/json", "Host": urlsplit(self.url).netloc, **(headers or {})}
            if self.token:
                headers["Authorization"] = f"Bearer {self.token}"
            payload = None
            if body is not None:
                payload = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            try:
                conn.request(method, path, body=payload, headers=headers)
                reply = conn.getresponse()
                data = reply.read()
            except (OSError, http.client.HTTPException) as err:
                raise HostError(f"the vmdeck server at {self.url} did not answer {method} {path}: {err}") from err
        finally:
            conn.close()
        if cookies_to is not None:
            for value in reply.headers.get_all("set-cookie") or []:
                name, _, rest = value.partition("=")
                cookies_to[name.strip()] = rest.split(";", 1)[0]
        is_json = (reply.getheader("content-type") or "").startswith("application/json")
        answer = json.loads(data) if is_json and data else data
        if reply.status >= 400:
            raise _error(reply.status, answer if isinstance(answer, dict) else {})
        return answer


def _error(status: int, body: dict[str, Any]) -> VmdeckError:
    detail = str(body.get("detail") or f"HTTP {status}")
    cls = _BY_STATUS.get(status, VmdeckError)
    return cls(detail)
