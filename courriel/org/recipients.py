"""Recipients: mailboxes, distribution groups (membership in groups.py) and mail contacts, with their addresses.

Every proxy address is unique across the organization, compared case-insensitively as Exchange
resolves recipients (the key is lower(local)@lower(domain)). The addresses of mailboxes and groups
must be in an accepted domain; a mail contact's may be anywhere, since it stands for an outside
mailbox. Passwords are stored as argon2id hashes, computed in a worker thread before the write
transaction starts so that the directory's writers never wait on hashing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from courriel.core.address import Address, AddressError, parse_address
from courriel.core.errors import Conflict, NotFound, PermanentError
from courriel.org import schema as t
from courriel.org.model import MailboxDatabase, Recipient, RecipientKind
from courriel.org.store import DirectoryStore, count, load_databases, name_key
from courriel.security.passwords import ahash_password

# Per-mailbox limits in bytes; None is unlimited, and a limit left out of a call is left as it is.
LIMITS = (
    "issue_warning_quota",
    "prohibit_send_quota",
    "prohibit_send_receive_quota",
    "max_send_size",
    "max_receive_size",
)


def parse_recipient_address(text: str) -> Address:
    try:
        return parse_address(text.strip())
    except AddressError as exc:
        raise PermanentError(f"{text!r} is not a valid address: {exc}") from None


def check_display_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise PermanentError("a display name cannot be empty")
    if len(name) > 256 or any(ord(c) < 32 for c in name):
        raise PermanentError(f"display name {name[:40]!r}… is too long or holds control characters")
    return name


async def load_recipients(conn: AsyncConnection, *where: Any) -> list[Recipient]:
    query = (
        select(t.recipients, t.mailbox_databases.c.name.label("database_name"))
        .outerjoin(t.mailbox_databases, t.recipients.c.database_id == t.mailbox_databases.c.id)
        .where(*where)
    )
    rows = (await conn.execute(query)).all()
    ids = [r.id for r in rows]
    addresses: dict[int, list[Any]] = {i: [] for i in ids}
    if ids:
        proxies = select(t.proxy_addresses).order_by(
            t.proxy_addresses.c.is_primary.desc(), t.proxy_addresses.c.id
        )
        if where:
            proxies = proxies.where(t.proxy_addresses.c.recipient_id.in_(ids))
        for p in (await conn.execute(proxies)).all():
            addresses[p.recipient_id].append(p)
    out = []
    for r in rows:
        proxies_of = addresses[r.id]
        out.append(
            Recipient(
                id=int(r.id),
                kind=RecipientKind(r.kind),
                display_name=r.display_name,
                primary_address=proxies_of[0].address if proxies_of else "",
                addresses=tuple(p.address for p in proxies_of),
                database=r.database_name,
                guid=r.guid,
                password_hash=r.password_hash,
                external_address=r.external_address,
                imap_enabled=r.imap_enabled,
                pop_enabled=r.pop_enabled,
                issue_warning_quota=r.issue_warning_quota,
                prohibit_send_quota=r.prohibit_send_quota,
                prohibit_send_receive_quota=r.prohibit_send_receive_quota,
                max_send_size=r.max_send_size,
                max_receive_size=r.max_receive_size,
                hidden=r.hidden,
            )
        )
    return sorted(out, key=lambda r: r.primary_address.lower())


async def find_recipient(conn: AsyncConnection, key: str, kind: RecipientKind | None = None) -> Recipient:
    """The recipient owning the proxy address `key`; with `kind`, it must be of that kind."""
    address = parse_recipient_address(key)
    rid = (
        await conn.execute(
            select(t.proxy_addresses.c.recipient_id).where(t.proxy_addresses.c.address_key == address.key)
        )
    ).scalar_one_or_none()
    if rid is None:
        raise NotFound(f"no recipient has the address {key.strip()}")
    found = (await load_recipients(conn, t.recipients.c.id == rid))[0]
    if kind is not None and found.kind != kind:
        raise PermanentError(f"{found.primary_address} is a {found.kind.value}, not a {kind.value}")
    return found


async def _add_address(
    conn: AsyncConnection, rid: int, address: Address, *, primary: bool, accepted_only: bool
) -> None:
    if accepted_only:
        known = await count(conn, t.accepted_domains, t.accepted_domains.c.name == address.domain)
        if not known:
            raise PermanentError(f"{address.domain} is not an accepted domain (address {address})")
    owner = (
        await conn.execute(
            select(t.recipients.c.display_name, t.recipients.c.kind)
            .join(t.proxy_addresses, t.proxy_addresses.c.recipient_id == t.recipients.c.id)
            .where(t.proxy_addresses.c.address_key == address.key)
        )
    ).first()
    if owner is not None:
        raise Conflict(f"the address {address} is already used by {owner.display_name} ({owner.kind})")
    await conn.execute(
        t.proxy_addresses.insert().values(
            recipient_id=rid,
            address=str(address),
            domain=address.domain,
            address_key=address.key,
            is_primary=primary,
        )
    )


async def insert_recipient(
    conn: AsyncConnection, kind: RecipientKind, primary: Address, extra: Iterable[Address], **values: Any
) -> int:
    accepted_only = kind != RecipientKind.CONTACT
    insert = t.recipients.insert().values(kind=kind.value, **values).returning(t.recipients.c.id)
    rid = int((await conn.execute(insert)).scalar_one())
    await _add_address(conn, rid, primary, primary=True, accepted_only=accepted_only)
    for address in extra:
        if address.key != primary.key:
            await _add_address(conn, rid, address, primary=False, accepted_only=accepted_only)
    return rid


async def _pick_database(conn: AsyncConnection, name: str | None) -> int:
    """The named database, or the mounted one holding the fewest mailboxes (ties: by name)."""
    db = t.mailbox_databases
    if name is not None:
        row = (
            await conn.execute(select(db.c.id, db.c.mounted).where(db.c.name_key == name_key(name)))
        ).first()
        if row is None:
            raise NotFound(f"no mailbox database named {name!r}")
        if not row.mounted:
            raise PermanentError(f"mailbox database {name} is dismounted; mount it first")
        return int(row.id)
    load = func.count(t.recipients.c.id)
    row = (
        await conn.execute(
            select(db.c.id)
            .outerjoin(t.recipients, t.recipients.c.database_id == db.c.id)
            .where(db.c.mounted.is_(True))
            .group_by(db.c.id, db.c.name_key)
            .order_by(load, db.c.name_key)
            .limit(1)
        )
    ).first()
    if row is None:
        raise PermanentError("no mounted mailbox database: create one with `courriel database new`")
    return int(row.id)


def _check_limits(limits: dict[str, int | None]) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for key, value in limits.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise PermanentError(
                f"{key.replace('_', ' ')} must be a size in bytes or unlimited, not {value!r}"
            )
        out[key] = value
    return out


class RecipientOps(DirectoryStore):
    async def new_mailbox(
        self,
        address: str,
        display_name: str,
        password: str | None,
        database: str | None = None,
        *,
        addresses: Sequence[str] = (),
        imap_enabled: bool = True,
        pop_enabled: bool = True,
        hidden: bool = False,
        **limits: int | None,
    ) -> Recipient:
        """New-Mailbox; without `database`, the least-loaded mounted database takes it."""
        primary = parse_recipient_address(address)
        extra = [parse_recipient_address(a) for a in addresses]
        name = check_display_name(display_name)
        if set(limits) - set(LIMITS):
            raise PermanentError(
                f"unknown mailbox setting(s): {', '.join(sorted(set(limits) - set(LIMITS)))}"
            )
        clean_limits = _check_limits(dict(limits))
        password_hash = await _hash(password)
        async with self._write() as conn:
            database_id = await _pick_database(conn, database)
            rid = await insert_recipient(
                conn,
                RecipientKind.MAILBOX,
                primary,
                extra,
                display_name=name,
                guid=uuid.uuid4().hex,
                database_id=database_id,
                password_hash=password_hash,
                imap_enabled=imap_enabled,
                pop_enabled=pop_enabled,
                hidden=hidden,
                **clean_limits,
            )
            return (await load_recipients(conn, t.recipients.c.id == rid))[0]

    async def new_contact(self, address: str, external_address: str, name: str) -> Recipient:
        """New-MailContact: `address` resolves in the directory, mail goes to `external_address`."""
        primary = parse_recipient_address(address)
        external = parse_recipient_address(external_address)
        display = check_display_name(name)
        async with self._write() as conn:
            rid = await insert_recipient(
                conn, RecipientKind.CONTACT, primary, (), display_name=display, external_address=str(external)
            )
            return (await load_recipients(conn, t.recipients.c.id == rid))[0]

    async def set_recipient(
        self,
        key: str,
        *,
        display_name: str | None = None,
        primary_address: str | None = None,
        add_addresses: Sequence[str] = (),
        remove_addresses: Sequence[str] = (),
        hidden: bool | None = None,
        external_address: str | None = None,
    ) -> Recipient:
        """What every kind of recipient has: name, addresses, visibility (and a contact's target)."""
        values: dict[str, Any] = {}
        if external_address is not None:
            values["external_address"] = str(parse_recipient_address(external_address))
        return await self._update(
            key, None, values, display_name, hidden, primary_address, add_addresses, remove_addresses
        )

    async def set_mailbox(
        self,
        key: str,
        *,
        password: str | None = None,
        display_name: str | None = None,
        primary_address: str | None = None,
        add_addresses: Sequence[str] = (),
        remove_addresses: Sequence[str] = (),
        imap_enabled: bool | None = None,
        pop_enabled: bool | None = None,
        hidden: bool | None = None,
        **limits: int | None,
    ) -> Recipient:
        """Set-Mailbox (and Set-CASMailbox's ImapEnabled/PopEnabled); limits take None for unlimited."""
        if set(limits) - set(LIMITS):
            raise PermanentError(
                f"unknown mailbox setting(s): {', '.join(sorted(set(limits) - set(LIMITS)))}"
            )
        values: dict[str, Any] = dict(_check_limits(dict(limits)))
        if password is not None:
            values["password_hash"] = await _hash(password)
        for field, flag in (("imap_enabled", imap_enabled), ("pop_enabled", pop_enabled)):
            if flag is not None:
                values[field] = flag
        return await self._update(
            key,
            RecipientKind.MAILBOX,
            values,
            display_name,
            hidden,
            primary_address,
            add_addresses,
            remove_addresses,
        )

    async def _update(
        self,
        key: str,
        kind: RecipientKind | None,
        values: dict[str, Any],
        display_name: str | None,
        hidden: bool | None,
        primary_address: str | None,
        add_addresses: Sequence[str],
        remove_addresses: Sequence[str],
    ) -> Recipient:
        """One transaction for a Set-* call, so that a refused address leaves nothing half-changed."""
        if display_name is not None:
            values["display_name"] = check_display_name(display_name)
        if hidden is not None:
            values["hidden"] = hidden
        async with self._write() as conn:
            found = await find_recipient(conn, key, kind)
            if "external_address" in values and found.kind != RecipientKind.CONTACT:
                raise PermanentError(
                    f"{found.primary_address} is a {found.kind.value}; only contacts have an external address"
                )
            if values:
                await conn.execute(update(t.recipients).where(t.recipients.c.id == found.id).values(**values))
            await _change_addresses(conn, found, primary_address, add_addresses, remove_addresses)
            return (await load_recipients(conn, t.recipients.c.id == found.id))[0]

    async def remove_recipient(self, key: str, kind: RecipientKind | None = None) -> Recipient:
        """Remove a recipient, its addresses and its group memberships; returns what was removed."""
        async with self._write() as conn:
            found = await find_recipient(conn, key, kind)
            await conn.execute(t.recipients.delete().where(t.recipients.c.id == found.id))
            return found

    async def get_recipient(self, address: str, kind: RecipientKind | None = None) -> Recipient:
        """By any proxy address, case-insensitively; with `kind`, it must be of that kind."""
        async with self._read() as conn:
            return await find_recipient(conn, address, kind)

    async def list_recipients(self, kind: RecipientKind | str | None = None) -> list[Recipient]:
        async with self._read() as conn:
            if kind is None:
                return await load_recipients(conn)
            return await load_recipients(conn, t.recipients.c.kind == RecipientKind(kind).value)

    async def switch_mailbox_database(self, key: str, database: str, *, expected: str) -> Recipient:
        """The last step of a mailbox move: the mailbox now lives in `database`.

        Compare-and-set: refused unless the mailbox is still in `expected` (another move or an
        admin got there first), so two moves of one mailbox cannot both switch it.
        """
        async with self._write() as conn:
            found = await find_recipient(conn, key, RecipientKind.MAILBOX)
            if (found.database or "").casefold() != expected.casefold():
                raise Conflict(
                    f"{found.primary_address} is in database {found.database}, not {expected}: "
                    "it was moved meanwhile"
                )
            target = await _pick_database(conn, database)
            await conn.execute(update(t.recipients).where(t.recipients.c.id == found.id).values(database_id=target))
            return (await load_recipients(conn, t.recipients.c.id == found.id))[0]

    async def database_for(self, recipient: Recipient | str) -> MailboxDatabase:
        """The mailbox database holding a mailbox (the locator's question)."""
        found = recipient if isinstance(recipient, Recipient) else await self.get_recipient(recipient)
        if found.kind != RecipientKind.MAILBOX or found.database is None:
            raise PermanentError(f"{found.primary_address} is a {found.kind.value}, not a mailbox")
        async with self._read() as conn:
            return (await load_databases(conn, found.database))[0]


async def _hash(password: str | None) -> str | None:
    if password is None:
        return None
    if not password or any(c in password for c in "\r\n\x00"):
        raise PermanentError("a password cannot be empty or hold NUL or line breaks")
    return await ahash_password(password)


async def _change_addresses(
    conn: AsyncConnection,
    found: Recipient,
    primary_address: str | None,
    add: Sequence[str],
    remove: Sequence[str],
) -> None:
    """Add, then choose the primary (the old one stays as a secondary), then remove."""
    accepted_only = found.kind != RecipientKind.CONTACT
    current = {parse_recipient_address(a).key for a in found.addresses}
    to_add = [parse_recipient_address(a) for a in add]
    new_primary = parse_recipient_address(primary_address) if primary_address else None
    if (
        new_primary is not None
        and new_primary.key not in current
        and all(a.key != new_primary.key for a in to_add)
    ):
        to_add.append(new_primary)
    for address in to_add:
        if address.key not in current:
            await _add_address(conn, found.id, address, primary=False, accepted_only=accepted_only)
            current.add(address.key)
    pa = t.proxy_addresses
    if new_primary is not None:
        await conn.execute(update(pa).where(pa.c.recipient_id == found.id).values(is_primary=False))
        await conn.execute(
            update(pa)
            .where(pa.c.recipient_id == found.id, pa.c.address_key == new_primary.key)
            .values(is_primary=True)
        )
    primary_key = (
        new_primary.key if new_primary is not None else parse_recipient_address(found.primary_address).key
    )
    for text in remove:
        address = parse_recipient_address(text)
        if address.key == primary_key:
            raise PermanentError(f"{address} is the primary address; choose another primary address first")
        deleted = await conn.execute(
            pa.delete().where(pa.c.recipient_id == found.id, pa.c.address_key == address.key)
        )
        if deleted.rowcount == 0:
            raise NotFound(f"{found.primary_address} has no address {address}")
