"""A local certificate authority and server certificates, made with ``cryptography``.

``rasd stack up --secure`` makes one CA per state directory and signs with it
one certificate for Kafka and one for Elasticsearch, each valid for
``localhost`` and ``127.0.0.1``. Everything is PEM: Python clients read it, and
Kafka (``ssl.keystore.type=PEM``) and Elasticsearch read it as well, so no
keytool or keystore password is involved. Keys are written with mode 0600.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: Long enough for a developer machine or a CI run, short enough not to matter if leaked.
VALID_DAYS = 825


@dataclass(frozen=True)
class Authority:
    """A CA's certificate and key, in memory."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "rasd local stack"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def new_authority(common_name: str = "rasd local CA") -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Authority(cert, key)


def issue(
    ca: Authority, common_name: str, hosts: tuple[str, ...] = ("localhost", "127.0.0.1")
) -> tuple[bytes, bytes]:
    """A server (and client) certificate for ``hosts``; (certificate PEM, PKCS#8 key PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
        .sign(ca.key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,  # what Kafka's PEM keystore reads
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` readable by its owner only (created 0600, never world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    path.chmod(0o600)


def save_authority(ca: Authority, cert_path: Path, key_path: Path) -> None:
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    cert_path.write_bytes(ca.pem)
    write_private(
        key_path,
        ca.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def load_authority(cert_path: Path, key_path: Path) -> Authority:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return Authority(cert, key)


def make_tree(root: Path, services: tuple[str, ...]) -> list[Path]:
    """A deployment's CA and one certificate per service, under ``root``; returns what
    was written (what exists is kept, so a second run changes nothing).

    ``root/ca/ca.crt`` (and ``ca.key``), and per service ``root/<name>/<name>.crt``,
    ``<name>.key`` and ``<name>.pem`` (key then certificate: Kafka's PEM keystore),
    valid for the service's name, ``localhost`` and ``127.0.0.1``. Certificates are
    0644, keys 0600 (the writing user's, which is the servers' own).
    """
    written: list[Path] = []
    ca_cert, ca_key = root / "ca" / "ca.crt", root / "ca" / "ca.key"
    if ca_cert.is_file() and ca_key.is_file():
        ca = load_authority(ca_cert, ca_key)
    else:
        ca = new_authority("rasd deployment CA")
        save_authority(ca, ca_cert, ca_key)
        written += [ca_cert, ca_key]
    for name in services:
        cert_path, key_path = root / name / f"{name}.crt", root / name / f"{name}.key"
        pem_path = root / name / f"{name}.pem"
        if cert_path.is_file() and key_path.is_file() and pem_path.is_file():
            continue
        cert, key = issue(ca, name, (name, "localhost", "127.0.0.1"))
        cert_path.parent.mkdir(parents=True, exist_ok=True)
        cert_path.write_bytes(cert)
        cert_path.chmod(0o644)
        write_private(key_path, key)
        write_private(pem_path, key + cert)
        written += [cert_path, key_path, pem_path]
    for directory in {root, root / "ca", *(root / n for n in services)}:
        directory.chmod(0o755)
    return written
