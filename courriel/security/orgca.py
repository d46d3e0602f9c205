"""The organization's certificate authority: how servers of one organization prove who they are.

Exchange authenticates server-to-server SMTP with its ExchangeServer mechanism (Kerberos or
certificates of the organization); Courriel uses mutual TLS with certificates that the
organization's own CA issues. The CA (EC P-256) is made once and kept in the organization
directory (org/certificates.py), so every server that can read the directory can have itself a
certificate issued at start: trust in the directory is already trust in the organization, as in
Active Directory. A server certificate names its server in a URI SAN `urn:courriel:server:<name>`
(besides its FQDN and addresses) and serves both ends of a connection (serverAuth, clientAuth).

`OrgCredentials` gives the SSL contexts: `client_context` to reach another server (our
certificate presented, the peer's checked against the organization CA only, no host name check
because peers are reached by address), `user_context` to reach one on a user's behalf (the same
without our certificate) and `accept_servers` for listeners that admit servers.

Pure crypto and files: no directory access here.
"""

from __future__ import annotations

import datetime
import functools
import os
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from courriel.security.tls import (
    BACKDATE,
    _atomic_write,
    _harden,
    _locked,
    key_usage,
    private_key_pem,
    subject_alt_names,
)

CA_VALIDITY = datetime.timedelta(days=20 * 365)
SERVER_VALIDITY = datetime.timedelta(days=2 * 365)
RENEW_BEFORE = datetime.timedelta(days=30)  # a server certificate this close to its end is re-issued
SERVER_URI = "urn:courriel:server:"
CERT_FILE = "org-server.crt"
KEY_FILE = "org-server.key"
CA_FILE = "org-ca.crt"  # for administrators and clients that check a server's certificate


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def new_authority(organization: str) -> tuple[bytes, bytes]:
    """A new organization CA: (certificate PEM, private key PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization[:64]),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{organization[:40]} Organization CA"),
        ]
    )
    now = _now()
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), private_key_pem(key)


def issue_server_certificate(
    ca_cert_pem: bytes, ca_key_pem: bytes, server: str, fqdn: str, addresses: Sequence[str]
) -> tuple[bytes, bytes]:
    """A certificate for one server of the organization, signed by its CA: (certificate PEM, key PEM)."""
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the organization CA key is not an EC key")
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(SERVER_URI + quote(server, safe=""))]
    names += subject_alt_names(fqdn, [a for a in addresses if a])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    *ca_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME),
                    x509.NameAttribute(NameOID.COMMON_NAME, fqdn[:64]),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(min(now + SERVER_VALIDITY, ca_cert.not_valid_after_utc))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage(cert_sign=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), private_key_pem(key)


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """The CA's signature is on `cert` (whatever else the files say)."""
    public = ca.public_key()
    if cert.issuer != ca.subject or not isinstance(public, ec.EllipticCurvePublicKey):
        return False
    algorithm = cert.signature_hash_algorithm
    if algorithm is None:
        return False
    try:
        public.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(algorithm))
    except InvalidSignature:
        return False
    return True


def certificate_server(cert: x509.Certificate) -> str | None:
    """The organization server a certificate names (its `urn:courriel:server:` URI SAN)."""
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for uri in sans.get_values_for_type(x509.UniformResourceIdentifier):
        if uri.startswith(SERVER_URI):
            return unquote(uri[len(SERVER_URI) :]) or None
    return None


def _current(cert_file: Path, key_file: Path, ca: x509.Certificate, server: str, names: set[str]) -> bool:
    """The files hold a certificate of this CA for this server and names, not about to expire."""
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    except (OSError, ValueError):
        return False
    if key.public_key() != cert.public_key() or not _issued_by(cert, ca):
        return False
    if certificate_server(cert) != server or cert.not_valid_after_utc - RENEW_BEFORE < _now():
        return False
    return names <= _san_texts(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)


def _san_texts(entries: Iterable[x509.GeneralName]) -> set[str]:
    """The host names (lower case) and addresses among SAN entries, for comparing two sets."""
    return {str(e.value).lower() for e in entries if isinstance(e, (x509.DNSName, x509.IPAddress))}


@dataclass(frozen=True)
class OrgCredentials:
    """This server's organization certificate, and the organization CA that every peer's must chain to."""

    server: str
    ca_pem: bytes
    cert_file: Path
    key_file: Path

    @classmethod
    def ensure(
        cls,
        tls_dir: Path,
        ca_cert_pem: bytes,
        ca_key_pem: bytes,
        server: str,
        fqdn: str,
        addresses: Sequence[str],
    ) -> OrgCredentials:
        """Keep `tls_dir/org-server.{crt,key}` issued by this CA for this server, re-issuing when
        missing, from another CA, for other names or near expiry, and `tls_dir/org-ca.crt`. Workers
        starting at once take turns (a lock on the directory), so a key is never paired with
        another's certificate."""
        tls_dir.mkdir(parents=True, exist_ok=True)
        cert_file, key_file = tls_dir / CERT_FILE, tls_dir / KEY_FILE
        ca = x509.load_pem_x509_certificate(ca_cert_pem)
        names = _san_texts(subject_alt_names(fqdn, addresses))  # what a new certificate would name
        with _locked(tls_dir):
            if not _current(cert_file, key_file, ca, server, names):
                cert_pem, key_pem = issue_server_certificate(ca_cert_pem, ca_key_pem, server, fqdn, addresses)
                _atomic_write(key_file, key_pem, 0o600)
                _atomic_write(cert_file, cert_pem, 0o644)
            ca_file = tls_dir / CA_FILE
            if not ca_file.exists() or ca_file.read_bytes() != ca_cert_pem:
                _atomic_write(ca_file, ca_cert_pem, 0o644)
        return cls(server, ca_cert_pem, cert_file, key_file)

    def user_context(self) -> ssl.SSLContext:
        """For connecting to another server of the organization on a user's behalf: its
        certificate checked against the CA (reached by address: no name check), none of ours
        shown, so that the user's own rights apply there (Client Frontend → Client Proxy)."""
        ctx = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cadata=self.ca_pem.decode("ascii"))
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """For connecting to another server of the organization as this server: `user_context`
        presenting our certificate."""
        ctx = self.user_context()
        ctx.load_cert_chain(os.fspath(self.cert_file), os.fspath(self.key_file))
        return ctx

    def accept_servers(self, ctx: ssl.SSLContext) -> ssl.SSLContext:
        """A new listener context that asks for a client certificate and checks it against the CA.

        It keeps `ctx`'s protocol floor and options but presents the organization certificate:
        the peers' `client_context` trusts the organization CA only (an SSLContext cannot be
        copied with its certificate, and the public certificate would not verify there anyway).
        A client without a certificate still connects (CERT_OPTIONAL) and is simply not a server.
        """
        out = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
        out.minimum_version = max(out.minimum_version, ctx.minimum_version)
        out.options |= ctx.options
        out.load_cert_chain(os.fspath(self.cert_file), os.fspath(self.key_file))
        out.load_verify_locations(cadata=self.ca_pem.decode("ascii"))
        out.verify_mode = ssl.CERT_OPTIONAL
        return out

    def peer_server(self, ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> str | None:
        """The organization server named by the peer's certificate, if the handshake verified it
        and this CA's signature is on it (checked here too, whatever the context trusted); else None."""
        if ssl_object is None or not ssl_object.getpeercert():  # {} or None unless verified
            return None
        der = ssl_object.getpeercert(binary_form=True)
        if not der:
            return None
        cert = x509.load_der_x509_certificate(der)
        return certificate_server(cert) if _issued_by(cert, self._ca) else None

    @functools.cached_property
    def _ca(self) -> x509.Certificate:
        """The CA certificate, parsed once: `peer_server` runs for every connection."""
        return x509.load_pem_x509_certificate(self.ca_pem)
