"""The SMTP client's wire rules without sockets: replies, EHLO keywords, commands, the body, refusals."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from courriel.transport.deliver.esmtp import (
    Capabilities,
    Needs,
    ProtocolViolation,
    ReplyReader,
    describe,
    dot_stuffed,
    mail_command,
    needs_of,
    orcpt_param,
    rcpt_command,
    refusal,
)

EHLO = (
    b"250-mx.example.net Hello\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n"
    b"250-SMTPUTF8\r\n250-DSN\r\n250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n250 CHUNKING\r\n"
)


def replies(*chunks: bytes) -> list[tuple[int, str | None, str]]:
    reader = ReplyReader()
    out = []
    for chunk in chunks:
        out += [(r.code, r.enhanced, r.text) for r in reader.feed(chunk)]
    return out


def test_replies_in_any_chunking() -> None:
    data = b"250 2.1.0 Sender OK\r\n550-5.1.1 No such user\r\n550 5.1.1 here\r\n354 go ahead\r\n"
    expected = [(250, "2.1.0", "Sender OK"), (550, "5.1.1", "No such user\nhere"), (354, None, "go ahead")]
    assert replies(data) == expected
    assert replies(*[data[i : i + 1] for i in range(len(data))]) == expected
    assert replies(b"250\r\n") == [(250, None, "")]


def test_enhanced_code_class_must_match() -> None:
    assert replies(b"250 5.1.1 odd\r\n") == [(250, None, "5.1.1 odd")]  # RFC 2034 §4


@pytest.mark.parametrize("bad", [b"hello\r\n", b"25 short\r\n", b"250-a\r\n251 b\r\n", b"x" * 5000])
def test_violations(bad: bytes) -> None:
    with pytest.raises(ProtocolViolation):
        ReplyReader().feed(bad)


@given(st.binary(max_size=600))
def test_reader_never_fails_otherwise(data: bytes) -> None:
    try:
        ReplyReader().feed(data)
    except ProtocolViolation:
        pass


def test_capabilities() -> None:
    reply = ReplyReader().feed(EHLO)[0]
    caps = Capabilities.from_ehlo(reply)
    assert caps.pipelining and caps.starttls and caps.dsn and caps.smtputf8 and caps.chunking
    assert not caps.binarymime
    assert caps.size == 10240000
    assert caps.auth == {"PLAIN", "LOGIN"}
    assert describe(reply).startswith("250 mx.example.net Hello PIPELINING")


def test_commands_carry_only_offered_parameters() -> None:
    full = Capabilities(esmtp=True, dsn=True, size=0, eightbitmime=True, smtputf8=True)
    needs = Needs(size=1234, smtputf8=False, eightbit=True, binary=False)
    assert (
        mail_command("a@x", needs, full, ret="hdrs", envid="id+1 x")
        == "MAIL FROM:<a@x> SIZE=1234 BODY=8BITMIME RET=HDRS ENVID=id+2B1+20x"
    )
    assert mail_command("", needs, Capabilities(esmtp=True), ret="FULL", envid="e") == "MAIL FROM:<>"
    assert rcpt_command("b@y", full, notify="SUCCESS,FAILURE", orcpt=None, original="B@y") == (
        "RCPT TO:<b@y> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;B@y"
    )
    assert (
        rcpt_command("b@y", Capabilities(), notify="NEVER", orcpt="rfc822;c@z", original="b@y")
        == "RCPT TO:<b@y>"
    )


def test_orcpt_encoding() -> None:
    assert orcpt_param("rfc822;a+b=c@x") == "ORCPT=rfc822;a+2Bb+3Dc@x"
    assert orcpt_param("rfc822;用户@x") == "ORCPT=utf-8;\\x{7528}\\x{6237}@x"  # RFC 6533 §3


def test_dot_stuffing() -> None:
    assert dot_stuffed(b".a\r\nb\r\n.\r\n..c") == b"..a\r\nb\r\n..\r\n...c\r\n.\r\n"
    assert dot_stuffed(b"bare\nlf\n") == b"bare\r\nlf\r\n.\r\n"  # RFC 5321 §2.3.8
    assert dot_stuffed(b"") == b".\r\n"


def test_what_a_message_needs_and_refusals() -> None:
    plain = Capabilities(esmtp=True)
    assert needs_of("a@x", ["b@y"], b"ascii", {}) == Needs(5, False, False, False)
    eight = needs_of("a@x", ["b@y"], "é".encode(), {})
    assert (
        eight.eightbit and refusal(eight, plain) is not None and refusal(eight, plain).startswith("554 5.6.3")
    )  # type: ignore[union-attr]
    assert refusal(eight, Capabilities(esmtp=True, eightbitmime=True)) is None
    utf8 = needs_of("a@x", ["用户@y"], b"x", {})
    assert utf8.smtputf8 and refusal(utf8, Capabilities(esmtp=True, eightbitmime=True)).startswith(
        "550 5.6.7"
    )  # type: ignore[union-attr]
    binary = needs_of("a@x", ["b@y"], b"\x00", {"body": "BINARYMIME"})
    assert binary.binary and refusal(binary, Capabilities(esmtp=True, chunking=True)).startswith("554 5.6.3")  # type: ignore[union-attr]
    big = Needs(2000, False, False, False)
    assert refusal(big, Capabilities(esmtp=True, size=1000)).startswith("552 5.3.4")  # type: ignore[union-attr]
    assert refusal(big, Capabilities(esmtp=True, size=0)) is None  # SIZE without a limit
