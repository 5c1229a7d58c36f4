"""relay's local CA: made once with a private key, reused, and signing server certificates strict clients accept."""

from __future__ import annotations

import asyncio
import datetime
import ssl
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509

from relay_cli import certs
from relay_cli.certs import CertificateError, LocalCA


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def handshake(context: ssl.SSLContext, server_name: str, trust: Path, *, strict: bool = False) -> str:
    """A real TLS handshake over loopback; the version the client negotiated."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hi")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    client = ssl.create_default_context(cafile=str(trust))
    if strict:
        client.verify_flags |= ssl.VERIFY_X509_STRICT
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client, server_hostname=server_name)
        assert await reader.read() == b"hi"
        version = writer.get_extra_info("ssl_object").version()
        writer.close()
        return str(version)
    finally:
        server.close()
        await server.wait_closed()


def test_the_first_use_creates_a_ca_with_a_private_key_and_later_uses_reuse_it(tmp_path: Path) -> None:
    folder = tmp_path / "config" / "relay"
    ca = LocalCA(folder)
    assert ca.ensure() is True
    assert mode(folder) == 0o700
    assert mode(ca.key_path) == 0o600
    assert mode(ca.cert_path) == 0o644
    first = ca.cert_path.read_bytes()
    cert = x509.load_pem_x509_certificate(first)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    again = LocalCA(folder)
    assert again.ensure() is False
    assert again.cert_path.read_bytes() == first
    assert sorted(p.name for p in folder.iterdir()) == ["relay-ca-key.pem", "relay-ca.pem"]


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost"])
def test_a_server_context_is_trusted_through_the_ca_file_alone_even_by_a_strict_client(
    tmp_path: Path, name: str
) -> None:
    ca = LocalCA(tmp_path)
    context = ca.server_context(["127.0.0.1", "localhost"])
    assert asyncio.run(handshake(context, name, ca.cert_path, strict=True)).startswith("TLS")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["relay-ca-key.pem", "relay-ca.pem"]  # no leaf left


def test_a_certificate_for_one_host_is_refused_for_another(tmp_path: Path) -> None:
    ca = LocalCA(tmp_path)
    context = ca.server_context(["localhost"])
    with pytest.raises(ssl.SSLCertVerificationError, match=r"mismatch|not valid"):
        asyncio.run(handshake(context, "127.0.0.1", ca.cert_path))


def test_another_ca_does_not_vouch_for_the_server(tmp_path: Path) -> None:
    ours, theirs = LocalCA(tmp_path / "ours"), LocalCA(tmp_path / "theirs")
    theirs.ensure()
    with pytest.raises(ssl.SSLCertVerificationError):
        asyncio.run(handshake(ours.server_context(["127.0.0.1"]), "127.0.0.1", theirs.cert_path))


def test_a_key_others_can_read_is_refused_with_what_to_do(tmp_path: Path) -> None:
    ca = LocalCA(tmp_path)
    ca.ensure()
    ca.key_path.chmod(0o644)
    with pytest.raises(CertificateError) as caught:
        LocalCA(tmp_path).ensure()
    message = str(caught.value)
    assert f"{ca.key_path} can be read by others (mode 0644)" in message
    assert "chmod 600" in message and "\n" not in message


def test_a_broken_ca_file_is_named_and_left_alone(tmp_path: Path) -> None:
    ca = LocalCA(tmp_path)
    ca.ensure()
    ca.cert_path.write_bytes(b"not a certificate")
    with pytest.raises(CertificateError, match=r"relay-ca.pem is not a PEM certificate: remove .* new local CA"):
        LocalCA(tmp_path).ensure()
    assert ca.cert_path.read_bytes() == b"not a certificate"


def test_a_key_that_does_not_match_the_certificate_is_refused(tmp_path: Path) -> None:
    ca, other = LocalCA(tmp_path / "a"), LocalCA(tmp_path / "b")
    ca.ensure()
    other.ensure()
    ca.key_path.write_bytes(other.key_path.read_bytes())
    with pytest.raises(CertificateError, match=r"relay-ca-key\.pem is not the key of relay-ca\.pem"):
        LocalCA(tmp_path / "a").ensure()


def test_a_key_without_its_certificate_is_an_error_not_a_silent_new_ca(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(certs, "_WAIT_FOR_PEER", 0.05)
    ca = LocalCA(tmp_path)
    ca.ensure()
    ca.cert_path.unlink()
    with pytest.raises(CertificateError, match=r"relay-ca\.pem is missing"):
        LocalCA(tmp_path).ensure()


def test_a_directory_that_cannot_be_made_is_one_line_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(CertificateError) as caught:
        LocalCA(blocker / "ca").ensure()
    assert str(caught.value).startswith(f"cannot create the local CA in {blocker / 'ca'}: ")
    assert "--ca-dir" in str(caught.value)


def test_an_expired_ca_is_replaced_at_the_same_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=366 * 11)
    monkeypatch.setattr(certs, "_now", lambda: past)
    LocalCA(tmp_path).ensure()
    old = tmp_path.joinpath("relay-ca.pem").read_bytes()
    monkeypatch.undo()
    ca = LocalCA(tmp_path)
    assert ca.ensure() is True
    assert ca.cert_path.read_bytes() != old
    assert asyncio.run(handshake(ca.server_context(["127.0.0.1"]), "127.0.0.1", ca.cert_path)).startswith("TLS")


def test_two_relays_making_the_ca_at_once_end_up_with_the_same_one(tmp_path: Path) -> None:
    folder = tmp_path / "ca"
    made: list[bytes] = []
    barrier = threading.Barrier(4)

    def make() -> None:
        ca = LocalCA(folder)
        barrier.wait()
        ca.ensure()
        context_ok = ca.server_context(["127.0.0.1"])
        assert context_ok is not None
        made.append(ca.cert_path.read_bytes())

    threads = [threading.Thread(target=make) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 4 and len(set(made)) == 1
    asyncio.run(handshake(LocalCA(folder).server_context(["127.0.0.1"]), "127.0.0.1", folder / "relay-ca.pem"))
