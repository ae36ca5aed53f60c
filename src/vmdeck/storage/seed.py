"""cloud-init NoCloud seeds: validate the user's input, write the seed ISO in-process (storage layer).

A NoCloud seed is a small filesystem labelled `cidata` holding `meta-data`
(instance-id, local-hostname), `user-data` (a `#cloud-config` YAML document) and
optionally `network-config`. It is written with pycdlib (pure Python ISO 9660
with Rock Ridge and Joliet names), so no external tool runs and nothing goes
through a shell. Everything is checked before any volume or domain exists.
"""

from __future__ import annotations

import io
import re
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vmdeck.errors import InvalidInput

__all__ = ["CloudInitConfig", "validate_user_data", "validate_network_config", "hostname_for",
           "render_user_data", "render_meta_data", "build_seed_iso", "check_ssh_key", "hash_password",
           "read_text_file", "cloud_init_config", "check_user"]

# Matched with fullmatch: "$" (and .match) would accept a trailing newline, which would then reach
# the seed's YAML and /etc/hostname.
_HOSTNAME_RE = re.compile(r"(?=.{1,63}\Z)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?")
_USER_RE = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
# Bounds on what lands in the seed (and in ~/.ssh/authorized_keys): the largest RSA key (16384 bits)
# with a long comment is under 3 KiB.
MAX_SSH_KEYS = 32
MAX_SSH_KEY_BYTES = 8192
_KEY_TYPES = ("ssh-rsa", "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
              "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com", "ssh-dss")


@dataclass(frozen=True)
class CloudInitConfig:
    """What `vmdeck create --image` puts in the seed (all validated)."""

    hostname: str
    user: str = "debian"
    ssh_keys: tuple[str, ...] = ()
    password_hash: str | None = None
    user_data: dict[str, Any] = field(default_factory=dict)  # the user's own #cloud-config, parsed
    network_config: str | None = None


def _load_yaml(text: str, what: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise InvalidInput(f"{what} is not valid YAML{where}: {getattr(err, 'problem', None) or err}",
                           field=what) from None


def validate_user_data(text: str) -> dict[str, Any]:
    """A `#cloud-config` document that parses as a YAML mapping; returns the mapping."""
    first = text.lstrip("\ufeff").split("\n", 1)[0].strip()
    if first != "#cloud-config":
        raise InvalidInput("user-data must be a cloud-config document: its first line must be '#cloud-config'"
                           f" (it is {first[:40]!r})", field="user_data")
    data = _load_yaml(text, "user-data")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidInput("user-data must be a YAML mapping (keys such as runcmd, packages, users)",
                           field="user_data")
    return data


def validate_network_config(text: str) -> str:
    """cloud-init network config, version 1 or 2 (optionally under a top-level `network:` key)."""
    data = _load_yaml(text, "network-config")
    if isinstance(data, dict) and isinstance(data.get("network"), dict):
        data = data["network"]
    if not isinstance(data, dict) or data.get("version") not in (1, 2):
        raise InvalidInput("network-config must be a YAML mapping with 'version: 1' or 'version: 2'",
                           field="network_config")
    return text


def hostname_for(name: str, hostname: str | None) -> str:
    """The given hostname (checked), or one derived from the VM name."""
    if hostname is not None:
        if not _HOSTNAME_RE.fullmatch(hostname):
            raise InvalidInput(f"invalid hostname {hostname!r}: 1-63 letters, digits and '-'", field="hostname")
        return hostname
    derived = re.sub(r"[^A-Za-z0-9-]", "-", name).strip("-")[:63].strip("-")
    return derived or "vm"


def check_user(user: str) -> str:
    if not _USER_RE.fullmatch(user) or user == "root":
        raise InvalidInput(f"invalid user name {user!r}: lower-case letters, digits, '_' and '-' (not root)",
                           field="user")
    return user


def check_ssh_key(text: str, origin: str) -> str:
    """One OpenSSH public key line (the content of id_*.pub)."""
    if len(text.encode()) > MAX_SSH_KEY_BYTES:
        raise InvalidInput(f"{origin} is larger than {MAX_SSH_KEY_BYTES} bytes: not one public key",
                           field="ssh_keys")
    if "PRIVATE KEY" in text:
        raise InvalidInput(f"{origin} is a private key: give the public key (the .pub file)", field="ssh_keys")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    if len(lines) != 1:
        raise InvalidInput(f"{origin} must hold exactly one public key line, found {len(lines)}", field="ssh_keys")
    parts = lines[0].split()
    if len(parts) < 2 or parts[0] not in _KEY_TYPES:
        raise InvalidInput(f"{origin} is not an OpenSSH public key (expected 'ssh-ed25519 AAAA...'; "
                           "give the .pub file, never the private key)", field="ssh_keys")
    return lines[0]


def hash_password(password: str) -> str:
    """SHA-512 crypt hash for /etc/shadow: the seed never carries the password itself."""
    if not password or "\n" in password:
        raise InvalidInput("the password must be one non-empty line", field="password")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # deprecated in 3.11, still the stdlib's only crypt(3); Python 3.11 is the target

        return crypt.crypt(password, crypt.mksalt(crypt.METHOD_SHA512))


def render_user_data(cfg: CloudInitConfig) -> str:
    """The user's cloud-config with vmdeck's user, keys and hostname merged in (theirs win per key,
    except `users`, where vmdeck's user is added to theirs)."""
    user: dict[str, Any] = {
        "name": cfg.user,
        "groups": ["sudo"],
        "sudo": "ALL=(ALL) NOPASSWD:ALL",
        "shell": "/bin/bash",
        "lock_passwd": cfg.password_hash is None,
    }
    if cfg.ssh_keys:
        user["ssh_authorized_keys"] = list(cfg.ssh_keys)
    if cfg.password_hash:
        user["passwd"] = cfg.password_hash
    ours: dict[str, Any] = {
        "hostname": cfg.hostname,
        "preserve_hostname": False,
        "users": [user],
        "ssh_pwauth": cfg.password_hash is not None,
    }
    merged = {**ours, **cfg.user_data}
    theirs_users = cfg.user_data.get("users")
    if isinstance(theirs_users, list):
        merged["users"] = [*theirs_users, user] if all(
            not (isinstance(u, dict) and u.get("name") == cfg.user) for u in theirs_users) else theirs_users
    return "#cloud-config\n" + str(yaml.safe_dump(merged, sort_keys=False, default_flow_style=False))


def render_meta_data(vm_name: str, hostname: str) -> str:
    # A fresh instance-id per VM: cloud-init runs its once-per-instance modules for each new one.
    return str(yaml.safe_dump({"instance-id": f"iid-{vm_name}-{uuid.uuid4().hex[:12]}",
                               "local-hostname": hostname}, sort_keys=False))


def build_seed_iso(files: dict[str, str]) -> bytes:
    """An ISO 9660 image labelled `cidata` with the given files (name -> text) at its root."""
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, vol_ident="cidata", joliet=3, rock_ridge="1.09")
    for name, text in files.items():
        data = text.encode()
        iso_name = re.sub(r"[^A-Z0-9_]", "_", name.upper())[:30] + ".;1"
        iso.add_fp(io.BytesIO(data), len(data), f"/{iso_name}", rr_name=name, joliet_path=f"/{name}")
    out = io.BytesIO()
    iso.write_fp(out)
    iso.close()
    return out.getvalue()


def read_text_file(path: str | Path, what: str) -> str:
    """A small text file the user named (an SSH key, user-data): unreadable is a clear InvalidInput."""
    path = Path(path).expanduser()
    try:
        if path.stat().st_size > 1024 * 1024:
            raise InvalidInput(f"{what} {path} is larger than 1 MiB", field=what)
        return path.read_text()
    except FileNotFoundError:
        raise InvalidInput(f"{what} {path} does not exist", field=what) from None
    except IsADirectoryError:
        raise InvalidInput(f"{what} {path} is a directory, not a file", field=what) from None
    except PermissionError:
        raise InvalidInput(f"{what} {path} is not readable (permission denied)", field=what) from None
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidInput(f"{what} {path} cannot be read: {err}", field=what) from None


def cloud_init_config(vm_name: str, *, hostname: str | None = None, user: str | None = None,
                      ssh_keys: Sequence[tuple[str, str]] = (), password: str | None = None,
                      user_data: str | None = None, network_config: str | None = None) -> CloudInitConfig:
    """Validate everything a user gives for the seed (ssh_keys: (origin, text) pairs)."""
    if len(ssh_keys) > MAX_SSH_KEYS:
        raise InvalidInput(f"at most {MAX_SSH_KEYS} SSH keys, not {len(ssh_keys)}", field="ssh_keys")
    return CloudInitConfig(
        hostname=hostname_for(vm_name, hostname),
        user=check_user(user) if user is not None else "debian",
        ssh_keys=tuple(check_ssh_key(text, origin) for origin, text in ssh_keys),
        password_hash=hash_password(password) if password is not None else None,
        user_data=validate_user_data(user_data) if user_data is not None else {},
        network_config=validate_network_config(network_config) if network_config is not None else None,
    )
