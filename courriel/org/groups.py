"""Distribution groups (New-DistributionGroup, Add-/Remove-DistributionGroupMember).

A group holds mailboxes, contacts and other groups. Nesting may loop through other groups, as
Exchange allows (the categorizer expands each group once); only a group containing itself
directly is refused. Members are kept by id, so renaming an address never breaks a membership,
and removing a recipient removes its memberships (ON DELETE CASCADE).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from courriel.core.errors import Conflict, NotFound, PermanentError
from courriel.org import schema as t
from courriel.org.model import Recipient, RecipientKind
from courriel.org.recipients import (
    check_display_name,
    find_recipient,
    insert_recipient,
    load_recipients,
    parse_recipient_address,
)
from courriel.org.store import DirectoryStore, count


class GroupOps(DirectoryStore):
    async def new_group(self, address: str, name: str, members: Sequence[str] = ()) -> Recipient:
        """New-DistributionGroup with its first members (given by address)."""
        primary = parse_recipient_address(address)
        display = check_display_name(name)
        async with self._write() as conn:
            rid = await insert_recipient(conn, RecipientKind.GROUP, primary, (), display_name=display)
            for member in members:
                await self._add_member(conn, rid, member)
            return (await load_recipients(conn, t.recipients.c.id == rid))[0]

    async def add_member(self, group: str, member: str) -> None:
        async with self._write() as conn:
            found = await find_recipient(conn, group, RecipientKind.GROUP)
            await self._add_member(conn, found.id, member)

    async def _add_member(self, conn: AsyncConnection, group_id: int, member: str) -> None:
        target = await find_recipient(conn, member)
        if target.id == group_id:
            # Deeper loops are allowed, as in Exchange: the categorizer expands each group once.
            raise PermanentError(f"a group cannot be a member of itself ({target.primary_address})")
        gm = t.group_members
        if await count(conn, gm, gm.c.group_id == group_id, gm.c.member_id == target.id):
            raise Conflict(f"{target.primary_address} is already a member")
        await conn.execute(gm.insert().values(group_id=group_id, member_id=target.id))

    async def remove_member(self, group: str, member: str) -> None:
        async with self._write() as conn:
            found = await find_recipient(conn, group, RecipientKind.GROUP)
            target = await find_recipient(conn, member)
            gm = t.group_members
            deleted = await conn.execute(
                gm.delete().where(gm.c.group_id == found.id, gm.c.member_id == target.id)
            )
            if deleted.rowcount == 0:
                raise NotFound(f"{target.primary_address} is not a member of {found.primary_address}")

    async def members(self, group: str) -> list[Recipient]:
        """The group's direct members (nested groups are listed, not expanded)."""
        async with self._read() as conn:
            found = await find_recipient(conn, group, RecipientKind.GROUP)
            ids = select(t.group_members.c.member_id).where(t.group_members.c.group_id == found.id)
            return await load_recipients(conn, t.recipients.c.id.in_(ids))
