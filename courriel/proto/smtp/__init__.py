"""The SMTP server protocol engine, sans I/O (RFC 5321 and its extensions).

`SmtpSession` takes bytes and decisions and returns actions; `courriel.services.smtp_server`
runs it on sockets. Modules: `settings` (what a connector offers), `events` (actions, decisions,
session info, envelope), `policy` (the decision seam), `commands` and `params` (parsing),
`hello`, `auth` and `transaction` (the command families over the shared `state`), `data`
(the message body reader) and `session` (input framing and dispatch).
"""

from .events import (
    Action,
    Close,
    DecideAuth,
    DecideConnect,
    DecideData,
    DecideHelo,
    DecideMail,
    DecideRcpt,
    Decision,
    Envelope,
    Send,
    SessionInfo,
    StartTLS,
    Trace,
)
from .params import MailParams, RcptParams, decode_xtext, encode_xtext
from .policy import SmtpPolicy
from .session import SmtpSession
from .settings import SessionSettings

__all__ = [
    "Action",
    "Close",
    "DecideAuth",
    "DecideConnect",
    "DecideData",
    "DecideHelo",
    "DecideMail",
    "DecideRcpt",
    "Decision",
    "Envelope",
    "MailParams",
    "RcptParams",
    "Send",
    "SessionInfo",
    "SessionSettings",
    "SmtpPolicy",
    "SmtpSession",
    "StartTLS",
    "Trace",
    "decode_xtext",
    "encode_xtext",
]
