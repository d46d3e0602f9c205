"""Errors of the mailbox store, one type per outcome a protocol engine reports differently.

The IMAP engine maps them to RFC 5530 response codes: NoSuchFolder → [NONEXISTENT] or [TRYCREATE],
FolderExists → [ALREADYEXISTS], FolderRefused → [CANNOT], SpecialUseRefused → [USEATTR]
(RFC 6154 §3), OverQuota → [OVERQUOTA] (RFC 9208). The texts are safe to show a client.
"""

from __future__ import annotations

from courriel.core.errors import Conflict, NotFound, PermanentError


class NoSuchMailbox(NotFound):
    """The mailbox GUID has no row in this database (ensure_mailbox was never called)."""


class NoSuchFolder(NotFound):
    """No folder by that name or id, or it is a \\Noselect placeholder that cannot hold messages."""


class FolderExists(Conflict):
    """CREATE or RENAME onto a name that is already a folder."""


class InvalidFolderName(PermanentError):
    """A name that cannot be a folder (empty level, wildcard, control character, too long …)."""


class FolderRefused(PermanentError):
    """The operation is not allowed on this folder (deleting INBOX or a default folder …)."""


class SpecialUseRefused(PermanentError):
    """A special-use attribute we do not support on CREATE (RFC 6154 §3: \\All and \\Flagged are virtual)."""


class OverQuota(PermanentError):
    """The mailbox would exceed its size quota."""
