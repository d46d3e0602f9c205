"""TLS: the self-signed certificate a fresh server starts with, and the SSL contexts.

Every listener (SMTP STARTTLS, IMAPS, POP3S, HTTPS, the front end's proxies) takes its context
from `server_context`; every outbound connection (SMTP delivery, proxying to a back end) from
`client_context`. DESIGN §6: TLS 1.2 at least.

A new server must speak TLS from its first start, before an administrator installs a real
certificate, so `ensure_certificate` makes a self-signed one (EC P-256, five years, SANs for the
FQDN, localhost and any extra names or addresses) when none exists. Files are written atomically
(temporary file, fsync, rename) so a crash never leaves half a key; the key is mode 0600.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import ipaddress
import os
import ssl
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=5 * 365)
# Backdating covers clients whose clocks run a little behind ours.
BACKDATE = datetime.timedelta(minutes=10)

# Mozilla "intermediate" suites for TLS 1.2: forward secrecy and AEAD only. TLS 1.3 suites are
# not set by this string; OpenSSL's defaults for 1.3 are all good.
TLS12_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "DHE-RSA-AES128-GCM-SHA256",
        "DHE-RSA-AES256-GCM-SHA384",
    )
)

StrPath = str | os.PathLike[str]


def ensure_certificate(
    cert_path: StrPath, key_path: StrPath, fqdn: str, extra_names: Iterable[str] = ()
) -> None:
    """Create a self-signed certificate and its key unless both files exist already.

    `extra_names` are host names or IP addresses ("127.0.0.1", "::1"); addresses become IP
    SANs. If only one of the two files exists, both are made anew: a certificate is useless
    without its own key.
    """
    cert_file, key_file = Path(cert_path), Path(key_path)
    if cert_file.exists() and key_file.exists():
        return
    key_file.parent.mkdir(parents=True, exist_ok=True)
    cert_file.parent.mkdir(parents=True, exist_ok=True)
    # Two processes starting at once must not pair one's key with the other's certificate.
    with _locked(key_file.parent):
        if cert_file.exists() and key_file.exists():
            return
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _self_signed(key, fqdn, extra_names)
        key_pem = private_key_pem(key)
        # Key first: a crash between the two renames leaves no certificate, so the next
        # start makes both again rather than serving a certificate with a lost key.
        _atomic_write(key_file, key_pem, 0o600)
        _atomic_write(cert_file, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _self_signed(key: ec.EllipticCurvePrivateKey, fqdn: str, extra_names: Iterable[str]) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, fqdn)])
    now = datetime.datetime.now(datetime.UTC)
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(subject_alt_names(fqdn, extra_names)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """The key as unencrypted PKCS#8 PEM (the file's mode protects it)."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    """digitalSignature (ECDSA), plus keyCertSign and cRLSign for a CA (organization CA, orgca.py)."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def subject_alt_names(fqdn: str, extra_names: Iterable[str] = ()) -> list[x509.GeneralName]:
    """The SAN entries for a certificate: `fqdn`, localhost, then `extra_names`, no duplicates."""
    entries: list[x509.GeneralName] = []
    seen: set[str] = set()
    for raw in (fqdn, "localhost", *extra_names):
        text = raw.strip().rstrip(".")
        if not text or text.lower() in seen:
            continue
        seen.add(text.lower())
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(text)))
        except ValueError:
            entries.append(x509.DNSName(text.lower()))
    return entries


def _atomic_write(path: Path, data: bytes, mode: int) -> None:
    # mkstemp creates the file 0600, so the key is never readable by others, not even briefly.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    # Locking the directory itself (Linux flock works on a directory descriptor) leaves no
    # lock file behind.
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _harden(ctx: ssl.SSLContext) -> ssl.SSLContext:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS12_CIPHERS)
    # No compression (CRIME); no renegotiation (a client-initiated DoS vector, and TLS 1.3 has
    # none anyway).
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    return ctx


def server_context(cert_path: StrPath, key_path: StrPath) -> ssl.SSLContext:
    """A context for listeners: TLS 1.2+, forward-secret AEAD suites, server's suite order."""
    ctx = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.load_cert_chain(os.fspath(cert_path), os.fspath(key_path))
    return ctx


def client_context(verify: bool, cafile: str | None = None) -> ssl.SSLContext:
    """A context for outbound connections.

    `verify=True` checks the chain (against `cafile`, or the system store when None) and the
    host name. `verify=False` is for opportunistic SMTP STARTTLS between MTAs (RFC 7435 §1.3,
    RFC 3207 §4.1: a certificate that fails to verify must not stop delivery, or mail would
    fall back to plaintext); it still encrypts, but proves nothing about the peer.
    """
    ctx = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    if verify:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.check_hostname = True
        if cafile is None:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
        else:
            ctx.load_verify_locations(cafile=cafile)
    else:
        ctx.check_hostname = False  # must be cleared before verify_mode may drop to CERT_NONE
        ctx.verify_mode = ssl.CERT_NONE
    return ctx
