"""IMAP logins against the directory: the backend `Authenticator` of the IMAP service.

The checks are those every protocol login shares (`DirectoryLogin`: throttle, argon2id password,
a mailbox with ImapEnabled, Set-ImapSettings -Enabled; research/exchange2013-facts.md §3); then
the mailbox's database must be mounted on this server, the user below MaxConnectionsPerUser
(`SessionCounter`), and the mailbox created in the store if no mail has reached it yet. Every
refusal for credentials reads AUTHENTICATIONFAILED whatever the reason (RFC 9051 §11.3: do not
tell which names exist); the others say what the user can do about it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from courriel.mailbox.errors import NoSuchMailbox
from courriel.mailbox.store import MailboxDatabase
from courriel.org.model import ProtocolSettings
from courriel.proto.imap import respcodes as rc
from courriel.proto.imap.backend import LoginRefused
from courriel.services.imap.account import RecentRegistry, StoreAccount
from courriel.services.imap.feed import FeedAccount, ProcessFeeds
from courriel.services.logins import DirectoryLogin, SessionCounter
from courriel.services.placement import Placement

log = logging.getLogger(__name__)

FAILED = LoginRefused(rc.AUTHENTICATIONFAILED, "Authentication failed")
UNAVAILABLE = LoginRefused(rc.UNAVAILABLE, "Mailbox is not available right now, try again later")
TOO_MANY = LoginRefused(rc.LIMIT, "Too many connections for this user")


class DirectoryAuthenticator:
    def __init__(
        self,
        login: DirectoryLogin,
        databases: Callable[[str], MailboxDatabase | None],
        settings: Callable[[], ProtocolSettings],
        counter: SessionCounter,
        recent: RecentRegistry,
        feeds: ProcessFeeds,
    ) -> None:
        self._login = login
        self._databases = databases
        self._settings = settings
        self.counter = counter
        self._recent = recent
        self._feeds = feeds

    async def login(self, username: str, password: str, peer: str) -> StoreAccount | LoginRefused:
        recipient = await self._login.verify(peer, username, password)
        if recipient is None:
            return FAILED
        guid, database = recipient.guid, recipient.database
        assert guid is not None and database is not None  # DirectoryLogin checked both
        db = self._databases(database)
        if db is None:
            log.warning(
                "IMAP login for %s: database %s is not mounted here", recipient.primary_address, database
            )
            return UNAVAILABLE
        if not self.counter.enter_user(guid, self._settings()):
            log.info("IMAP login for %s refused: MaxConnectionsPerUser", recipient.primary_address)
            return TOO_MANY
        try:
            try:
                await db.mailbox_usage(guid)
            except NoSuchMailbox:
                await db.ensure_mailbox(guid, recipient.primary_address)
        except Exception:
            log.exception("IMAP login for %s: cannot open the mailbox", recipient.primary_address)
            self.counter.leave_user(guid)
            return UNAVAILABLE
        log.info("IMAP login %s from %s", recipient.primary_address, peer)
        return FeedAccount(
            db,
            guid,
            recipient.primary_address,
            self._recent,
            lambda: self.counter.leave_user(guid),
            self._feeds.of(db),
            placement=Placement(recipient.id, guid, database, db),
        )
