"""Mailbox databases: folders, messages, UIDs and MODSEQs, quotas, search, change notifications.

A mailbox database is SQL (a SQLite file or a PostgreSQL database) plus the blob store that
holds message bytes (DESIGN.md §3). The transport delivers into it; the IMAP4 and POP3 engines
read and change it. `MailboxDatabase` (store.py) is the whole public surface; the modules
behind it each hold one concern: schema, database (writer and readers), delivery, analysis (a
new message's IMAP analysis, made as it is stored), folders and tree (the folder list),
messages and expunge (changes), query (reads), snapshots (recent folder snapshots), pop, quota,
notify, criteria (SEARCH pushdown), flags and names.
"""

from courriel.mailbox.analysis import CacheEntry
from courriel.mailbox.model import (
    Changes,
    CopyResult,
    DeliveryRequest,
    DeliveryResult,
    FolderInfo,
    FolderSnapshot,
    MaildropEntry,
    MessageMeta,
    StoreResult,
)
from courriel.mailbox.notify import Change, Subscription
from courriel.mailbox.store import MailboxDatabase

__all__ = [
    "CacheEntry",
    "Change",
    "Changes",
    "CopyResult",
    "DeliveryRequest",
    "DeliveryResult",
    "FolderInfo",
    "FolderSnapshot",
    "MailboxDatabase",
    "MaildropEntry",
    "MessageMeta",
    "StoreResult",
    "Subscription",
]
