"""A local certificate authority, so that an unmodified app can dial ``relay proxy`` or ``relay serve --tls`` over TLS.

SignalWire's SDKs dial ``wss://$SIGNALWIRE_SPACE`` and trust the CA file named by ``SIGNALWIRE_RELAY_CA_FILE``. To
sit between such an app and RELAY, or to be its RELAY, relay serves TLS with a certificate the app trusts: one signed
by a CA of relay's own, made on first use and kept (its key readable by the user alone), as mitmproxy does. Each
run signs a fresh certificate for the address it listens on; the CA file the app is pointed at stays the same.

The certificates follow what strict verifiers ask (Python 3.13's ``VERIFY_X509_STRICT``, browsers): key usages
marked critical, subject and authority key identifiers, the names in ``subjectAltName``.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import ssl
import stat
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from relay_cli.errors import RelayError

__all__ = ["CA_FILE", "CA_KEY_FILE", "CertificateError", "LocalCA"]

CA_FILE = "relay-ca.pem"
"""The CA's certificate: what ``SIGNALWIRE_RELAY_CA_FILE`` names."""
CA_KEY_FILE = "relay-ca-key.pem"
"""The CA's private key, mode 0600: whoever reads it can impersonate any server to an app that trusts the CA."""

_CA_YEARS = 10
_LEAF_DAYS = 397  # the longest validity clients accept for a server certificate
_BACKDATE = datetime.timedelta(hours=1)  # a clock a little behind the proxy's still accepts the certificate
_WAIT_FOR_PEER = 2.0  # seconds another relay creating the same CA at the same moment may take to finish


class CertificateError(RelayError):
    """The local CA cannot be created, read or used; the message names the file and what to do."""


class LocalCA:
    """The CA in ``directory`` (created 0700 if missing): :meth:`ensure` it, then sign server contexts."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.cert_path = directory / CA_FILE
        self.key_path = directory / CA_KEY_FILE
        self._cert: x509.Certificate | None = None
        self._key: ec.EllipticCurvePrivateKey | None = None

    def ensure(self) -> bool:
        """Load the CA, or create it when there is none (or it has expired); say whether it was created."""
        if self.key_path.exists() or self.cert_path.exists():
            cert, key = self._load()
            if cert.not_valid_after_utc > _now() + datetime.timedelta(days=1):
                self._cert, self._key = cert, key
                return False
            self.key_path.unlink(missing_ok=True)  # expired: a new CA at the same path keeps the app's setting
        self._create()
        return True

    def server_context(self, hosts: Sequence[str]) -> ssl.SSLContext:
        """A TLS server context with a new certificate for ``hosts`` (IP addresses or DNS names), signed by the CA."""
        if self._cert is None or self._key is None:
            self.ensure()
        assert self._cert is not None and self._key is not None
        key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = []
        for host in dict.fromkeys(h.strip("[]") for h in hosts if h):
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                try:
                    names.append(x509.DNSName(host.encode("idna").decode("ascii")))  # an A-label, as X.509 wants
                except UnicodeError:
                    raise CertificateError(f"cannot sign a certificate for {host!r}: not a valid host name") from None
        if not names:
            raise ValueError("a server certificate needs at least one host")
        now = _now()
        ca_key_id = self._cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _common_name(names[0]))]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(min(now + datetime.timedelta(days=_LEAF_DAYS), self._cert.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_key_id), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        # The ssl module loads a chain only from a file: a private one, gone once loaded.
        fd, path = tempfile.mkstemp(prefix=".server-", suffix=".pem", dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(_pem_key(key) + cert.public_bytes(serialization.Encoding.PEM))
            context.load_cert_chain(path)
        finally:
            os.unlink(path)
        return context

    # -- the CA on disk ------------------------------------------------------------------------------------

    def _load(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """The CA from its two files; anything wrong with them is an error naming the file."""
        deadline = time.monotonic() + _WAIT_FOR_PEER
        while not (self.key_path.exists() and self.cert_path.exists()) and time.monotonic() < deadline:
            time.sleep(0.05)  # another relay is writing the CA right now: it writes the key, then the certificate
        for path in (self.key_path, self.cert_path):
            if not path.exists():
                raise self._broken(path, "is missing")
        try:
            info = self.key_path.stat()
            key_data = self.key_path.read_bytes()
            cert_data = self.cert_path.read_bytes()
        except OSError as exc:
            raise CertificateError(f"cannot read the local CA in {self.directory}: {exc.strerror or exc}") from None
        if stat.S_IMODE(info.st_mode) & 0o077:
            raise CertificateError(
                f"{self.key_path} can be read by others (mode {stat.S_IMODE(info.st_mode):04o}): it signs"
                f" certificates apps trust; make it private (chmod 600) or remove {self.directory} for a new CA"
            )
        try:
            cert = x509.load_pem_x509_certificate(cert_data)
        except ValueError:
            raise self._broken(self.cert_path, "is not a PEM certificate") from None
        try:
            key = serialization.load_pem_private_key(key_data, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise self._broken(self.key_path, "is not an unencrypted PEM private key") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
            raise self._broken(self.key_path, f"is not the key of {CA_FILE}")
        try:
            cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        except x509.ExtensionNotFound:
            raise self._broken(self.cert_path, "is not a CA relay made") from None
        return cert, key

    def _broken(self, path: Path, what: str) -> CertificateError:
        return CertificateError(f"{path} {what}: remove {self.directory} and relay makes a new local CA")

    def _create(self) -> None:
        """Write a new CA: the key first, linked into place only if no other relay did so meanwhile."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "relay-cli"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"relay local CA ({_user()})"),
            ]
        )
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + datetime.timedelta(days=365 * _CA_YEARS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_usage(key_cert_sign=True, crl_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            key_tmp = self._private_temp(_pem_key(key))
            try:
                os.link(key_tmp, self.key_path)
            except FileExistsError:
                self._cert, self._key = self._load()  # another relay made one at the same moment: use it
                return
            finally:
                os.unlink(key_tmp)
            cert_tmp = self._private_temp(cert.public_bytes(serialization.Encoding.PEM))
            os.chmod(cert_tmp, 0o644)  # a CA certificate is public: an app run by another user may read it
            os.replace(cert_tmp, self.cert_path)
        except OSError as exc:
            raise CertificateError(
                f"cannot create the local CA in {self.directory}: {exc.strerror or exc}; choose another with --ca-dir"
            ) from None
        self._cert, self._key = cert, key

    def _private_temp(self, data: bytes) -> str:
        fd, path = tempfile.mkstemp(prefix=".new-", suffix=".pem", dir=self.directory)  # mode 0600
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        return path


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _usage(*, digital_signature: bool = False, key_cert_sign: bool = False, crl_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _common_name(name: x509.GeneralName) -> str:
    return str(name.value)[:64]  # the longest common name X.509 allows


def _user() -> str:
    """Who the CA is for, in its name, so that a user who finds it in a trust store knows whose it is."""
    with contextlib.suppress(KeyError, OSError, ImportError):
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name[:32]
    return os.environ.get("USER") or os.environ.get("USERNAME") or "local"
