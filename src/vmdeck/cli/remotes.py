"""The vmdeck servers this user's command talks to (`vmdeck remote ...`), kept in the user's config folder
(cli layer): each remote's URL, the SHA-256 fingerprint of the certificate pinned at first contact, and
the API token. The file holds secrets: written 0600, in place by rename, never group- or world-readable.
"""

from __future__ import annotations

import json
import os
import re

from vmdeck.errors import InvalidInput, NotFound

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: this module is on every remote command's path
if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["Remote", "Remotes", "LOCAL", "remotes_path", "load", "save", "normalize_fingerprint", "check_url"]

LOCAL = "local"  # the name of "no remote": this machine's libvirt, in-process
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


# Plain classes, not dataclasses: `dataclasses` imports `inspect` (~6 ms), paid by every `vmdeck --remote R list`.
class Remote:
    __slots__ = ("name", "url", "fingerprint", "token")

    def __init__(self, name: str, url: str, fingerprint: str | None, token: str) -> None:
        self.name = name
        self.url = url  # https://HOST:PORT (http:// only on loopback)
        self.fingerprint = fingerprint  # "SHA256:<64 hex>" of the server's certificate; None for loopback http
        self.token = token

    def to_dict(self) -> dict[str, str | None]:
        return {"name": self.name, "url": self.url, "fingerprint": self.fingerprint, "token": self.token}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Remote) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it was

    def __repr__(self) -> str:
        return f"Remote(name={self.name!r}, url={self.url!r}, fingerprint={self.fingerprint!r})"  # never the token


class Remotes:
    __slots__ = ("current", "remotes")

    def __init__(self, current: str, remotes: dict[str, Remote]) -> None:
        self.current = current
        self.remotes = remotes

    def get(self, name: str) -> Remote:
        remote = self.remotes.get(name)
        if remote is None:
            known = ", ".join(sorted(self.remotes)) or "none"
            raise NotFound(f"no remote named {name!r} (remotes: {known}; add one: vmdeck remote add NAME URL)")
        return remote


def _file() -> str:
    # vmdeck.paths.config_dir() without pathlib (~3 ms): tests/unit/test_remote_target.py keeps them equal.
    default = os.path.join(os.environ.get("XDG_CONFIG_HOME", os.path.join(os.path.expanduser("~"), ".config")),
                           "vmdeck")
    return os.path.join(os.environ.get("VMDECK_CONFIG_DIR", default), "remotes.json")


def remotes_path() -> Path:
    from pathlib import Path

    return Path(_file())


def load() -> Remotes:
    path = _file()
    try:
        with open(path) as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return Remotes(LOCAL, {})
    except (OSError, ValueError) as err:
        raise InvalidInput(f"{path} cannot be read as vmdeck's remotes ({err}): fix or remove it") from err
    remotes = {name: Remote(**entry) for name, entry in data.get("remotes", {}).items()}
    current = data.get("current", LOCAL)
    return Remotes(current if current in remotes else LOCAL, remotes)


def save(remotes: Remotes) -> None:
    import tempfile
    from pathlib import Path

    path = remotes_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = {"current": remotes.current,
            "remotes": {n: r.to_dict() for n, r in sorted(remotes.remotes.items())}}
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
    from urllib.parse import urlsplit

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
