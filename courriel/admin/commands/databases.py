"""Mailbox databases as admin operations: a switchover to another Mailbox server (Move-ActiveMailboxDatabase)
and moving a mailbox to another database (New-MoveRequest).

Both work from the machine the command runs on, with this server's config: a SQLite database is a
file under some server's data directory, so it can be opened here only if it is this server's,
and it can only be mounted by a server on the same machine. PostgreSQL databases can be mounted
by any server that reaches them. A database's bodies travel with it (storage/blobs.py); bodies
an older Courriel left in the server's shared blob store are copied into the database's own
store while it is dismounted, before another server mounts it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from courriel.admin.commands.context import Admin
from courriel.config import ServerConfig
from courriel.core.errors import PermanentError
from courriel.mailbox.fence import MoveFence
from courriel.mailbox.move import Side, move_mailbox
from courriel.mailbox.store import MailboxDatabase
from courriel.org.model import MailboxDatabase as DatabaseInfo
from courriel.org.model import Recipient, RecipientKind, Server, quota_in_force
from courriel.storage.blobs import BlobRef, BlobStore, open_database_blobs
from courriel.storage.engine import open_engine, sqlite_path, sqlite_url
from courriel.transport.deliver.local import delivery_key_window

Progress = Callable[[str], None]
CONNECT_TIMEOUT = 10.0


@asynccontextmanager
async def shared_blobs(config: ServerConfig) -> AsyncIterator[BlobStore]:
    """This server's shared blob store (older bodies, the queue's), closed after use."""
    store = BlobStore(config.data_dir / "blobs")
    try:
        yield store
    finally:
        await store.close()


def _check_here(info: DatabaseInfo, config: ServerConfig) -> None:
    """Refuse a SQLite database that is another server's file: it cannot be opened from here."""
    path = sqlite_path(info.url)
    if path is None:
        return
    if not path.is_absolute() and (info.server or "").casefold() != config.name.casefold():
        raise PermanentError(
            f"mailbox database {info.name} is a SQLite file in the data directory of server "
            f"{info.server or '(dismounted)'}: run this command there"
        )
    if path.is_absolute() and not (path.exists() or path.parent.is_dir()):
        raise PermanentError(f"mailbox database {info.name}: no file {path} on this machine")


def default_database_url(name: str) -> str:
    """Where a new mailbox database goes when no URL is given: a SQLite file in the data dir."""
    return sqlite_url(Path("databases") / f"{name}.db")


@asynccontextmanager
async def open_side(info: DatabaseInfo, config: ServerConfig, shared: BlobStore) -> AsyncIterator[Side]:
    """A database opened from this command, with its own blob store and its move fence."""
    _check_here(info, config)
    async with contextlib.AsyncExitStack() as stack:
        blobs = await open_database_blobs(info.url, config.data_dir, shared)
        if blobs is not shared:
            stack.push_async_callback(blobs.close)
        db = await MailboxDatabase.open(info.name, info.url, config.data_dir, blobs)
        stack.push_async_callback(db.close)
        fence = await MoveFence.open(info.url, config.data_dir)
        stack.push_async_callback(fence.close)
        yield Side(db, fence)


async def move_mailbox_to(admin: Admin, address: str, database: str, progress: Progress) -> Recipient:
    """`courriel mailbox move ADDRESS --database DB`: the mailbox stays usable until the short final step."""
    directory = admin.directory
    recipient = await directory.get_recipient(address, RecipientKind.MAILBOX)
    if recipient.guid is None or recipient.database is None:
        raise PermanentError(f"{recipient.primary_address} has no mailbox database")
    source = await directory.get_database(recipient.database)
    target = await directory.get_database(database)
    if source.name.casefold() == target.name.casefold():
        raise PermanentError(f"{recipient.primary_address} is in database {target.name} already")
    if not target.mounted:
        raise PermanentError(f"mailbox database {target.name} is dismounted; mount it first")
    quota = quota_in_force(recipient, target, "prohibit_send_receive_quota")
    progress(f"moving {recipient.primary_address} from {source.name} to {target.name}")
    # Delivery keys the source's Mailbox role would prune by now stay behind.
    window = delivery_key_window(await directory.get_transport_config())
    keys_since = datetime.fromtimestamp(time.time() - window, UTC)

    async def switch() -> None:
        await directory.switch_mailbox_database(recipient.primary_address, target.name, expected=source.name)

    async with (
        shared_blobs(admin.config) as shared,
        open_side(source, admin.config, shared) as src,
        open_side(target, admin.config, shared) as dst,
    ):
        copied = await move_mailbox(
            src,
            dst,
            recipient.guid,
            recipient.primary_address,
            switch=switch,
            quota=quota,
            progress=progress,
            keys_since=keys_since,
        )
    moved = await directory.get_recipient(recipient.primary_address)
    progress(f"moved {moved.primary_address} to {moved.database} ({copied} message(s) copied)")
    return moved


# switchover


def _local_address(host: str) -> bool:
    """True if `host` (a name or an address) is an address of this machine."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    except OSError:
        return False
    for family, _, _, _, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0])
        if address.is_loopback:
            return True
        with socket.socket(family, socket.SOCK_DGRAM) as s, contextlib.suppress(OSError):
            s.bind((sockaddr[0], 0))  # only an address of this machine can be bound
            return True
    return False


def on_this_machine(server: Server, config: ServerConfig) -> bool:
    if server.name.casefold() == config.name.casefold():
        return True
    return any(_local_address(a) for a in (server.addresses or (server.fqdn,)))


async def _reachable_url(info: DatabaseInfo, target: Server, config: ServerConfig) -> str:
    """The URL `target` will open the database by; refuses when `target` cannot reach it."""
    path = sqlite_path(info.url)
    if path is not None:
        _check_here(info, config)
        if not on_this_machine(target, config):
            raise PermanentError(
                f"mailbox database {info.name} is a SQLite file on this machine and server "
                f"{target.name} runs on another one: it cannot reach it. Move its mailboxes to a "
                "PostgreSQL database (courriel mailbox move) instead"
            )
        return info.url if path.is_absolute() else sqlite_url((config.data_dir / path).resolve())
    host = make_url(info.url).host or "localhost"
    if _is_loopback(host) and not on_this_machine(target, config):
        raise PermanentError(
            f"mailbox database {info.name} is reached at {host}, this machine's loopback: server "
            f"{target.name} runs on another machine and cannot reach it there; give the database a "
            "URL with an address every Mailbox server reaches"
        )
    engine = open_engine(info.url, pool_size=1)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        raise PermanentError(f"mailbox database {info.name} cannot be reached: {exc}") from None
    finally:
        await engine.dispose()
    return info.url


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.startswith("/"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _own_bodies(info: DatabaseInfo, config: ServerConfig, progress: Progress) -> None:
    """Copy the bodies the database still reads from this server's shared store into its own."""
    async with shared_blobs(config) as shared, open_side(info, config, shared) as side:
        store = side.db.blobs
        if store is shared:
            return
        missing = [d for d in sorted(await side.db.digests_in_use()) if not await store.has(d)]
        if not missing:
            return
        progress(f"copying {len(missing)} message bod(ies) from this server's blob store into {info.name}")
        lost = [d for d in missing if not shared.owns(d)]
        if lost:
            raise PermanentError(
                f"{len(lost)} message bod(ies) of {info.name} are not in this server's blob store: "
                f"run this command on the server that last had it mounted"
            )
        for number, digest in enumerate(missing, 1):
            await store.copy_from(shared, BlobRef(digest, 0))
            if number % 500 == 0:
                progress(f"  {number}/{len(missing)}")


async def move_database_to(admin: Admin, name: str, server: str, progress: Progress) -> DatabaseInfo:
    """`courriel database move NAME --server MBX2`: dismount, make it self-contained, mount there."""
    directory = admin.directory
    info = await directory.get_database(name)
    target = await directory.get_server(server)
    if info.mounted and (info.server or "").casefold() == target.name.casefold():
        raise PermanentError(f"mailbox database {info.name} is mounted on {target.name} already")
    url = await _reachable_url(info, target, admin.config)
    source = info.server
    if info.mounted:
        progress(f"dismounting {info.name} from {source}")
        await directory.dismount_database(info.name)
    try:
        await _own_bodies(info, admin.config, progress)
        progress(f"mounting {info.name} on {target.name}")
        moved = await directory.mount_database(info.name, target.name, url=url if url != info.url else None)
    except BaseException:
        if source is not None:
            await directory.mount_database(info.name, source)
        raise
    progress(f"{moved.name} is active on {moved.server}; its mailboxes follow at the servers' next directory poll")
    return moved
