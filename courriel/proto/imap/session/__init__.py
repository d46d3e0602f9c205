"""The IMAP4rev1/IMAP4rev2 session engine: async, sans-socket, over the backend Protocols.

`state.ImapSession` runs one connection: the I/O layer pushes bytes in and gives it a `Wire`
(context.py) to write to; the session talks to the mailbox only through `backend.Account`.
One module per command family: auth.py (any state, login, ENABLE), listing.py (LIST, LSUB),
mailboxes.py (CREATE … STATUS), select.py (SELECT, EXAMINE, CLOSE, UNSELECT), fetch.py,
search.py, store.py, copymove.py, append.py, expunge.py, idle.py; selected.py holds the view of
the selected folder and updates.py the untagged updates; analysis.py the per-message cache.
"""

from courriel.proto.imap.session.context import SessionConfig, State, Wire
from courriel.proto.imap.session.state import ImapSession

__all__ = ["ImapSession", "SessionConfig", "State", "Wire"]
