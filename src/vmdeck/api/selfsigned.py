"""A self-signed certificate for `vmdeck serve --tls-self-signed` (api layer): made once, kept in the
server's private folder (0700; the key 0600), reused on every start so the fingerprint that customers
pinned with `vmdeck remote add` stays the same. A real certificate goes in with --tls-cert/--tls-key."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
from pathlib import Path

__all__ = ["ensure_self_signed"]


def _san(names: list[str]) -> list[object]:
    from cryptography import x509

    entries: list[object] = []
    for name in dict.fromkeys(names):
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return entries


def ensure_self_signed(folder: Path, names: list[str]) -> tuple[Path, Path]:
    """(certificate, key) in `folder`, made on the first call: ECDSA P-256, ten years, `names` as SANs."""
    cert_path, key_path = folder / "tls-cert.pem", folder / "tls-key.pem"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"vmdeck on {socket.gethostname()}")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName(_san([*names, "localhost", "127.0.0.1"])),  # type: ignore[arg-type]
                           critical=False)
            .sign(key, hashes.SHA256()))
    fd = os.open(key_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path
