"""The error tree: every failure is transient (4xx: try again) or permanent (5xx: give up, bounce).

An error carries two texts (as mox keeps `errmsg` beside `err`): `public`, safe to send to a peer,
never naming configuration or internals; and `detail`, for the log and the tracking log.
"""

from __future__ import annotations

from courriel.core.replies import Reply


class CourrielError(Exception):
    """Base of every error Courriel raises on purpose. `reply`, when set, is the exact SMTP
    answer for the client (a front end passing on its back end's)."""

    def __init__(self, public: str, detail: str | None = None, *, reply: Reply | None = None) -> None:
        super().__init__(detail or public)
        self.public = public
        self.detail = detail or public
        self.reply = reply


class TransientError(CourrielError):
    """Try again later: the condition may clear (4xx in SMTP, a deferral in the queue)."""


class PermanentError(CourrielError):
    """Will not succeed as is: refuse (5xx in SMTP), fail the recipient, send a DSN."""


class ConfigError(CourrielError):
    """A configuration file or setting is invalid; the message names the key."""


class NotFound(CourrielError):
    """A named object (mailbox, domain, connector …) does not exist."""


class Conflict(CourrielError):
    """The object exists already, or the change contradicts another object."""
