"""The TRANSACTION state: STAT, LIST, UIDL, RETR, TOP, DELE, RSET, NOOP and QUIT.

RFC 1939 §5 (STAT, LIST, RETR, DELE, NOOP, RSET), §6 (QUIT and the UPDATE state) and §7 (TOP,
UIDL). LAST (RFC 1460) was dropped from the standard and is not offered. Commands that only
read the snapshot answer at once; RETR and TOP need the message text, so they end in a
`DecideRetrieve`, and QUIT in a `DecideCommit`.
"""

from __future__ import annotations

from collections.abc import Callable

from courriel.proto.pop3 import replies as r
from courriel.proto.pop3 import wire
from courriel.proto.pop3.actions import DecideCommit, DecideRetrieve
from courriel.proto.pop3.maildrop import DropEntry, Maildrop, MarkedDrop
from courriel.proto.pop3.replies import Reply

Outcome = Reply | DecideRetrieve | DecideCommit

# A message number or line count: plain decimal digits. The cap keeps int() cheap; no maildrop
# or message is that large.
_MAX_DIGITS = 10

VERBS = frozenset({"STAT", "LIST", "UIDL", "RETR", "TOP", "DELE", "RSET", "NOOP", "QUIT"})


def parse_number(token: str) -> int | None:
    if not token or len(token) > _MAX_DIGITS or not (token.isascii() and token.isdigit()):
        return None
    return int(token)


class Transaction:
    """The commands on an open maildrop."""

    def __init__(self, maildrop: Maildrop) -> None:
        self.drop = MarkedDrop(maildrop.entries)
        self._retrieving: tuple[DropEntry, int | None] | None = None  # (entry, TOP lines)
        self._commands: dict[str, Callable[[list[str]], Outcome]] = {
            "STAT": self._stat,
            "LIST": self._list,
            "UIDL": self._uidl,
            "RETR": self._retr,
            "TOP": self._top,
            "DELE": self._dele,
            "RSET": self._rset,
            "NOOP": self._noop,
            "QUIT": self._quit,
        }

    def handle(self, verb: str, arg: str) -> Outcome | None:
        """The outcome of a command, or None when the verb is not one of this state's."""
        command = self._commands.get(verb)
        if command is None:
            return None
        return command(arg.split())

    def retrieved(self, message: bytes | None) -> Reply:
        """The reply to RETR or TOP once the store has read the message."""
        if self._retrieving is None:
            raise RuntimeError("retrieved() without a pending RETR or TOP")
        entry, lines = self._retrieving
        self._retrieving = None
        if message is None:
            return r.err(r.MESSAGE_GONE, fault=False)
        text = wire.normalize(message)
        if lines is None:
            head = r.OCTETS.format(octets=entry.size)
        else:
            text = wire.top(text, lines)
            head = ""
        return r.Reply(r.ok(head).data + wire.dot_stuff(text))

    def _message(self, token: str) -> tuple[int, DropEntry] | Reply:
        """The live message a command names, or the error reply (RFC 1939 §5)."""
        number = parse_number(token)
        if number is None:
            return r.err(r.BAD_NUMBER)
        entry = self.drop.get(number)
        if entry is None:
            return r.err(r.NO_SUCH_MESSAGE, fault=False)
        if self.drop.is_deleted(number):
            return r.err(r.ALREADY_DELETED.format(number=number), fault=False)
        return number, entry

    def _stat(self, args: list[str]) -> Outcome:
        if args:
            return r.err(r.NO_ARGUMENTS)
        count, octets = self.drop.totals()
        return r.ok(f"{count} {octets}")  # RFC 1939 §5: exactly "+OK nn mm"

    def _list(self, args: list[str]) -> Outcome:
        return self._listing(args, lambda entry: str(entry.size), r.SCAN_LISTING)

    def _uidl(self, args: list[str]) -> Outcome:
        return self._listing(args, lambda entry: entry.uid, r.UIDL_LISTING)

    def _listing(self, args: list[str], field: Callable[[DropEntry], str], header: str) -> Outcome:
        """LIST and UIDL share a shape: one line for one message, or all live ones."""
        if len(args) > 1:
            return r.err(r.BAD_NUMBER)
        if args:
            found = self._message(args[0])
            if isinstance(found, Reply):
                return found
            number, entry = found
            return r.ok(f"{number} {field(entry)}")
        count, octets = self.drop.totals()
        lines = (f"{number} {field(entry)}" for number, entry in self.drop.live())
        return r.multiline(header.format(count=count, octets=octets), lines)

    def _retr(self, args: list[str]) -> Outcome:
        if len(args) != 1:
            return r.err(r.BAD_NUMBER)
        return self._retrieve(args[0], None)

    def _top(self, args: list[str]) -> Outcome:
        if len(args) != 2:
            return r.err(r.BAD_NUMBER if not args else r.BAD_LINE_COUNT)
        lines = parse_number(args[1])
        if lines is None:
            return r.err(r.BAD_LINE_COUNT)
        return self._retrieve(args[0], lines)

    def _retrieve(self, token: str, lines: int | None) -> Outcome:
        found = self._message(token)
        if isinstance(found, Reply):
            return found
        _, entry = found
        self._retrieving = (entry, lines)
        return DecideRetrieve(entry.uid)

    def _dele(self, args: list[str]) -> Outcome:
        if len(args) != 1:
            return r.err(r.BAD_NUMBER)
        found = self._message(args[0])
        if isinstance(found, Reply):
            return found
        number, _ = found
        self.drop.mark(number)
        return r.ok(r.DELETED.format(number=number))

    def _rset(self, args: list[str]) -> Outcome:
        if args:
            return r.err(r.NO_ARGUMENTS)
        self.drop.unmark_all()
        count, octets = self.drop.totals()
        return r.ok(r.MAILDROP.format(count=count, octets=octets))

    def _noop(self, args: list[str]) -> Outcome:
        return r.err(r.NO_ARGUMENTS) if args else r.ok()

    def _quit(self, args: list[str]) -> Outcome:
        # RFC 1939 §6: QUIT enters the UPDATE state, where the marked messages are removed.
        return r.err(r.NO_ARGUMENTS) if args else DecideCommit(self.drop.deleted_uids())
