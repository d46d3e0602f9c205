"""xtext (RFC 3461 §4), RFC 6533 utf-8 addresses, and the parameter parsers, by example and by property."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from courriel.core.replies import MESSAGE_TOO_BIG, PARAMS_UNRECOGNIZED
from courriel.proto.smtp import MailParams, SessionSettings, decode_xtext, encode_xtext
from courriel.proto.smtp.commands import ReplyError
from courriel.proto.smtp.params import decode_utf8_address, parse_mail_params, parse_rcpt_params

SETTINGS = SessionSettings("mx.example.com", max_message_size=1000)


def test_xtext_examples() -> None:
    assert encode_xtext("a+b=c d") == "a+2Bb+3Dc+20d"
    assert decode_xtext("a+2Bb+3Dc+20d") == "a+b=c d"
    assert decode_xtext("a+2bb") == "a+b"  # lower-case hex is tolerated
    assert encode_xtext("é") == "+C3+A9"
    assert decode_xtext("+C3+A9") == "é"


@pytest.mark.parametrize("bad", ["a+", "a+4", "a+GG", "a=b", "a b", "é", "+FF"])
def test_malformed_xtext(bad: str) -> None:
    with pytest.raises(ValueError):
        decode_xtext(bad)


@given(st.text())
def test_xtext_round_trip(text: str) -> None:
    encoded = encode_xtext(text)
    assert encoded.isascii() and " " not in encoded and "=" not in encoded
    assert decode_xtext(encoded) == text


@given(st.text(max_size=50))
def test_decode_xtext_never_fails_otherwise(text: str) -> None:
    try:
        decode_xtext(text)
    except ValueError:
        pass


def test_utf8_address() -> None:
    assert decode_utf8_address("j\\x{F6}ran@example.de") == "jöran@example.de"
    assert decode_utf8_address("jöran@example.de") == "jöran@example.de"
    for bad in ("a\\x{D800}", "a\\x{110000}", "a+b", "a\\b", ""):
        with pytest.raises(ValueError):
            decode_utf8_address(bad)


def test_mail_params_parser() -> None:
    params = parse_mail_params(["SIZE=10", "SMTPUTF8", "BODY=BINARYMIME"], SETTINGS, auth_offered=False)
    assert params == MailParams(size=10, body="BINARYMIME", smtputf8=True)
    with pytest.raises(ReplyError) as error:
        parse_mail_params(["SIZE=1001"], SETTINGS, auth_offered=False)
    assert error.value.reply == MESSAGE_TOO_BIG and not error.value.protocol_error
    with pytest.raises(ReplyError) as error:
        parse_mail_params(["ENVID=é"], SETTINGS, auth_offered=False)
    assert error.value.reply == PARAMS_UNRECOGNIZED and error.value.protocol_error


def test_utf8_values_only_with_smtputf8() -> None:
    with pytest.raises(ReplyError):
        parse_mail_params(["SMTPUTF8", "AUTH=é"], SETTINGS, auth_offered=True)  # still xtext
    with pytest.raises(ReplyError):
        parse_rcpt_params(["ORCPT=utf-8;é@x"], SETTINGS, utf8=False)
    assert parse_rcpt_params(["ORCPT=utf-8;é@x"], SETTINGS, utf8=True).orcpt == ("utf-8", "é@x")


@given(st.lists(st.text(max_size=30), max_size=5))
def test_parsers_raise_only_reply_errors(tokens: list[str]) -> None:
    for parse in (
        lambda: parse_mail_params(tokens, SETTINGS, auth_offered=True),
        lambda: parse_rcpt_params(tokens, SETTINGS, utf8=True),
    ):
        try:
            parse()
        except ReplyError as error:
            assert error.reply.code in (552, 555)
