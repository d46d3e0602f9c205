"""APPEND (RFC 9051 §6.3.12) with APPENDUID (RFC 4315 §3) and APPENDLIMIT (RFC 7889).

The reader already refused a literal above APPENDLIMIT with NO [TOOBIG] before it arrived
(RFC 7889 §4). A missing mailbox gets NO [TRYCREATE]; UTF8 (literal) needs UTF8=ACCEPT
(RFC 6855 §4). The new message reaches a session that has the mailbox selected through the
store's change notification (EXISTS at the end of its next command, or at once in IDLE).
"""

from __future__ import annotations

from courriel.proto.imap import commands as c
from courriel.proto.imap import respcodes as rc
from courriel.proto.imap.session.context import Done, Session, bad, no
from courriel.proto.imap.session.names import from_wire
from courriel.proto.imap.session.store import flag_bits


async def append(s: Session, cmd: c.Append) -> Done:
    account = s.require_account()
    if cmd.utf8 and "UTF8=ACCEPT" not in s.enabled:
        raise bad("UTF8 APPEND needs ENABLE UTF8=ACCEPT")
    if not cmd.message:
        raise no("Cannot store an empty message")
    bits, keywords = flag_bits(cmd.flags)
    uidvalidity, uid = await account.append(
        from_wire(s, cmd.mailbox), cmd.message, bits, keywords, cmd.internal_date
    )
    return Done("APPEND completed", rc.appenduid(uidvalidity, [uid]))
