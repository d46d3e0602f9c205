"""What the POP3 engine asks of the I/O layer around it (sans-I/O seam).

`Pop3Session` never touches a socket or the mail store. Each call returns a list of actions
for the server that owns the connection to carry out, in order:

- `Send(data)`: write the bytes to the peer.
- `StartTLS()`: perform the TLS handshake now (RFC 2595 §4), then call `session.tls_started()`.
- `Close()`: close the connection; the session is over.
- a decision (`DecideLogin`, `DecideRetrieve`, `DecideCommit`): always the last action of a
  list. The I/O layer does the work (check the password, read a message, expunge) and calls
  `session.resolve(result)`, which returns the next actions. Only one is pending at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from courriel.proto.pop3.maildrop import Maildrop


@dataclass(frozen=True)
class Send:
    data: bytes


@dataclass(frozen=True)
class StartTLS:
    """Begin the TLS handshake; plaintext input already received has been discarded."""


@dataclass(frozen=True)
class Close:
    """Close the connection."""


@dataclass(frozen=True)
class DecideLogin:
    """Check the credentials and lock the maildrop; resolve with a `LoginResult`.

    `mechanism` is "USER" (USER/PASS, RFC 1939 §7) or "PLAIN" (AUTH PLAIN, RFC 5034/4616).
    The I/O layer applies login throttling before checking the password.
    """

    username: str
    password: str = field(repr=False)  # never in a log line
    mechanism: str


@dataclass(frozen=True)
class LoginResult:
    """The answer to `DecideLogin`.

    - `ok=True` with the `maildrop` snapshot: the session enters the TRANSACTION state.
    - `in_use=True`: the maildrop is locked by another session ([IN-USE], RFC 2449 §8.1.2).
    - `error` set: a temporary failure on our side, such as the directory or store being
      unreachable ([SYS/TEMP], RFC 3206 §4); the text goes to the client, so it must not name
      internals. It does not count as a failed login.
    - otherwise: wrong credentials or refused by policy or throttling ([AUTH], RFC 3206 §5);
      counts toward `max_failures`.
    """

    ok: bool
    maildrop: Maildrop | None = None
    error: str | None = None
    in_use: bool = False

    def __post_init__(self) -> None:
        if self.ok and self.maildrop is None:
            raise ValueError("a successful LoginResult needs a maildrop")


@dataclass(frozen=True)
class DecideRetrieve:
    """Read message `uid` (for RETR or TOP); resolve with its bytes, or None if it is gone.

    Line endings may be CRLF or bare LF; the engine sends CRLF and does the dot-stuffing.
    """

    uid: str


@dataclass(frozen=True)
class DecideCommit:
    """QUIT in the TRANSACTION state (RFC 1939 §6, the UPDATE state): remove `deletions`
    (possibly none) and release the maildrop lock. Resolve with None on success, or a text for
    the client when some could not be removed; the session closes either way."""

    deletions: list[str]


Decision = DecideLogin | DecideRetrieve | DecideCommit
Action = Send | StartTLS | Close | DecideLogin | DecideRetrieve | DecideCommit
