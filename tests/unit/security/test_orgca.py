"""The organization CA and mutual TLS between servers, over real loopback TLS handshakes."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
from cryptography import x509

from courriel.org.directory import Directory
from courriel.security.orgca import (
    CERT_FILE,
    KEY_FILE,
    OrgCredentials,
    certificate_server,
    issue_server_certificate,
    new_authority,
)
from courriel.security.tls import client_context, ensure_certificate, server_context


def _creds(tmp: Path, ca: tuple[bytes, bytes], server: str) -> OrgCredentials:
    return OrgCredentials.ensure(tmp / server, ca[0], ca[1], server, f"{server}.example.test", ("127.0.0.1",))


async def _handshake(
    listener: ssl.SSLContext, client: ssl.SSLContext, who: OrgCredentials
) -> tuple[str | None, str | None]:
    """Connect with `client` to a server with `listener`: (peer server seen by the listener, by the client)."""
    seen: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.set_result(who.peer_server(writer.get_extra_info("ssl_object")))
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=listener)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client, server_hostname=None)
        by_client = who.peer_server(writer.get_extra_info("ssl_object"))
        await reader.read()
        writer.close()
        return await asyncio.wait_for(seen, 10), by_client
    finally:
        server.close()
        await server.wait_closed()


def test_server_certificate_names_the_server_and_chains_to_the_ca() -> None:
    ca_cert, ca_key = new_authority("Contoso")
    cert_pem, _ = issue_server_certificate(ca_cert, ca_key, "MBX 01", "mbx01.contoso.test", ["10.0.0.5", "::1"])
    cert = x509.load_pem_x509_certificate(cert_pem)
    assert certificate_server(cert) == "MBX 01"
    assert cert.issuer == x509.load_pem_x509_certificate(ca_cert).subject
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "mbx01.contoso.test" in sans.get_values_for_type(x509.DNSName)
    assert {str(a) for a in sans.get_values_for_type(x509.IPAddress)} == {"10.0.0.5", "::1"}


def test_ensure_keeps_a_good_certificate_and_reissues_for_another_ca(tmp_path: Path) -> None:
    ca = new_authority("Contoso")
    first = _creds(tmp_path, ca, "mbx1")
    before = first.cert_file.read_bytes()
    assert _creds(tmp_path, ca, "mbx1").cert_file.read_bytes() == before  # still good: kept
    assert oct(first.key_file.stat().st_mode & 0o777) == "0o600"
    other = new_authority("Fabrikam")
    again = _creds(tmp_path, other, "mbx1")
    assert again.cert_file.read_bytes() != before
    assert again.cert_file.name == CERT_FILE and again.key_file.name == KEY_FILE
    (tmp_path / "mbx1" / KEY_FILE).unlink()
    assert _creds(tmp_path, other, "mbx1").key_file.exists()  # a lost key: both made anew


async def test_mutual_tls_identifies_servers_of_the_organization(tmp_path: Path) -> None:
    ca = new_authority("Contoso")
    mbx1, mbx2 = _creds(tmp_path, ca, "mbx1"), _creds(tmp_path, ca, "mbx2")
    ensure_certificate(tmp_path / "pub.crt", tmp_path / "pub.key", "mbx2.example.test")
    public = server_context(tmp_path / "pub.crt", tmp_path / "pub.key")
    listener = mbx2.accept_servers(public)
    assert listener is not public and listener.verify_mode is ssl.CERT_OPTIONAL
    by_listener, by_client = await _handshake(listener, mbx1.client_context(), mbx2)
    assert (by_listener, by_client) == ("mbx1", "mbx2")


async def test_a_client_without_certificate_is_no_server(tmp_path: Path) -> None:
    ca = new_authority("Contoso")
    mbx2 = _creds(tmp_path, ca, "mbx2")
    ensure_certificate(tmp_path / "pub.crt", tmp_path / "pub.key", "mbx2.example.test")
    listener = mbx2.accept_servers(server_context(tmp_path / "pub.crt", tmp_path / "pub.key"))
    by_listener, _ = await _handshake(listener, client_context(False), mbx2)
    assert by_listener is None


async def test_a_certificate_of_another_organization_is_refused(tmp_path: Path) -> None:
    ours, theirs = new_authority("Contoso"), new_authority("Intruder")
    mbx2 = _creds(tmp_path, ours, "mbx2")
    intruder = _creds(tmp_path / "x", theirs, "mbx1")  # claims a server name of ours
    ensure_certificate(tmp_path / "pub.crt", tmp_path / "pub.key", "mbx2.example.test")
    listener = mbx2.accept_servers(server_context(tmp_path / "pub.crt", tmp_path / "pub.key"))
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await _handshake(listener, intruder.client_context(), mbx2)
    # …and our client refuses a listener of theirs.
    with pytest.raises(ssl.SSLError):
        await _handshake(intruder.accept_servers(listener), mbx2.client_context(), intruder)


async def test_directory_makes_the_ca_once(db_url: str, tmp_path: Path) -> None:
    async with await Directory.open(db_url, tmp_path) as directory:
        assert await directory.authority_certificate() is None
        made = await asyncio.gather(*(directory.certificate_authority("Contoso") for _ in range(4)))
        assert len({m[0] for m in made}) == 1  # concurrent first calls agree on one CA
        assert await directory.authority_certificate() == made[0][0]
    async with await Directory.open(db_url, tmp_path) as directory:
        assert (await directory.certificate_authority("Other"))[0] == made[0][0]
