"""The mail transaction: MAIL, RCPT, RSET, DATA and BDAT, and reading the message body.

Sequence rules follow RFC 5321 §3.3 and §4.1.4 (MAIL after EHLO/HELO, one MAIL per transaction,
RCPT after MAIL, DATA after an accepted RCPT, else 554 5.5.1 "No valid recipients"), the recipient
buffer of §4.5.3.1.10 (452 4.5.3 beyond the limit), SMTPUTF8 (RFC 6531 §3.4: UTF-8 addresses only
with the SMTPUTF8 parameter) and CHUNKING (RFC 3030: `BDAT n [LAST]`, chunks read as counted
octets, no mixing with DATA, BINARYMIME only through BDAT, a refused chunk is still read and
later pipelined chunks are discarded, §2). The DATA body itself is read by `data.DotReader`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from courriel.core.address import Address
from courriel.core.replies import (
    AUTH_REQUIRED,
    BAD_ARGUMENTS,
    BAD_RECIPIENT_SYNTAX,
    BAD_SENDER_SYNTAX,
    BAD_SEQUENCE,
    BINARYMIME_NEEDS_BDAT,
    DATA_BDAT_MIXED,
    MESSAGE_TOO_BIG,
    NEED_HELO,
    NEED_MAIL,
    NESTED_MAIL,
    NO_VALID_RECIPIENTS,
    NOT_IMPLEMENTED,
    OK,
    START_MAIL_INPUT,
    TEMP_FAILURE,
    TOO_MANY_RECIPIENTS,
    UTF8_NOT_PERMITTED,
    Reply,
)

from .commands import Command, ReplyError, parse_forward_path, parse_reverse_path, split_path
from .data import DotReader, check_body
from .events import DecideData, DecideMail, DecideRcpt, Envelope
from .params import MailParams, RcptParams, parse_mail_params, parse_rcpt_params
from .state import Mode, SessionState, Transaction

_CHUNK_SIZE = re.compile(r"[0-9]{1,20}\Z")


@dataclass(slots=True)
class Chunk:
    """The BDAT chunk being read: `refusal` set means read it and throw it away."""

    size: int
    left: int
    last: bool
    refusal: Reply | None
    counted: bool
    """The refusal is a protocol error (BDAT without MAIL), counted against the limit."""


class TransactionCommands(SessionState):
    """MAIL, RCPT, RSET, DATA and BDAT."""

    _reader: DotReader | None = None
    _chunk: Chunk | None = None
    _chunk_failure: Reply | None = None
    """Set after a refused BDAT: further pipelined chunks get the same answer (RFC 3030 §2)."""

    def _refuse(self, error: ReplyError) -> None:
        if error.protocol_error:
            self._fail(error.reply)
        else:
            self._reply(error.reply)

    # -- envelope ------------------------------------------------------------------------

    def _mail(self, command: Command) -> None:
        if self._helo is None:
            self._fail(NEED_HELO)
        elif self.settings.auth_required and self._user is None and self._server is None:
            self._fail(AUTH_REQUIRED)  # RFC 4954 §6
        elif self._txn is not None:
            self._fail(NESTED_MAIL)
        else:
            try:
                path, tokens = split_path(command.arg, "FROM")
                sender = parse_reverse_path(path, BAD_SENDER_SYNTAX)
                params = parse_mail_params(tokens, self.settings, auth_offered=self._auth_offered())
                if sender is not None and sender.is_utf8 and not params.smtputf8:
                    raise ReplyError(UTF8_NOT_PERMITTED)  # RFC 6531 §3.4
            except ReplyError as error:
                self._refuse(error)
                return
            self._decide(
                DecideMail(self.info(), sender, params),
                lambda reply: self._mail_decided(sender, params, reply),
            )

    def _mail_decided(self, sender: Address | None, params: MailParams, reply: Reply | None) -> None:
        reply = reply if reply is not None else TEMP_FAILURE
        if reply.is_positive:
            self._txn = Transaction(sender, params)
        self._reply(reply)

    def _rcpt(self, command: Command) -> None:
        txn = self._txn
        if txn is None:
            self._fail(NEED_MAIL)
            return
        if txn.chunks is not None:
            self._fail(BAD_SEQUENCE)  # RFC 3030 §2: the envelope is closed once BDAT began
            return
        utf8 = txn.params.smtputf8
        try:
            path, tokens = split_path(command.arg, "TO")
            rcpt = parse_forward_path(path, self.settings.fqdn, BAD_RECIPIENT_SYNTAX)
            params = parse_rcpt_params(tokens, self.settings, utf8=utf8)
            if rcpt.is_utf8 and not utf8:
                raise ReplyError(UTF8_NOT_PERMITTED)  # RFC 6531 §3.4
        except ReplyError as error:
            self._refuse(error)
            return
        if len(txn.recipients) >= self.settings.max_recipients:
            self._reply(TOO_MANY_RECIPIENTS)  # RFC 5321 §4.5.3.1.10: the client retries later
            return
        self._decide(
            DecideRcpt(self.info(), rcpt, params),
            lambda reply: self._rcpt_decided(rcpt, params, reply),
        )

    def _rcpt_decided(self, rcpt: Address, params: RcptParams, reply: Reply | None) -> None:
        reply = reply if reply is not None else TEMP_FAILURE
        if reply.is_positive and self._txn is not None:
            self._txn.recipients.append((rcpt, params))
        self._reply(reply)

    def _rset(self, command: Command) -> None:
        if command.arg:
            self._fail(BAD_ARGUMENTS)
            return
        self._reset_transaction()
        self._reply(OK)

    # -- DATA ----------------------------------------------------------------------------

    def _data(self, command: Command) -> None:
        txn = self._txn
        if command.arg:
            self._fail(BAD_ARGUMENTS)
        elif txn is None:
            self._fail(NEED_MAIL)
        elif txn.chunks is not None:
            self._fail(DATA_BDAT_MIXED)  # RFC 3030 §2
        elif txn.params.body == "BINARYMIME":
            self._fail(BINARYMIME_NEEDS_BDAT)  # RFC 3030 §3
        elif not txn.recipients:
            self._reply(NO_VALID_RECIPIENTS)  # RFC 5321 §3.3; not the client's fault when pipelining
        else:
            self._reply(START_MAIL_INPUT)
            self._reader = DotReader(self.settings.max_message_size)
            self._mode = Mode.DATA

    def _read_data(self) -> None:
        reader = self._reader
        if reader is None or not reader.consume(self._input):
            return
        self._reader = None
        self._mode = Mode.COMMAND
        if reader.overflow:
            self._reset_transaction()
            self._reply(MESSAGE_TOO_BIG)  # RFC 1870 §6.2, after reading to the end
            return
        self._deliver(reader.message())

    def _deliver(self, message: bytes) -> None:
        txn = self._txn
        if txn is None:
            return
        binary = txn.params.body == "BINARYMIME"
        settings = self.settings
        refusal = check_body(
            message,
            max_size=settings.max_message_size,
            max_line=0 if binary else settings.max_text_line,
        )
        if refusal is not None:
            self._reset_transaction()
            self._reply(refusal)
            return
        envelope = Envelope(txn.sender, txn.params, tuple(txn.recipients))
        self._decide(DecideData(self.info(), envelope, message), self._data_decided)

    def _data_decided(self, reply: Reply | None) -> None:
        self._reset_transaction()
        self._reply(reply if reply is not None else TEMP_FAILURE)

    # -- BDAT (RFC 3030) ---------------------------------------------------------------------

    def _bdat(self, command: Command) -> None:
        if not self.settings.chunking:
            self._fail(NOT_IMPLEMENTED)
            return
        words = command.arg.upper().split()  # ABNF literals such as "LAST" are case-insensitive
        if not 1 <= len(words) <= 2 or not _CHUNK_SIZE.match(words[0]) or words[1:] not in ([], ["LAST"]):
            # Without a count the chunk cannot be skipped: its octets will read as commands,
            # and the error limit ends the session if they are garbage.
            self._fail(BAD_ARGUMENTS)
            return
        size, last = int(words[0]), len(words) == 2
        refusal, counted = self._chunk_refusal(size)
        self._chunk = Chunk(size, size, last, refusal, counted)
        self._mode = Mode.CHUNK
        if size == 0:
            self._chunk_read()

    def _chunk_refusal(self, size: int) -> tuple[Reply | None, bool]:
        """Why this chunk will be discarded, and whether that counts as a protocol error.

        Only the first chunk of a refused series counts: the ones after it were pipelined
        before the client could see the refusal.
        """
        if self._chunk_failure is not None:
            return self._chunk_failure, False
        txn = self._txn
        if txn is None:
            refusal = NEED_MAIL
        elif not txn.recipients:
            refusal = NO_VALID_RECIPIENTS
        else:
            chunks = txn.chunks if txn.chunks is not None else bytearray()
            txn.chunks = chunks
            limit = self.settings.max_message_size
            if not limit or len(chunks) + size <= limit:
                return None, False
            refusal = MESSAGE_TOO_BIG  # RFC 3030 §4.2, RFC 1870
        self._reset_transaction()
        self._chunk_failure = refusal
        return refusal, refusal is NEED_MAIL

    def _read_chunk(self) -> None:
        chunk = self._chunk
        if chunk is None:
            return
        take = min(chunk.left, len(self._input))
        if chunk.refusal is None and self._txn is not None and self._txn.chunks is not None:
            with memoryview(self._input) as view:
                self._txn.chunks += view[:take]
        del self._input[:take]
        chunk.left -= take
        if chunk.left == 0:
            self._chunk_read()

    def _chunk_read(self) -> None:
        chunk, self._chunk = self._chunk, None
        self._mode = Mode.COMMAND
        if chunk is None:
            return
        if chunk.refusal is not None:
            if chunk.last:
                self._chunk_failure = None  # the client's message ends here
            if chunk.counted:
                self._fail(chunk.refusal)
            else:
                self._reply(chunk.refusal)
        elif chunk.last:
            txn = self._txn
            self._deliver(bytes(txn.chunks) if txn is not None and txn.chunks is not None else b"")
        else:
            self._reply(Reply(250, "2.0.0", f"{chunk.size} octets received"))
