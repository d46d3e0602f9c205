"""Accepted domains (New-/Set-/Remove-AcceptedDomain): the domains this organization receives mail for.

Authoritative: every recipient is in the directory and unknown ones are refused at RCPT.
InternalRelay / ExternalRelay: mail for unknown recipients is relayed on. The first domain added
becomes the default (the domain of the organization's own messages, such as NDRs). A domain is
matched exactly; subdomains are only accepted when listed themselves.
"""

from __future__ import annotations

import ipaddress

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from courriel.core.address import AddressError, parse_domain
from courriel.core.errors import Conflict, NotFound, PermanentError
from courriel.org import schema as t
from courriel.org.codec import convert
from courriel.org.model import AcceptedDomain, DomainType
from courriel.org.store import DirectoryStore, count


def normalize_domain(name: str) -> str:
    try:
        domain = parse_domain(name.strip())
    except AddressError as exc:
        raise PermanentError(f"{name!r} is not a domain name: {exc}") from None
    if domain.startswith("["):
        raise PermanentError(f"{name!r}: an address literal cannot be an accepted domain")
    return domain


def normalize_host(text: str) -> str:
    """A host other servers reach: an IP address or a host name (smart hosts, server addresses)."""
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return normalize_domain(text)


def parse_domain_type(value: DomainType | str) -> DomainType:
    result: DomainType = convert(DomainType, value, "accepted domain DomainType")
    return result


async def load_domains(conn: AsyncConnection) -> list[AcceptedDomain]:
    rows = (await conn.execute(select(t.accepted_domains).order_by(t.accepted_domains.c.name))).all()
    return [AcceptedDomain(r.name, DomainType(r.domain_type), r.is_default) for r in rows]


async def _domain_row_id(conn: AsyncConnection, name: str) -> int:
    found = (
        await conn.execute(select(t.accepted_domains.c.id).where(t.accepted_domains.c.name == name))
    ).scalar_one_or_none()
    if found is None:
        raise NotFound(f"{name} is not an accepted domain")
    return int(found)


class DomainOps(DirectoryStore):
    async def add_accepted_domain(
        self, name: str, domain_type: DomainType | str = DomainType.AUTHORITATIVE, *, default: bool = False
    ) -> AcceptedDomain:
        domain = normalize_domain(name)
        kind = parse_domain_type(domain_type)
        async with self._write() as conn:
            if await count(conn, t.accepted_domains, t.accepted_domains.c.name == domain):
                raise Conflict(f"{domain} is already an accepted domain")
            first = await count(conn, t.accepted_domains) == 0
            if default and not first:
                await conn.execute(update(t.accepted_domains).values(is_default=False))
            await conn.execute(
                t.accepted_domains.insert().values(
                    name=domain, domain_type=kind.value, is_default=default or first
                )
            )
        return AcceptedDomain(domain, kind, default or first)

    async def set_accepted_domain(
        self, name: str, *, domain_type: DomainType | str | None = None, default: bool | None = None
    ) -> AcceptedDomain:
        domain = normalize_domain(name)
        if default is False:
            # There is always exactly one default: name the new one instead of clearing this one.
            raise PermanentError("make another domain the default instead of clearing this one")
        async with self._write() as conn:
            row_id = await _domain_row_id(conn, domain)
            if domain_type is not None:
                kind = parse_domain_type(domain_type)
                await conn.execute(
                    update(t.accepted_domains)
                    .where(t.accepted_domains.c.id == row_id)
                    .values(domain_type=kind.value)
                )
            if default:
                await conn.execute(update(t.accepted_domains).values(is_default=False))
                await conn.execute(
                    update(t.accepted_domains)
                    .where(t.accepted_domains.c.id == row_id)
                    .values(is_default=True)
                )
            return next(d for d in await load_domains(conn) if d.name == domain)

    async def remove_accepted_domain(self, name: str) -> None:
        domain = normalize_domain(name)
        async with self._write() as conn:
            row_id = await _domain_row_id(conn, domain)
            users = await count(conn, t.proxy_addresses, t.proxy_addresses.c.domain == domain)
            if users:
                raise Conflict(
                    f"{domain} is still used by {users} recipient address(es); change or remove them first"
                )
            is_default = (
                await conn.execute(
                    select(t.accepted_domains.c.is_default).where(t.accepted_domains.c.id == row_id)
                )
            ).scalar_one()
            if is_default and await count(conn, t.accepted_domains) > 1:
                raise Conflict(
                    f"{domain} is the default accepted domain; make another domain the default first"
                )
            await conn.execute(t.accepted_domains.delete().where(t.accepted_domains.c.id == row_id))

    async def list_accepted_domains(self) -> list[AcceptedDomain]:
        async with self._read() as conn:
            return await load_domains(conn)

    async def get_accepted_domain(self, name: str) -> AcceptedDomain:
        domain = normalize_domain(name)
        for found in await self.list_accepted_domains():
            if found.name == domain:
                return found
        raise NotFound(f"{domain} is not an accepted domain")
