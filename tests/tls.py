"""A self-signed certificate for 127.0.0.1, made once per test session, for servers the SDK must trust.

The SDK dials ``wss://`` and trusts the CA file named by ``SIGNALWIRE_RELAY_CA_FILE``: a test serves TLS with
:func:`server_context` and points that variable at :func:`certificate`'s cert. Made with the ``openssl``
command; :data:`HAVE_OPENSSL` says whether it is there (tests skip without it).
"""

from __future__ import annotations

import atexit
import shutil
import ssl
import subprocess
import tempfile
from functools import cache
from pathlib import Path

__all__ = ["HAVE_OPENSSL", "certificate", "server_context"]

HAVE_OPENSSL = shutil.which("openssl") is not None


@cache
def certificate() -> tuple[Path, Path]:
    """The certificate (also its own CA) and its key, for ``127.0.0.1`` and ``localhost``."""
    folder = Path(tempfile.mkdtemp(prefix="relay-tls-"))
    atexit.register(shutil.rmtree, folder, True)
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def server_context() -> ssl.SSLContext:
    """A server TLS context serving :func:`certificate`."""
    cert, key = certificate()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context
