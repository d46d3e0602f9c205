"""SMTP replies as values: the code, the enhanced status code and the text, shared by code and tests.

The SMTP engine (`courriel.proto.smtp`) answers with these constants, policies return them, and
tests assert against them, so a reply is spelt in exactly one place. Wire form follows RFC 5321
§4.2 (multi-line replies use `250-` on every line but the last, §4.2.1); enhanced status codes
follow RFC 3463 and the IANA registry of RFC 5248 and preface every line of a 2xx/4xx/5xx reply
(RFC 2034 §4). Greeting-style replies (the 220 banner, the EHLO/HELO answer) and intermediate 3xx
replies carry none.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Reply:
    """One SMTP reply. `text` may hold several lines separated by "\\n" (a multi-line reply)."""

    code: int
    enhanced: str | None
    text: str
    _wire: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Encoded once: the constants go out many times per second.
        prefix = f"{self.enhanced} " if self.enhanced else ""
        lines = self.text.replace("\r", "").split("\n")
        last = len(lines) - 1
        out = [f"{self.code}{' ' if i == last else '-'}{prefix}{line}\r\n" for i, line in enumerate(lines)]
        object.__setattr__(self, "_wire", "".join(out).encode("utf-8"))

    def encode(self) -> bytes:
        """The reply on the wire: one `code-text` line per text line, the last with `code text`."""
        return self._wire

    @property
    def is_positive(self) -> bool:
        """2xx completion or 3xx intermediate (RFC 5321 §4.2.1)."""
        return 200 <= self.code < 400

    @property
    def is_transient(self) -> bool:
        """4xx: the client may try again later."""
        return 400 <= self.code < 500

    @property
    def is_permanent(self) -> bool:
        """5xx: the client must not repeat the same request."""
        return self.code >= 500

    @property
    def closes(self) -> bool:
        """421: the server closes the channel after sending it (RFC 5321 §3.8)."""
        return self.code == 421


# 2xx: completion
OK = Reply(250, "2.0.0", "OK")
SENDER_OK = Reply(250, "2.1.0", "Sender OK")
RECIPIENT_OK = Reply(250, "2.1.5", "Recipient OK")
QUEUED = Reply(250, "2.6.0", "Queued mail for delivery")
CLOSING = Reply(221, "2.0.0", "Service closing transmission channel")
HELP = Reply(214, "2.0.0", "See RFC 5321; commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY")
CANNOT_VRFY = Reply(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery")
READY_FOR_TLS = Reply(220, "2.0.0", "SMTP server ready")
AUTH_SUCCEEDED = Reply(235, "2.7.0", "Authentication successful")

# 3xx: intermediate (no enhanced code: RFC 3463 defines classes 2, 4 and 5 only)
START_MAIL_INPUT = Reply(354, None, "Start mail input; end with <CRLF>.<CRLF>")

# 421: the server closes the channel (RFC 5321 §3.8)
SERVICE_CLOSING = Reply(421, "4.4.2", "Service not available, closing transmission channel")
TIMEOUT = Reply(421, "4.4.2", "Timeout exceeded, closing transmission channel")
SHUTTING_DOWN = Reply(421, "4.3.2", "Service shutting down, closing transmission channel")
TOO_MANY_ERRORS = Reply(421, "4.7.0", "Too many errors on this connection, closing transmission channel")
TOO_MANY_LOGON_FAILURES = Reply(
    421, "4.7.0", "Too many authentication failures, closing transmission channel"
)
INPUT_OVERFLOW = Reply(421, "4.5.0", "Too much unanswered input, closing transmission channel")

# 4xx: transient
TEMP_FAILURE = Reply(451, "4.3.0", "Temporary server error, please try again later")
TOO_MANY_RECIPIENTS = Reply(452, "4.5.3", "Too many recipients")  # RFC 5321 §4.5.3.1.10
TLS_UNAVAILABLE = Reply(454, "4.7.0", "TLS not available due to temporary reason")

# 5xx: syntax and sequence (RFC 5321 §4.2.2; enhanced codes RFC 3463 §3.6)
SYNTAX_ERROR = Reply(500, "5.5.2", "Syntax error, command unrecognized")
UNKNOWN_COMMAND = Reply(500, "5.5.1", "Unrecognized command")
LINE_TOO_LONG = Reply(500, "5.5.2", "Line too long")
BAD_ARGUMENTS = Reply(501, "5.5.4", "Syntax error in parameters or arguments")
BAD_SENDER_SYNTAX = Reply(501, "5.1.7", "Bad sender address syntax")
BAD_RECIPIENT_SYNTAX = Reply(501, "5.1.3", "Bad recipient address syntax")
NOT_IMPLEMENTED = Reply(502, "5.5.1", "Command not implemented")
BAD_SEQUENCE = Reply(503, "5.5.1", "Bad sequence of commands")
NEED_HELO = Reply(503, "5.5.1", "Send hello first")
NEED_EHLO = Reply(503, "5.5.1", "Send EHLO first")
NEED_MAIL = Reply(503, "5.5.1", "Need MAIL command")
NESTED_MAIL = Reply(503, "5.5.1", "Sender already specified")
NO_SERVICE = Reply(503, "5.5.1", "No SMTP service here")
DATA_BDAT_MIXED = Reply(503, "5.5.1", "DATA and BDAT cannot be mixed in one transaction")
BINARYMIME_NEEDS_BDAT = Reply(503, "5.5.1", "BODY=BINARYMIME requires BDAT")
TLS_ALREADY_ACTIVE = Reply(503, "5.5.1", "TLS already active")
ALREADY_AUTHENTICATED = Reply(503, "5.5.1", "Already authenticated")
AUTH_IN_TRANSACTION = Reply(503, "5.5.1", "AUTH not permitted during a mail transaction")
PARAMS_UNRECOGNIZED = Reply(555, "5.5.4", "MAIL FROM/RCPT TO parameters not recognized or not implemented")

# 5xx: transaction and content
NO_VALID_RECIPIENTS = Reply(554, "5.5.1", "No valid recipients")
MESSAGE_TOO_BIG = Reply(552, "5.3.4", "Message size exceeds fixed maximum message size")
TEXT_LINE_TOO_LONG = Reply(554, "5.6.0", "Message contains a line longer than allowed")
UTF8_NOT_PERMITTED = Reply(553, "5.6.7", "Non-ASCII addresses require the SMTPUTF8 parameter")
REJECTED = Reply(554, "5.7.1", "Transaction failed")

# 5xx: security (RFC 3207, RFC 4954 §6)
ENCRYPTION_REQUIRED = Reply(530, "5.7.0", "Must issue a STARTTLS command first")
AUTH_REQUIRED = Reply(530, "5.7.0", "Authentication required")
AUTH_ENCRYPTION_REQUIRED = Reply(538, "5.7.11", "Encryption required for requested authentication mechanism")
AUTH_FAILED = Reply(535, "5.7.8", "Authentication credentials invalid")
AUTH_CANCELLED = Reply(501, "5.0.0", "Authentication cancelled")
AUTH_BAD_RESPONSE = Reply(501, "5.5.2", "Cannot decode response")
AUTH_MECHANISM_UNKNOWN = Reply(504, "5.5.4", "Unrecognized authentication type")
