"""The receive policy's answers: what a receive connector says when it refuses or accepts.

The engine's own replies (syntax, sequence, limits) are in `courriel.core.replies`; these are the
decisions of policy, worded as Exchange words them where clients and admins know the codes.
"""

from __future__ import annotations

from courriel.core.replies import Reply
from courriel.transport.categorize.resolver import RECIPIENT_SIZE_STATUS, RECIPIENT_SIZE_TEXT

SENDER_OK = Reply(250, "2.1.0", "Sender OK")
RECIPIENT_OK = Reply(250, "2.1.5", "Recipient OK")
NOT_AUTHENTICATED = Reply(530, "5.7.1", "Client was not authenticated")
RELAY_DENIED = Reply(550, "5.7.54", "SMTP; Unable to relay recipient in non-accepted domain")
ROUTING_DENIED = Reply(550, "5.7.54", "SMTP; Unable to relay: source routes and routing characters are not accepted")
UNKNOWN_RECIPIENT = Reply(550, "5.1.10", "RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup")
SEND_AS_DENIED = Reply(550, "5.7.60", "SMTP; Client does not have permissions to send as this sender")
SENDER_DENIED = Reply(550, "5.7.1", "Client does not have permissions to send as this sender")
MAILBOX_FULL = Reply(552, "5.2.2", "Mailbox full: the recipient's mailbox is over its quota")
SEND_QUOTA_EXCEEDED = Reply(554, "5.2.2", "Your mailbox is over its send quota (ProhibitSendQuota); delete some items and try again")
ORG_SIZE_EXCEEDED = Reply(552, "5.3.4", "Message size exceeds the organization's maximum message size")
# RFC 3463 X.2.3, as Exchange's RESOLVER.RST.RecipSizeLimit: at RCPT for a declared SIZE, after
# DATA only when the message is too large for every recipient (else those alone get an NDR).
RECIPIENT_SIZE_EXCEEDED = Reply(552, RECIPIENT_SIZE_STATUS, RECIPIENT_SIZE_TEXT)
# RFC 3463 X.2.3 (administrative length limit), as Exchange's RESOLVER.RST.SendSizeLimit.Sender.
SENDER_SIZE_EXCEEDED = Reply(552, "5.2.3", "RESOLVER.RST.SendSizeLimit.Sender; Message too large for this sender")
HEADER_TOO_BIG = Reply(552, "5.3.4", "Header size exceeds fixed maximum size")
HOP_COUNT_EXCEEDED = Reply(554, "5.4.6", "Hop count exceeded - possible mail loop")
TOO_MANY_CONNECTIONS = Reply(421, "4.3.2", "The maximum number of concurrent connections has been exceeded")
TOO_MANY_FROM_SOURCE = Reply(421, "4.3.2", "The maximum number of concurrent connections from your address has been exceeded")
AUTH_BLOCKED = Reply(454, "4.7.0", "Too many failed authentication attempts; try again later")
AUTH_UNSUCCESSFUL = Reply(535, "5.7.8", "Authentication unsuccessful")
AUTH_OK = Reply(235, "2.7.0", "Authentication successful")
STORE_FAILED = Reply(451, "4.3.0", "Temporary failure storing the message; try again later")


def queued(message_id: str | None, queue_id: str) -> Reply:
    """250 after commit, naming both ids so the sender's log can be matched with our tracking log."""
    return Reply(250, "2.6.0", f"{message_id or '<>'} [InternalId={queue_id}] Queued mail for delivery")
