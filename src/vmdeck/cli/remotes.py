"""The vmdeck servers this user's command talks to (`vmdeck remote ...`), kept in the user's config folder
(cli layer): each remote's URL, the SHA-256 fingerprint of the certificate pinned at first contact, and
the API token. The file holds secrets: written 0600, in place by rename, never group- or world-readable.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

from vmdeck.errors import InvalidInput, NotFound
from vmdeck.paths import config_dir

__all__ = ["Remote", "Remotes", "LOCAL", "remotes_path", "load", "save", "normalize_fingerprint", "check_url"]

LOCAL = "local"  # the name of "no remote": this machine's libvirt, in-process
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


@dataclass
class Remote:
    name: str
    url: str  # https://HOST:PORT (http:// only on loopback)
    fingerprint: str | None  # "SHA256:<64 hex>" of the server's certificate; None for loopback http
    token: str


@dataclass
class Remotes:
    current: str
    remotes: dict[str, Remote]

    def get(self, name: str) -> Remote:
        remote = self.remotes.get(name)
        if remote is None:
            known = ", ".join(sorted(self.remotes)) or "none"
            raise NotFound(f"no remote named {name!r} (remotes: {known}; add one: vmdeck remote add NAME URL)")
        return remote


def remotes_path() -> Path:
    return config_dir() / "remotes.json"


def load() -> Remotes:
    path = remotes_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return Remotes(LOCAL, {})
    except (OSError, ValueError) as err:
        raise InvalidInput(f"{path} cannot be read as vmdeck's remotes ({err}): fix or remove it") from err
    remotes = {name: Remote(**entry) for name, entry in data.get("remotes", {}).items()}
    current = data.get("current", LOCAL)
    return Remotes(current if current in remotes else LOCAL, remotes)


def save(remotes: Remotes) -> None:
    path = remotes_path()
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = {"current": remotes.current, "remotes": {n: asdict(r) for n, r in sorted(remotes.remotes.items())}}
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".remotes-", suffix=".json")  # 0600 already
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name) or name == LOCAL:
        raise InvalidInput(f"invalid remote name {name!r}: 1-63 letters, digits, '.', '_', '-' (not 'local')",
                           field="name")
    return name


def check_url(url: str) -> str:
    """https://HOST[:PORT] (a path is dropped); http:// only to a loopback address."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname or any(c.isspace() for c in url):
        raise InvalidInput(f"invalid server URL {url!r}: use https://HOST:PORT", field="url")
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "::1", "localhost"):
        raise InvalidInput(f"{url}: plain http only to this machine (127.0.0.1); a server on the network needs "
                           "https (vmdeck serve --tls-self-signed)", field="url")
    try:
        port = parts.port
    except ValueError as err:
        raise InvalidInput(f"invalid server URL {url!r}: {err}", field="url") from err
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def normalize_fingerprint(text: str) -> str:
    """"SHA256:AB:CD:..." or "sha256:abcd..." or bare hex -> "SHA256:abcd..." (64 hex digits)."""
    raw = text.strip()
    if raw.upper().startswith("SHA256:"):
        raw = raw[7:]
    digits = raw.replace(":", "").lower()
    if not re.fullmatch(r"[0-9a-f]{64}", digits):
        raise InvalidInput(f"invalid fingerprint {text!r}: SHA256: and 64 hex digits", field="fingerprint")
    return f"SHA256:{digits}"
