"""
A throwaway certificate authority and a server certificate for 127.0.0.1,
made at run time with ``cryptography`` for the TLS client tests.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass

from tests.clients.base import require_module


@dataclass(frozen=True)
class Certificates:
    #: The CA certificate (PEM), also written as ``ca.crt`` in ``cert_dir``.
    ca_path: str
    #: A directory holding only ``ca.crt``: containers tools' ``--cert-dir``.
    cert_dir: str
    #: The server's private key and certificate (PEM), for an ``ssl:`` endpoint.
    key_path: str
    cert_path: str

    @property
    def ca_pem(self) -> bytes:
        with open(self.ca_path, "rb") as f:
            return f.read()


def make_certificates(directory: str, ip: str = "127.0.0.1") -> Certificates:
    """Write a CA and a certificate it signed for ``ip`` (an IP SAN) under ``directory``."""
    require_module("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(common_name: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("txoci test CA"))
        .issuer_name(name("txoci test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name(ip))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    cert_dir = os.path.join(directory, "certs.d")
    os.makedirs(cert_dir)
    files = {
        os.path.join(cert_dir, "ca.crt"): ca.public_bytes(serialization.Encoding.PEM),
        os.path.join(directory, "server.crt"): cert.public_bytes(serialization.Encoding.PEM),
        os.path.join(directory, "server.key"): key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption(),
        ),
    }
    for path, data in files.items():
        with open(path, "wb") as f:
            f.write(data)
    return Certificates(
        ca_path=os.path.join(cert_dir, "ca.crt"),
        cert_dir=cert_dir,
        key_path=os.path.join(directory, "server.key"),
        cert_path=os.path.join(directory, "server.crt"),
    )
