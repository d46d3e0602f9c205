"""Self-signed certificates and the TLS contexts, with real handshakes over loopback."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from courriel.security.tls import (
    client_context,
    ensure_certificate,
    server_context,
    subject_alt_names,
)

FQDN = "mail.example.test"


@pytest.fixture
def cert_pair(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "tls" / "server.crt", tmp_path / "tls" / "server.key"
    ensure_certificate(cert, key, FQDN, extra_names=("127.0.0.1", "::1", "alias.example.test"))
    return cert, key


def load(cert: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(cert.read_bytes())


def test_certificate_names_key_and_validity(cert_pair: tuple[Path, Path]) -> None:
    cert_path, key_path = cert_pair
    cert = load(cert_path)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [FQDN, "localhost", "alias.example.test"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert datetime.timedelta(days=5 * 365) <= lifetime < datetime.timedelta(days=5 * 365 + 1)
    assert cert.not_valid_before_utc <= datetime.datetime.now(datetime.UTC)
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp256r1"
    assert key.public_key() == cert.public_key()


def test_key_file_is_private(cert_pair: tuple[Path, Path]) -> None:
    _, key_path = cert_pair
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    assert not [p for p in key_path.parent.iterdir() if p.name.endswith(".tmp")]


def test_existing_files_are_kept(cert_pair: tuple[Path, Path]) -> None:
    cert_path, key_path = cert_pair
    before = (cert_path.read_bytes(), key_path.read_bytes())
    ensure_certificate(cert_path, key_path, "other.example.test")
    assert (cert_path.read_bytes(), key_path.read_bytes()) == before


def test_lost_key_remakes_both(cert_pair: tuple[Path, Path]) -> None:
    cert_path, key_path = cert_pair
    old_cert = cert_path.read_bytes()
    key_path.unlink()
    ensure_certificate(cert_path, key_path, FQDN)
    assert cert_path.read_bytes() != old_cert
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert key.public_key() == load(cert_path).public_key()


def test_san_list_has_no_duplicates() -> None:
    names = subject_alt_names("Mail.Example.Test.", ["mail.example.test", "localhost", "", "10.0.0.1"])
    assert names == [
        x509.DNSName("mail.example.test"),
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("10.0.0.1")),
    ]


def test_contexts_refuse_old_protocols_and_compression(cert_pair: tuple[Path, Path]) -> None:
    for ctx in (server_context(*cert_pair), client_context(True), client_context(False)):
        assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
        assert ctx.options & ssl.OP_NO_COMPRESSION
        assert all("CBC" not in c["name"] and "RC4" not in c["name"] for c in ctx.get_ciphers())


async def handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, hostname: str) -> tuple[str, str]:
    """Open a TLS connection over loopback, echo one line, return (version, cipher)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(await reader.readline())
            await writer.drain()
        except (ssl.SSLError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        async with asyncio.timeout(10):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=client_ctx, server_hostname=hostname
            )
            writer.write(b"ping\r\n")
            assert await reader.readline() == b"ping\r\n"
            tls = writer.get_extra_info("ssl_object")
            result = (tls.version(), tls.cipher()[0])
            writer.close()
            await writer.wait_closed()
            return result
    finally:
        server.close()
        await server.wait_closed()


async def test_verified_handshake_by_name_and_address(cert_pair: tuple[Path, Path]) -> None:
    cert_path, key_path = cert_pair
    client = client_context(verify=True, cafile=str(cert_path))
    version, _ = await handshake(server_context(cert_path, key_path), client, FQDN)
    assert version == "TLSv1.3"
    version, _ = await handshake(server_context(cert_path, key_path), client, "127.0.0.1")
    assert version == "TLSv1.3"


async def test_strict_x509_checking_accepts_the_certificate(cert_pair: tuple[Path, Path]) -> None:
    # Python 3.13 turns VERIFY_X509_STRICT on in default contexts; our certificate must pass.
    cert_path, key_path = cert_pair
    client = client_context(verify=True, cafile=str(cert_path))
    client.verify_flags |= ssl.VERIFY_X509_STRICT
    await handshake(server_context(cert_path, key_path), client, FQDN)


async def test_tls12_client_gets_an_aead_suite(cert_pair: tuple[Path, Path]) -> None:
    client = client_context(verify=True, cafile=str(cert_pair[0]))
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    version, cipher = await handshake(server_context(*cert_pair), client, FQDN)
    assert version == "TLSv1.2"
    assert cipher.startswith("ECDHE-ECDSA-") and ("GCM" in cipher or "CHACHA20" in cipher)


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")
async def test_old_client_is_refused(cert_pair: tuple[Path, Path]) -> None:
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    client.set_ciphers("ALL:@SECLEVEL=0")
    client.minimum_version = ssl.TLSVersion.TLSv1
    client.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await handshake(server_context(*cert_pair), client, FQDN)


@pytest.mark.parametrize("hostname", ["wrong.example.test", "127.0.0.2"])
async def test_wrong_name_fails_verification(cert_pair: tuple[Path, Path], hostname: str) -> None:
    client = client_context(verify=True, cafile=str(cert_pair[0]))
    with pytest.raises(ssl.SSLCertVerificationError):
        await handshake(server_context(*cert_pair), client, hostname)


async def test_unknown_issuer_fails_verification(cert_pair: tuple[Path, Path]) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        await handshake(server_context(*cert_pair), client_context(verify=True), FQDN)


async def test_unverified_client_still_encrypts(cert_pair: tuple[Path, Path]) -> None:
    version, _ = await handshake(server_context(*cert_pair), client_context(verify=False), "anything")
    assert version == "TLSv1.3"
