"""Message text on the wire: CRLF normalization, byte-stuffing and the TOP cut (RFC 1939 §3, §7)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from courriel.proto.pop3.wire import dot_stuff, normalize, top

# Lines as a mail store may hold them: any octets but CR and LF.
lines_strategy = st.lists(
    st.binary(max_size=20).filter(lambda b: b"\r" not in b and b"\n" not in b), max_size=15
)


def unstuff(wire: bytes) -> list[bytes]:
    """What a client does with a multi-line response body (RFC 1939 §3)."""
    lines = wire.split(b"\r\n")
    assert lines[-1] == b"", "the response must end in CRLF"
    end = lines.index(b".")
    assert end == len(lines) - 2, "the terminator must be the last line"
    return [line[1:] if line.startswith(b".") else line for line in lines[:end]]


def test_stuffing_examples() -> None:
    assert dot_stuff(b"") == b".\r\n"
    assert dot_stuff(b".\r\n") == b"..\r\n.\r\n"
    assert dot_stuff(b"a\r\n.\r\n.\r\n..x\r\n") == b"a\r\n..\r\n..\r\n...x\r\n.\r\n"
    assert dot_stuff(b"a.b\r\n") == b"a.b\r\n.\r\n"


def test_normalize_examples() -> None:
    assert normalize(b"") == b""
    assert normalize(b"a\nb") == b"a\r\nb\r\n"
    assert normalize(b"a\r\nb\r\n") == b"a\r\nb\r\n"
    assert normalize(b"a\r\r\nb") == b"a\r\r\nb\r\n"


@given(lines_strategy, st.booleans())
def test_stuffing_round_trips(lines: list[bytes], bare_lf: bool) -> None:
    message = b"".join(line + (b"\n" if bare_lf else b"\r\n") for line in lines)
    assert unstuff(dot_stuff(normalize(message))) == lines


@given(st.binary(max_size=200))
def test_normalize_is_idempotent_and_crlf_only(message: bytes) -> None:
    text = normalize(message)
    assert normalize(text) == text
    assert text.count(b"\n") == text.count(b"\r\n")
    assert not text or text.endswith(b"\r\n")


@given(lines_strategy, lines_strategy, st.integers(min_value=0, max_value=20))
def test_top_is_header_blank_line_and_n_body_lines(header: list[bytes], body: list[bytes], n: int) -> None:
    header = [line for line in header if line]  # an empty line would end the header early
    text = b"".join(line + b"\r\n" for line in [*header, b"", *body])
    assert top(text, n) == b"".join(line + b"\r\n" for line in [*header, b"", *body[:n]])
