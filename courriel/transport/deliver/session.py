"""Where a send connector's mail goes, and how a session to it is opened under the connector's rules.

Endpoints (RFC 5321 §5.1): with DNSRoutingEnabled, the recipient domain's MX hosts in
preference order (random among equals, the implicit MX, null MX refused — all in
`courriel.dns`), every address of every host, on port 25; otherwise the connector's SmartHosts,
names or IPs, in the order given, on its Port. At most `MAX_ENDPOINTS` addresses are tried per
attempt (Postfix's smtp_mx_address_limit plays the same role).

A session is ready once it has a 220 greeting, EHLO (HELO if refused), the TLS the connector
asks for, and AUTH for a smart host that wants it:
- IgnoreSTARTTLS: never STARTTLS. Otherwise STARTTLS whenever offered (opportunistic, RFC 3207;
  an unverified certificate is fine, RFC 7435). If the handshake fails the same host is tried
  once more in clear, as Postfix does at security level "may".
- RequireTLS: no STARTTLS, a refusal or a failed handshake ends the session (the next host is
  tried; then the recipients are deferred): the message never goes out in clear. TlsAuthLevel
  CertificateValidation checks the chain; DomainValidation also the name (TlsDomain, else the
  host's name; `*.example.com` admits any subdomain of example.com, as Exchange's does).
- SmartHostAuthMechanism BasicAuth: AUTH when offered; BasicAuthRequireTLS only after TLS.
  ExchangeServer and ExternalAuthoritative send no credentials (Kerberos between Exchange
  servers is not ours to speak; an externally secured link needs none).
- A session to a server of the organization (deliver/organization.py) gets `tls_context`: our
  organization certificate, the peer's checked against the organization CA, no name check.
Each endpoint names the local address its connection leaves from (deliver/source.py): the
connector's SourceIPAddress toward the Internet, this server's own address toward the servers of
the organization. A SourceIPAddress this computer does not hold, or of the other IP family than
an endpoint's, fails that endpoint's connection (the next one is tried, then the mail deferred):
mail never leaves from an address the administrator did not choose.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass

from courriel.core.errors import TransientError
from courriel.dns import DnsTemporaryFailure, NextHopResolver, NoSuchDomain
from courriel.org.model import SendConnector
from courriel.security.tls import client_context
from courriel.transport.deliver.client import ConnectionLost, ProtocolLogger, SmtpClient
from courriel.transport.deliver.esmtp import describe
from courriel.transport.deliver.source import connector_source

MAX_ENDPOINTS = 10
CONNECT_TIMEOUT = 30.0  # Postfix smtp_connect_timeout


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str  # the MX or smart host name (or IP) as routing found it: for TLS names and logs
    address: str
    port: int
    source: str | None = None  # the local address to connect from; None: the kernel's choice

    def __str__(self) -> str:
        return (
            f"{self.host}[{self.address}]:{self.port}"
            if self.host != self.address
            else f"[{self.address}]:{self.port}"
        )


class SessionFailed(Exception):
    """This endpoint could not be used; `error` is the reply-style reason for the queue."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


async def endpoints(
    connector: SendConnector, domain: str, resolver: NextHopResolver, mx_port: int = 25
) -> list[Endpoint]:
    """Where to connect, best first. Raises PermanentError (null MX, no such domain) or TransientError."""
    source = connector_source(connector.source_ip_address)
    if connector.dns_routing_enabled:
        hops = await resolver.mx_hosts(domain)
        found = [Endpoint(h.host, a, mx_port, source) for h in hops for a in h.addresses]
        return found[:MAX_ENDPOINTS]
    found, problems = [], []
    for host in connector.smart_hosts:
        try:
            found += [Endpoint(host, a, connector.port, source) for a in await resolver.addresses(host)]
        except (NoSuchDomain, DnsTemporaryFailure) as exc:
            problems.append(exc.detail)  # a smart host that does not resolve is our problem: defer
    if not found:
        raise TransientError(
            "451 4.4.0 The smart hosts for this destination could not be resolved", "; ".join(problems)
        )
    return found[:MAX_ENDPOINTS]


class TlsContexts:
    """SSL contexts by verification need, made once (loading the CA store is not free)."""

    def __init__(self, cafile: str | None = None) -> None:
        self.cafile = cafile
        self._cache: dict[tuple[bool, bool], ssl.SSLContext] = {}

    def get(self, verify: bool, check_name: bool) -> ssl.SSLContext:
        key = (verify, check_name)
        if key not in self._cache:
            ctx = client_context(verify, self.cafile)
            if verify and not check_name:
                ctx.check_hostname = False  # CertificateValidation: the chain, not the name
            self._cache[key] = ctx
        return self._cache[key]


def _name_matches(cert: dict[str, object], pattern: str) -> bool:
    names = [v.lower() for k, v in cert.get("subjectAltName", ()) if k == "DNS"]  # type: ignore[attr-defined]
    suffix = pattern.lower()[1:]  # "*.example.com" → ".example.com"
    return any(n.endswith(suffix) or n == f"*{suffix}" for n in names)


@dataclass(slots=True)
class SessionOpener:
    """Opens ready sessions for one connector (rules in the module docstring)."""

    connector: SendConnector
    ehlo_name: str
    contexts: TlsContexts
    log: Callable[[Endpoint], ProtocolLogger | None]
    tls_context: ssl.SSLContext | None = None  # a server of the organization: mutual TLS

    @property
    def timeout(self) -> float:
        return self.connector.connection_inactivity_timeout

    async def open(self, endpoint: Endpoint) -> SmtpClient:
        """A ready session, or SessionFailed."""
        try:
            return await self._open(endpoint, starttls=not self.connector.ignore_starttls)
        except _TlsFallback:
            return await self._open(endpoint, starttls=False)

    async def _open(self, endpoint: Endpoint, *, starttls: bool) -> SmtpClient:
        client = await self._connect(endpoint)
        try:
            await self._prepare(client, endpoint, starttls)
        except ConnectionLost as exc:
            await client.close(polite=False)
            raise SessionFailed(f"451 4.4.2 Lost connection with {endpoint.host}: {exc}") from exc
        except BaseException:
            await client.close()
            raise
        return client

    async def _connect(self, endpoint: Endpoint) -> SmtpClient:
        try:
            return await SmtpClient.connect(
                endpoint.address,
                endpoint.port,
                host=endpoint.host,
                timeout=self.timeout,
                connect_timeout=min(CONNECT_TIMEOUT, self.timeout),
                log=self.log(endpoint),
                local_address=endpoint.source,
            )
        except ConnectionLost as exc:
            raise SessionFailed(f"451 4.4.1 Could not connect to {endpoint.host}: {exc}") from exc

    async def _prepare(self, client: SmtpClient, endpoint: Endpoint, starttls: bool) -> None:
        greeting = await client.greeting()
        if greeting.code != 220:  # RFC 5321 §3.1: a 554 greeting means "not here"; try another host
            raise SessionFailed(f"451 4.4.0 {endpoint.host} refused the connection: {describe(greeting)}")
        hello = await client.hello(self.ehlo_name)
        if hello.code != 250:
            raise SessionFailed(f"451 4.4.0 {endpoint.host} refused our greeting: {describe(hello)}")
        conn = self.connector
        if starttls and client.capabilities.starttls:
            await self._starttls(client, endpoint)
        elif conn.require_tls:
            raise SessionFailed(f"451 4.7.10 {endpoint.host} does not offer STARTTLS and TLS is required")
        mechanism = conn.smart_host_auth_mechanism
        if mechanism in ("BasicAuth", "BasicAuthRequireTLS") and conn.auth_username and conn.auth_password:
            if mechanism == "BasicAuthRequireTLS" and not client.tls:
                raise SessionFailed(f"451 4.7.10 {endpoint.host}: TLS is required before authenticating")
            if not client.capabilities.auth:
                raise SessionFailed(f"451 4.7.0 {endpoint.host} does not offer authentication")
            reply = await client.authenticate(conn.auth_username, conn.auth_password)
            if reply.code != 235:
                raise SessionFailed(f"451 4.7.0 Authentication to {endpoint.host} failed: {describe(reply)}")

    async def _starttls(self, client: SmtpClient, endpoint: Endpoint) -> None:
        conn = self.connector
        level = conn.tls_auth_level if conn.require_tls else None
        verify = level in ("CertificateValidation", "DomainValidation")
        name = conn.tls_domain or endpoint.host
        wildcard = level == "DomainValidation" and name.startswith("*.")
        if self.tls_context is not None:
            context, server_hostname = self.tls_context, None
        else:
            context = self.contexts.get(verify, level == "DomainValidation" and not wildcard)
            # An IP address is matched against the certificate's IP SANs (and sent as no SNI).
            server_hostname = None if wildcard else name
        try:
            reply = await client.starttls(context, server_hostname)
        except ConnectionLost as exc:
            if conn.require_tls:
                raise SessionFailed(f"451 4.7.10 TLS negotiation with {endpoint.host} failed: {exc}") from exc
            raise _TlsFallback() from exc
        if reply.code != 220:
            if conn.require_tls:
                raise SessionFailed(f"451 4.7.10 {endpoint.host} refused STARTTLS: {describe(reply)}")
            return  # opportunistic: carry on in clear (RFC 3207 §4.1)
        if wildcard:
            cert = client.peer_certificate()
            if cert is None or not _name_matches(cert, name):
                raise SessionFailed(f"451 4.7.10 The certificate of {endpoint.host} does not match {name}")
        hello = await client.hello(self.ehlo_name)  # RFC 3207 §4.2
        if hello.code != 250:
            raise SessionFailed(
                f"451 4.4.0 {endpoint.host} refused our greeting after STARTTLS: {describe(hello)}"
            )


class _TlsFallback(Exception):
    """Opportunistic TLS failed in the handshake: reconnect and go on in clear."""
