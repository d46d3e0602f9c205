"""POP3 engine (sans-I/O): RFC 1939 with CAPA and PIPELINING (RFC 2449), STLS (RFC 2595),
SASL PLAIN (RFC 5034, RFC 4616) and extended response codes (RFC 2449 §8, RFC 3206).

The public surface: `Pop3Session` and `Pop3Settings`, the actions it returns, and the
`Maildrop`/`DropEntry` types the store hands over at login.
"""

from courriel.proto.pop3.actions import (
    Action,
    Close,
    DecideCommit,
    DecideLogin,
    DecideRetrieve,
    Decision,
    LoginResult,
    Send,
    StartTLS,
)
from courriel.proto.pop3.maildrop import DropEntry, Maildrop
from courriel.proto.pop3.session import Pop3Session, Pop3State
from courriel.proto.pop3.settings import Pop3Settings

__all__ = [
    "Action",
    "Close",
    "DecideCommit",
    "DecideLogin",
    "DecideRetrieve",
    "Decision",
    "DropEntry",
    "LoginResult",
    "Maildrop",
    "Pop3Session",
    "Pop3Settings",
    "Pop3State",
    "Send",
    "StartTLS",
]
