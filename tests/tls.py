"""A self-signed certificate for 127.0.0.1, made once per test session, for servers the SDK must trust.

The SDK dials ``wss://`` and trusts the CA file named by ``SIGNALWIRE_RELAY_CA_FILE``: a test serves TLS with
:func:`server_context` and points that variable at :func:`certificate`'s cert. Made with ``cryptography`` (a test
dependency), so no test depends on an ``openssl`` command being installed.
"""

from __future__ import annotations

import atexit
import datetime
import ipaddress
import shutil
import ssl
import tempfile
from functools import cache
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["certificate", "server_context"]


@cache
def certificate() -> tuple[Path, Path]:
    """The certificate (also its own CA) and its key, for ``127.0.0.1`` and ``localhost``."""
    folder = Path(tempfile.mkdtemp(prefix="relay-tls-"))
    atexit.register(shutil.rmtree, folder, True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def server_context() -> ssl.SSLContext:
    """A server TLS context serving :func:`certificate`."""
    cert, key = certificate()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context
