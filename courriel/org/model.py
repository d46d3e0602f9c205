"""The organization directory's objects (the seed's Active Directory), as immutable values.

The directory store reads and writes them; the cache hands them to the transport, the protocol
services and the admin commands. Names and defaults follow Exchange 2013 (research §1–§3, §8).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

MB = 1024 * 1024


class DomainType(StrEnum):
    AUTHORITATIVE = "Authoritative"  # every recipient is in the directory; unknown ones are refused
    INTERNAL_RELAY = "InternalRelay"  # some recipients live elsewhere; unknown ones are relayed on
    EXTERNAL_RELAY = "ExternalRelay"  # none live here; relayed on


class RecipientKind(StrEnum):
    MAILBOX = "mailbox"
    GROUP = "group"  # distribution group
    CONTACT = "contact"  # mail contact: an external address in the address book


class PermissionGroup(StrEnum):
    ANONYMOUS_USERS = "AnonymousUsers"
    EXCHANGE_USERS = "ExchangeUsers"
    EXCHANGE_SERVERS = "ExchangeServers"
    EXCHANGE_LEGACY_SERVERS = "ExchangeLegacyServers"
    PARTNERS = "Partners"
    CUSTOM = "Custom"


class AuthMechanism(StrEnum):
    NONE = "None"
    TLS = "Tls"
    INTEGRATED = "Integrated"
    BASIC_AUTH = "BasicAuth"
    BASIC_AUTH_REQUIRE_TLS = "BasicAuthRequireTLS"
    EXCHANGE_SERVER = "ExchangeServer"
    EXTERNAL_AUTHORITATIVE = "ExternalAuthoritative"


class TransportRole(StrEnum):
    FRONTEND = "FrontendTransport"
    HUB = "HubTransport"
    EDGE = "EdgeTransport"


class LoggingLevel(StrEnum):
    NONE = "None"
    VERBOSE = "Verbose"


class LoginType(StrEnum):
    PLAIN_TEXT_LOGIN = "PlainTextLogin"  # plain-text LOGIN allowed without TLS
    PLAIN_TEXT_AUTHENTICATION = "PlainTextAuthentication"
    SECURE_LOGIN = "SecureLogin"  # plain-text credentials only after TLS (the default)


@dataclass(frozen=True, slots=True)
class AcceptedDomain:
    name: str
    domain_type: DomainType = DomainType.AUTHORITATIVE
    default: bool = False


@dataclass(frozen=True, slots=True)
class Recipient:
    id: int
    kind: RecipientKind
    display_name: str
    primary_address: str  # PrimarySmtpAddress as entered
    addresses: tuple[str, ...]  # every proxy address (primary first), as entered
    database: str | None = None  # mailboxes: the mailbox database holding it
    guid: str | None = None  # mailboxes: stable identity in the store, kept across database moves
    password_hash: str | None = field(default=None, repr=False)
    external_address: str | None = None  # contacts: where mail goes
    imap_enabled: bool = True
    pop_enabled: bool = True
    issue_warning_quota: int | None = None  # bytes; None = unlimited
    prohibit_send_quota: int | None = None
    prohibit_send_receive_quota: int | None = None
    max_send_size: int | None = None
    max_receive_size: int | None = None
    hidden: bool = False  # HiddenFromAddressListsEnabled


@dataclass(frozen=True, slots=True)
class Site:
    name: str


@dataclass(frozen=True, slots=True)
class Server:
    name: str
    fqdn: str
    roles: tuple[str, ...]
    site: str
    addresses: tuple[str, ...] = ()  # where other servers reach it
    port_offset: int = 0


@dataclass(frozen=True, slots=True)
class MailboxDatabase:
    name: str
    url: str  # sqlite:///relative/to/the/server/data_dir or postgresql://…
    server: str | None  # the Mailbox server it is active on (mounted); None = dismounted
    mounted: bool = True
    issue_warning_quota: int | None = 1945 * MB  # Exchange 2013 database defaults
    prohibit_send_quota: int | None = 2048 * MB
    prohibit_send_receive_quota: int | None = 2355 * MB


QuotaName = Literal["issue_warning_quota", "prohibit_send_quota", "prohibit_send_receive_quota"]


def quota_in_force(recipient: Recipient | None, database: MailboxDatabase | None, name: QuotaName) -> int | None:
    """A mailbox quota as Exchange applies it: the mailbox's own, else its database's (None: no limit)."""
    own = getattr(recipient, name) if recipient is not None else None
    return own if own is not None else (getattr(database, name) if database is not None else None)


@dataclass(frozen=True, slots=True)
class ReceiveConnector:
    """A receive connector: policy as data (New-ReceiveConnector's parameters)."""

    server: str
    name: str
    transport_role: TransportRole
    bindings: tuple[str, ...]  # "0.0.0.0:25", "[::]:25", "127.0.0.1:2525"
    remote_ip_ranges: tuple[str, ...] = (
        "0.0.0.0-255.255.255.255",
        "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    )
    permission_groups: tuple[PermissionGroup, ...] = ()
    auth_mechanisms: tuple[AuthMechanism, ...] = (AuthMechanism.TLS,)
    require_tls: bool = False
    max_message_size: int = 36 * MB
    max_recipients_per_message: int = 200
    max_inbound_connection: int = 5000
    max_inbound_connection_per_source: int = 20
    connection_timeout: float = 600.0  # seconds
    connection_inactivity_timeout: float = 300.0
    max_hop_count: int = 60
    max_logon_failures: int = 3
    max_protocol_errors: int = 5
    tarpit_interval: float = 5.0
    banner: str | None = None
    fqdn: str | None = None
    protocol_logging_level: LoggingLevel = LoggingLevel.NONE
    implicit_tls: bool = False
    enabled: bool = True
    comment: str = ""


@dataclass(frozen=True, slots=True)
class SendConnector:
    """A send connector (New-SendConnector's parameters); routing and delivery read it."""

    name: str
    address_spaces: tuple[tuple[str, int], ...]  # (pattern, cost)
    dns_routing_enabled: bool = True
    smart_hosts: tuple[str, ...] = ()
    port: int = 25
    smart_host_auth_mechanism: str = "None"
    auth_username: str | None = None
    auth_password: str | None = field(default=None, repr=False)
    source_transport_servers: tuple[str, ...] = ()
    max_message_size: int = 25 * MB
    require_tls: bool = False
    tls_auth_level: str | None = None  # EncryptionOnly, CertificateValidation, DomainValidation
    tls_domain: str | None = None
    ignore_starttls: bool = False
    fqdn: str | None = None
    connection_inactivity_timeout: float = 600.0
    usage: str = "Custom"
    enabled: bool = True
    protocol_logging_level: LoggingLevel = LoggingLevel.NONE
    front_end_proxy_enabled: bool = False
    source_ip_address: str = "0.0.0.0"  # where its connections leave from; 0.0.0.0: the kernel's choice


@dataclass(frozen=True, slots=True)
class TransportConfig:
    """Organization-wide transport settings (Set-TransportConfig) and retry intervals."""

    max_receive_size: int = 10 * MB
    max_send_size: int = 10 * MB
    max_recipient_envelope_limit: int = 500
    message_expiration_timeout: float = 2 * 86400.0
    delay_notification_timeout: float = 4 * 3600.0
    message_retry_interval: float = 15 * 60.0
    transient_failure_retry_interval: float = 5 * 60.0
    transient_failure_retry_count: int = 6
    max_hop_count: int = 30
    # Where mail to postmaster@<accepted domain> or to <Postmaster> goes when no recipient holds
    # that address (RFC 5321 §4.5.1: it must be accepted); None: postmaster@<default domain>.
    postmaster_address: str | None = None


@dataclass(frozen=True, slots=True)
class ProtocolSettings:
    """Set-ImapSettings / Set-PopSettings."""

    enabled: bool = False  # disabled by default, as in the seed
    login_type: LoginType = LoginType.SECURE_LOGIN
    x509_certificate_name: str | None = None
    external_connection_settings: tuple[str, ...] = ()  # "host:port:TLS|SSL"
    internal_connection_settings: tuple[str, ...] = ()
    banner: str | None = None
    authenticated_connection_timeout: float = 1800.0
    pre_authenticated_connection_timeout: float = 60.0
    max_connections: int = 2147483647
    max_connections_per_user: int = 16
    max_connection_from_single_ip: int = 2147483647
    max_command_size: int = 10240
    protocol_log_enabled: bool = False
