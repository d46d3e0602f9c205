"""Changing messages: STORE (with CONDSTORE), COPY and MOVE, cached analysis, delivery-key expiry.

STORE gives each message whose flags actually change its own new MODSEQ; a message whose flags
would not change keeps its MODSEQ (RFC 7162 §3.1.3), and with UNCHANGEDSINCE a message modified
after that MODSEQ is left alone and reported for the [MODIFIED] response code. COPY shares the
blob (content-addressed: nothing is copied but the row) and returns the COPYUID mapping (RFC 4315
§3); MOVE is COPY plus the expunge of the sources in the same transaction (RFC 6851 §3.3).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from courriel.mailbox import quota
from courriel.mailbox.allocate import Delta, allocate, by_id
from courriel.mailbox.errors import NoSuchFolder, OverQuota
from courriel.mailbox.expunge import Removal, lock_mailbox_of, remove_rows, select_rows
from courriel.mailbox.flags import Keywords, StoreMode, apply_store, join_keywords, split_keywords
from courriel.mailbox.model import CopyResult, FlagUpdate, StoreResult
from courriel.mailbox.schema import analysis, deliveries, dialect_insert, folders, messages
from courriel.mailbox.uidset import uid_filter

_SET_FLAGS = (
    update(messages)
    .where(messages.c.folder_id == bindparam("b_folder"), messages.c.uid == bindparam("b_uid"))
    .values(flags=bindparam("b_flags"), keywords=bindparam("b_keywords"), modseq=bindparam("b_modseq"))
)


async def store_flags(
    conn: AsyncConnection,
    folder_id: int,
    uids: Sequence[int],
    mode: StoreMode,
    flags: int,
    keywords: Keywords,
    unchanged_since: int | None,
) -> tuple[str, StoreResult]:
    """STORE / UID STORE (RFC 9051 §6.4.6) with UNCHANGEDSINCE (RFC 7162 §3.1.3); also returns the mailbox GUID."""
    guid = await lock_mailbox_of(conn, folder_id)
    condition, exact = uid_filter(messages.c.uid, uids)
    stmt = (
        select(messages.c.uid, messages.c.flags, messages.c.keywords, messages.c.modseq)
        .where(messages.c.folder_id == folder_id, condition)
        .order_by(messages.c.uid)
        .with_for_update()
    )
    failed: list[int] = []
    changes: list[tuple[int, int, Keywords]] = []
    delta = Delta()
    for row in (await conn.execute(stmt)).all():
        if exact is not None and row.uid not in exact:
            continue
        if unchanged_since is not None and row.modseq > unchanged_since:
            failed.append(row.uid)
            continue
        old_keywords = split_keywords(row.keywords)
        new_flags, new_keywords = apply_store(mode, row.flags, old_keywords, flags, keywords)
        if new_flags == row.flags and new_keywords == old_keywords:
            continue  # RFC 7162 §3.1.3: no change, no new MODSEQ
        delta.reflag(row.flags, new_flags)
        changes.append((row.uid, new_flags, new_keywords))
    if not changes:
        return guid, StoreResult([], failed)
    got = await allocate(conn, by_id(folder_id), modseqs=len(changes), delta=delta)
    if got is None:
        raise NoSuchFolder("mailbox does not exist", f"folder id {folder_id} is gone or \\Noselect")
    updated: list[FlagUpdate] = [
        (uid, new_flags, new_keywords, got.first_modseq + offset)
        for offset, (uid, new_flags, new_keywords) in enumerate(changes)
    ]
    await conn.execute(
        _SET_FLAGS,
        [
            {"b_folder": folder_id, "b_uid": uid, "b_flags": f, "b_keywords": join_keywords(k), "b_modseq": m}
            for uid, f, k, m in updated
        ],
    )
    return guid, StoreResult(updated, failed)


async def copy(
    conn: AsyncConnection, source: int, uids: Sequence[int], target: int, now: int, *, move: bool = False
) -> tuple[str, CopyResult, Removal | None]:
    """COPY / MOVE: new UIDs in the target, in source UID order; the blobs are shared.

    Returns the target's mailbox GUID, the COPYUID data and, for MOVE, the removal from the source.
    """
    rows = (
        await conn.execute(
            select(folders.c.id, folders.c.mailbox, folders.c.noselect).where(
                folders.c.id.in_([source, target])
            )
        )
    ).all()
    found = {row.id: row for row in rows}
    if source not in found:
        raise NoSuchFolder("mailbox does not exist", f"source folder id {source} is gone")
    if target not in found or found[target].noselect:
        raise NoSuchFolder(
            "target mailbox does not exist", f"target folder id {target} is gone or \\Noselect"
        )
    source_guid, target_guid = str(found[source].mailbox), str(found[target].mailbox)
    if move:
        for guid in sorted({source_guid, target_guid}):  # lock order: mailboxes first
            await quota.account(conn, guid)
    picked = await select_rows(conn, source, uids, only_deleted=False, for_update=move)
    if not picked:
        info = (await conn.execute(select(folders.c.uidvalidity).where(folders.c.id == target))).scalar_one()
        return target_guid, CopyResult(int(info), []), None
    size = sum(row.size for row in picked)
    if not (move and source_guid == target_guid) and not await quota.account(
        conn, target_guid, size=size, messages=len(picked), limit="stored"
    ):
        raise OverQuota("quota exceeded")  # RFC 9208: COPY over quota fails with [OVERQUOTA] (RFC 5530 §3)
    delta = Delta()
    for row in picked:
        delta.count(row.flags, row.size)
    got = await allocate(conn, by_id(target), uids=len(picked), modseqs=len(picked), delta=delta)
    if got is None:
        raise NoSuchFolder("target mailbox does not exist", f"target folder id {target} vanished")
    await conn.execute(
        insert(messages),
        [_copied(row, target, got.first_uid + i, got.first_modseq + i, now) for i, row in enumerate(picked)],
    )
    mapping = [(row.uid, got.first_uid + i) for i, row in enumerate(picked)]
    removal = None
    if move:
        removal = await remove_rows(conn, source_guid, source, picked, refund=source_guid != target_guid)
    return target_guid, CopyResult(got.uidvalidity, mapping), removal


def _copied(row: Any, folder_id: int, uid: int, modseq: int, now: int) -> dict[str, Any]:
    # RFC 9051 §6.4.7: flags and internal date are kept; the save date is now (RFC 8514 §2).
    return {
        "folder_id": folder_id,
        "uid": uid,
        "modseq": modseq,
        "flags": row.flags,
        "keywords": row.keywords,
        "internaldate": row.internaldate,
        "saved": now,
        "size": row.size,
        "digest": row.digest,
    }


async def set_cache(conn: AsyncConnection, entries: Sequence[dict[str, Any]], now: int) -> None:
    """Upsert analysis results by digest; a None field keeps what is stored."""
    stmt = dialect_insert(conn, analysis)
    keep: dict[str, Any] = {
        name: func.coalesce(getattr(stmt.excluded, name), analysis.c[name])
        for name in ("envelope", "bodystructure", "headers", "text", "header")
    }
    keep["updated"] = stmt.excluded.updated
    await conn.execute(
        stmt.on_conflict_do_update(index_elements=["digest"], set_=keep),
        [{**entry, "updated": now} for entry in entries],
    )


async def prune_delivery_keys(conn: AsyncConnection, before: int) -> int:
    """Forget delivery keys older than `before`: no redelivery can come that late."""
    result = await conn.execute(delete(deliveries).where(deliveries.c.delivered < before))
    return int(result.rowcount)
