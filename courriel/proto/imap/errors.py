"""Errors of the IMAP protocol layer, shaped so the session engine can answer on the wire.

A `ParseError` carries what the engine needs to build the reply: the tag when it could be read
(`tag BAD …`) or None (`* BAD …`, RFC 9051 §7.1.3), the human text, and the status and response
code when the grammar is fine but the request cannot be honoured as written (RFC 9051 §7.1:
`NO [BADCHARSET …]` for an unknown SEARCH charset). The text never echoes raw client bytes.
"""

from __future__ import annotations


class ParseError(Exception):
    """A command that does not follow the grammar of RFC 3501/9051 or of an extension."""

    def __init__(
        self,
        text: str,
        *,
        tag: str | None = None,
        status: str = "BAD",
        code: str | None = None,
    ) -> None:
        super().__init__(text)
        self.text = text
        self.tag = tag
        self.status = status
        self.code = code

    def with_tag(self, tag: str | None) -> ParseError:
        """Attach the tag once the dispatcher knows it (inner parsers do not)."""
        if self.tag is None:
            self.tag = tag
        return self

    def __repr__(self) -> str:
        return f"ParseError({self.text!r}, tag={self.tag!r}, status={self.status!r}, code={self.code!r})"


class SequenceError(Exception):
    """A message sequence number beyond the mailbox, `*` included when it is empty.

    RFC 9051 §9 (seq-number): the server should answer such a command with a tagged BAD.
    """


class SectionError(Exception):
    """A BODY[section] or BINARY[section] that cannot be served as asked.

    `code` is the response code the engine sends, e.g. "UNKNOWN-CTE" (RFC 3516 §4.3) when a
    BINARY fetch meets a content-transfer-encoding it cannot decode.
    """

    def __init__(self, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.code = code
