"""Resolve envelope recipients through the directory (DESIGN.md §4 "categorize").

Proxy addresses match case-insensitively, as Exchange does. Distribution groups expand
recursively with loop protection; duplicates (the same mailbox reached twice) are removed; contacts
are rewritten to their external address. Given the message's size, a recipient whose own
MaxReceiveSize it exceeds fails alone with 552 5.2.3 (RFC 3463: length exceeds an administrative
limit), a group member by the member's own limit, and the others still get the message, as
Exchange's categorizer does. The result is pure data: the queue commits it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from courriel.core.address import AddressError, parse_address
from courriel.org.model import (
    AcceptedDomain,
    DomainType,
    Recipient,
    RecipientKind,
    SendConnector,
    TransportConfig,
)
from courriel.transport.route.nexthop import NextHop, external_hop, mailbox_hop
from courriel.transport.route.organization import Topology

MAX_EXPANSION_DEPTH = 32  # nested groups deeper than this are treated as a loop
RECIPIENT_SIZE_STATUS = "5.2.3"  # RFC 3463 X.2.3: message length exceeds administrative limit
RECIPIENT_SIZE_TEXT = "RESOLVER.RST.RecipSizeLimit; Message too large for this recipient"


class DirectoryView(Protocol):
    def recipient(self, address: str) -> Recipient | None: ...
    def accepted_domain(self, domain: str) -> AcceptedDomain | None: ...
    def default_domain(self) -> AcceptedDomain | None: ...
    def members(self, group_id: int) -> Sequence[Recipient]: ...
    def send_connectors(self) -> Sequence[SendConnector]: ...
    @property
    def transport_config(self) -> TransportConfig: ...


@dataclass(frozen=True, slots=True)
class EnvelopeRecipient:
    address: str
    notify: str | None = None
    orcpt: str | None = None


@dataclass(frozen=True, slots=True)
class Resolved:
    address: str
    original: EnvelopeRecipient
    hop: NextHop
    target: str | None = None  # mailbox GUID
    recipient: Recipient | None = None


@dataclass(frozen=True, slots=True)
class Failed:
    address: str
    original: EnvelopeRecipient
    status: str  # enhanced status code
    text: str
    code: int = 550  # the reply code of the recorded error


@dataclass(slots=True)
class Categorized:
    resolved: list[Resolved] = field(default_factory=list)
    failed: list[Failed] = field(default_factory=list)
    expanded: list[tuple[str, list[str]]] = field(default_factory=list)  # (group, member addresses)

    @property
    def all_too_big(self) -> bool:
        """Nobody gets it and every recipient failed on MaxReceiveSize: refuse the transaction."""
        return not self.resolved and bool(self.failed) and all(f.status == RECIPIENT_SIZE_STATUS for f in self.failed)


def postmaster_address(directory: DirectoryView) -> str | None:
    """The organization's postmaster: TransportConfig.postmaster_address, else postmaster@<default domain>."""
    configured = directory.transport_config.postmaster_address
    if configured:
        return configured
    default = directory.default_domain()
    return f"postmaster@{default.name}" if default is not None else None


class Categorizer:
    def __init__(
        self, directory: DirectoryView, server: str, fqdn: str | None = None, topology: Topology | None = None
    ) -> None:
        """Without `topology` every mailbox database counts as mounted here (a single server)."""
        self.directory = directory
        self.topology = topology
        self.server = server
        self.fqdn = (fqdn or "").lower()
        self._size: int | None = None

    def categorize(self, rcpts: Sequence[EnvelopeRecipient], size: int | None = None) -> Categorized:
        """`size`: the message's, checked against each recipient's MaxReceiveSize (None: no check)."""
        self._size = size
        out = Categorized()
        seen: set[str] = set()
        for rcpt in rcpts:
            self._resolve(rcpt.address, rcpt, out, seen, set(), 0)
        return out

    def _too_big(self, recipient: Recipient, original: EnvelopeRecipient, out: Categorized, seen: set[str]) -> bool:
        """Fail a recipient (a mailbox, contact or whole group) the message is too large for."""
        limit = recipient.max_receive_size
        if self._size is None or limit is None or self._size <= limit:
            return False
        key = recipient.guid or recipient.primary_address.lower()
        if key not in seen:
            seen.add(key)
            out.failed.append(Failed(recipient.primary_address, original, RECIPIENT_SIZE_STATUS, RECIPIENT_SIZE_TEXT, 552))
        return True

    def _resolve(
        self, address: str, original: EnvelopeRecipient, out: Categorized, seen: set[str], groups: set[int], depth: int
    ) -> None:
        recipient = self.directory.recipient(address)
        if recipient is None:
            postmaster = self._postmaster_for(address)
            if postmaster is not None and postmaster.lower() != address.lower() and depth < MAX_EXPANSION_DEPTH:
                self._resolve(postmaster, original, out, seen, groups, depth + 1)
                return
            self._unresolved(address, original, out, seen)
            return
        if self._too_big(recipient, original, out, seen):
            return
        if recipient.kind is RecipientKind.GROUP:
            if recipient.id in groups or depth >= MAX_EXPANSION_DEPTH:
                return  # a loop: the members were or are being expanded already
            members = self.directory.members(recipient.id)
            out.expanded.append((recipient.primary_address, [m.primary_address for m in members]))
            for member in members:
                self._resolve(member.primary_address, original, out, seen, groups | {recipient.id}, depth + 1)
            return
        if recipient.kind is RecipientKind.CONTACT and recipient.external_address:
            self._external(recipient.external_address, original, out, seen)
            return
        key = recipient.guid or recipient.primary_address.lower()
        if key in seen:
            return
        seen.add(key)
        if recipient.database is None:
            out.failed.append(Failed(recipient.primary_address, original, "5.1.1", "Recipient has no mailbox database"))
            return
        out.resolved.append(
            Resolved(
                recipient.primary_address,
                original,
                mailbox_hop(recipient.database, self.topology, self.server),
                recipient.guid,
                recipient,
            )
        )

    def _postmaster_for(self, address: str) -> str | None:
        """postmaster@<accepted domain or our FQDN> with no recipient of its own: the organization's."""
        local, _, domain = address.rpartition("@")
        if local.lower() != "postmaster":
            return None
        if self.directory.accepted_domain(domain) is None and domain.lower() != self.fqdn:
            return None
        return postmaster_address(self.directory)

    def _unresolved(self, address: str, original: EnvelopeRecipient, out: Categorized, seen: set[str]) -> None:
        try:
            domain = parse_address(address).domain
        except AddressError:
            out.failed.append(Failed(address, original, "5.1.3", "Bad recipient address syntax"))
            return
        accepted = self.directory.accepted_domain(domain)
        if accepted is not None and accepted.domain_type is DomainType.AUTHORITATIVE:
            out.failed.append(Failed(address, original, "5.1.10", "Recipient not found"))
            return
        self._external(address, original, out, seen)

    def _external(self, address: str, original: EnvelopeRecipient, out: Categorized, seen: set[str]) -> None:
        key = address.lower()
        if key in seen:
            return
        seen.add(key)
        domain = address.rsplit("@", 1)[-1].lower()
        hop = external_hop(domain, self.directory.send_connectors(), self.server)
        out.resolved.append(Resolved(address, original, hop))
