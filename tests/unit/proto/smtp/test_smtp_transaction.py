"""MAIL, RCPT and RSET: sequence, syntax, ESMTP parameters (RFC 5321 §4.1.1, 1870, 3461, 6531)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from courriel.core.address import Address
from courriel.core.replies import (
    AUTH_REQUIRED,
    BAD_ARGUMENTS,
    BAD_RECIPIENT_SYNTAX,
    BAD_SENDER_SYNTAX,
    CLOSING,
    MESSAGE_TOO_BIG,
    NEED_HELO,
    NEED_MAIL,
    NESTED_MAIL,
    OK,
    PARAMS_UNRECOGNIZED,
    RECIPIENT_OK,
    SENDER_OK,
    TOO_MANY_RECIPIENTS,
    UTF8_NOT_PERMITTED,
    Reply,
)
from courriel.proto.smtp import DecideMail, DecideRcpt, MailParams, RcptParams

from .conftest import Client, FakePolicy

Factory = Callable[..., Client]


def test_mail_needs_hello(client: Factory) -> None:
    assert client().send(b"MAIL FROM:<a@b.example>\r\n") == [NEED_HELO]


def test_mail_asks_the_policy(ready: Client) -> None:
    assert ready.send(b"MAIL FROM:<Alice@B.Example>\r\n") == [SENDER_OK]
    decision = ready.policy.last(DecideMail)
    assert decision.sender == Address("Alice", "b.example")
    assert decision.params == MailParams()
    assert decision.info.helo == "client.example.org" and decision.info.esmtp


def test_null_sender(ready: Client) -> None:
    assert ready.send(b"MAIL FROM:<>\r\n") == [SENDER_OK]
    assert ready.policy.last(DecideMail).sender is None


def test_one_mail_per_transaction(ready: Client) -> None:
    ready.send(b"MAIL FROM:<a@b.example>\r\n")
    assert ready.send(b"MAIL FROM:<a@b.example>\r\n") == [NESTED_MAIL]
    assert ready.send(b"RSET\r\n") == [OK]
    assert ready.send(b"MAIL FROM:<a@b.example>\r\n") == [SENDER_OK]


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        (b"MAIL FROM:a@b.example", BAD_ARGUMENTS),
        (b"MAIL TO:<a@b.example>", BAD_ARGUMENTS),
        (b"MAIL", BAD_ARGUMENTS),
        (b"MAIL FROM:<a@b.example>SIZE=1", BAD_ARGUMENTS),
        (b"MAIL FROM:<a@b.example", BAD_ARGUMENTS),
        (b"MAIL FROM:<a@@b.example>", BAD_SENDER_SYNTAX),
        (b"MAIL FROM:<a b@c.example>", BAD_ARGUMENTS),
        (b"MAIL FROM:<nodomain>", BAD_SENDER_SYNTAX),
        (b"MAIL FROM:<a@-bad.example>", BAD_SENDER_SYNTAX),
    ],
)
def test_mail_syntax(ready: Client, line: bytes, reply: Reply) -> None:
    assert ready.send(line + b"\r\n") == [reply]


def test_lenient_forms(ready: Client) -> None:
    assert ready.send(b"mail from: <a@b.example>\r\n") == [SENDER_OK]
    ready.send(b"RSET\r\n")
    assert ready.send(b"MAIL FROM:<@relay.example,@other.example:a@b.example>\r\n") == [SENDER_OK]
    assert ready.policy.last(DecideMail).sender == Address("a", "b.example")  # RFC 5321 §4.1.1.3
    ready.send(b"RSET\r\n")
    assert ready.send(b'MAIL FROM:<"a > b"@b.example>\r\n') == [SENDER_OK]
    assert ready.policy.last(DecideMail).sender == Address('"a > b"', "b.example")


def test_mail_parameters(client: Factory) -> None:
    c = client(tls_active=True)
    c.ehlo()
    line = b"MAIL FROM:<a@b.example> size=1000 BODY=8bitmime RET=HDRS ENVID=QQ+2BZZ AUTH=a+2Bb@b.example"
    assert c.send(line + b"\r\n") == [SENDER_OK]
    assert c.policy.last(DecideMail).params == MailParams(
        size=1000, body="8BITMIME", ret="HDRS", envid="QQ+ZZ", auth="a+b@b.example"
    )


@pytest.mark.parametrize(
    "params",
    [
        b"FOO=1",
        b"SIZE=abc",
        b"SIZE=\xc2\xb2",
        b"SIZE",
        b"SIZE=1 SIZE=2",
        b"BODY=9BIT",
        b"RET=ALL",
        b"ENVID=" + b"x" * 101,
        b"ENVID=a+zz",
        b"SMTPUTF8=yes",
        b"AUTH=<>",  # AUTH is not offered before TLS
        b"=1",
        b"SIZE=",
    ],
)
def test_bad_mail_parameters(ready: Client, params: bytes) -> None:
    assert ready.send(b"MAIL FROM:<a@b.example> " + params + b"\r\n") == [PARAMS_UNRECOGNIZED]


def test_parameters_of_disabled_extensions_are_refused(client: Factory) -> None:
    c = client(dsn=False, chunking=False, smtputf8=False, max_protocol_errors=0)
    c.ehlo()
    for params in (b"RET=FULL", b"ENVID=x", b"BODY=BINARYMIME", b"SMTPUTF8"):
        assert c.send(b"MAIL FROM:<a@b.example> " + params + b"\r\n") == [PARAMS_UNRECOGNIZED]
    c.send(b"MAIL FROM:<a@b.example>\r\n")
    assert c.send(b"RCPT TO:<c@d.example> NOTIFY=NEVER\r\n") == [PARAMS_UNRECOGNIZED]


def test_declared_size_over_the_limit(client: Factory) -> None:
    c = client(max_message_size=1000)
    c.ehlo()
    assert c.send(b"MAIL FROM:<a@b.example> SIZE=1001\r\n") == [MESSAGE_TOO_BIG]  # RFC 1870 §6.1
    assert c.send(b"MAIL FROM:<a@b.example> SIZE=1000\r\n") == [SENDER_OK]


def test_submission_requires_authentication(client: Factory) -> None:
    c = client(auth_required=True, tls_active=True)
    c.ehlo()
    assert c.send(b"MAIL FROM:<a@b.example>\r\n") == [AUTH_REQUIRED]
    c.send(b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n")
    assert c.send(b"MAIL FROM:<a@b.example>\r\n") == [SENDER_OK]
    assert c.policy.last(DecideMail).info.authenticated == "alice"


def test_refused_mail_opens_no_transaction(client: Factory) -> None:
    refusal = Reply(550, "5.7.1", "Sender denied")
    c = client(FakePolicy(mail=refusal))
    c.ehlo()
    assert c.send(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n") == [refusal, NEED_MAIL]


def test_rcpt(ready: Client) -> None:
    assert ready.send(b"RCPT TO:<c@d.example>\r\n") == [NEED_MAIL]
    ready.send(b"MAIL FROM:<a@b.example>\r\n")
    assert ready.send(b"RCPT TO:<c@d.example>\r\n") == [RECIPIENT_OK]
    decision = ready.policy.last(DecideRcpt)
    assert decision.rcpt == Address("c", "d.example") and decision.params == RcptParams()


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        (b"RCPT TO:<>", BAD_RECIPIENT_SYNTAX),
        (b"RCPT TO:<c@>", BAD_RECIPIENT_SYNTAX),
        (b"RCPT FROM:<c@d.example>", BAD_ARGUMENTS),
        (b"RCPT TO:c@d.example", BAD_ARGUMENTS),
        (b"RCPT TO:<c@d.example> FOO", PARAMS_UNRECOGNIZED),
        (b"RCPT TO:<c@d.example> NOTIFY=NEVER,SUCCESS", PARAMS_UNRECOGNIZED),
        (b"RCPT TO:<c@d.example> NOTIFY=SUCCESS,SUCCESS", PARAMS_UNRECOGNIZED),
        (b"RCPT TO:<c@d.example> NOTIFY=SOMETIMES", PARAMS_UNRECOGNIZED),
        (b"RCPT TO:<c@d.example> NOTIFY", PARAMS_UNRECOGNIZED),
        (b"RCPT TO:<c@d.example> ORCPT=c@d.example", PARAMS_UNRECOGNIZED),
        (b"RCPT TO:<c@d.example> ORCPT=rfc822;", PARAMS_UNRECOGNIZED),
        (b"RCPT TO:<c@d.example> ORCPT=rfc822;a+4", PARAMS_UNRECOGNIZED),
        (b"RCPT TO:<c@d.example> ORCPT=rfc822;" + b"x" * 500, PARAMS_UNRECOGNIZED),
    ],
)
def test_rcpt_syntax(ready: Client, line: bytes, reply: Reply) -> None:
    ready.send(b"MAIL FROM:<a@b.example>\r\n")
    assert ready.send(line + b"\r\n") == [reply]


def test_dsn_parameters(ready: Client) -> None:
    ready.send(b"MAIL FROM:<a@b.example>\r\n")
    line = b"RCPT TO:<c@d.example> notify=failure,Delay ORCPT=rfc822;C+2Bx@D.example\r\n"
    assert ready.send(line) == [RECIPIENT_OK]
    assert ready.policy.last(DecideRcpt).params == RcptParams(
        notify=("FAILURE", "DELAY"), orcpt=("rfc822", "C+x@D.example")
    )
    assert ready.send(b"RCPT TO:<e@d.example> NOTIFY=NEVER\r\n") == [RECIPIENT_OK]
    assert ready.policy.last(DecideRcpt).params.notify == ("NEVER",)


def test_bare_postmaster_is_ours(ready: Client) -> None:
    ready.send(b"MAIL FROM:<>\r\n")
    assert ready.send(b"RCPT TO:<Postmaster>\r\n") == [RECIPIENT_OK]
    assert ready.policy.last(DecideRcpt).rcpt == Address("Postmaster", "mx.example.com")


def test_recipient_limit(client: Factory) -> None:
    c = client(max_recipients=2)
    c.ehlo()
    c.send(b"MAIL FROM:<a@b.example>\r\n")
    rcpts = b"".join(b"RCPT TO:<u%d@d.example>\r\n" % i for i in range(3))
    assert c.send(rcpts) == [RECIPIENT_OK, RECIPIENT_OK, TOO_MANY_RECIPIENTS]
    assert len([d for d in c.policy.seen if isinstance(d, DecideRcpt)]) == 2


def test_refused_recipients_do_not_use_up_the_limit(client: Factory) -> None:
    c = client(FakePolicy(rejected_rcpts={"bad@d.example"}), max_recipients=1)
    c.ehlo()
    c.send(b"MAIL FROM:<a@b.example>\r\n")
    assert c.send(b"RCPT TO:<bad@d.example>\r\n")[0].code == 550
    assert c.send(b"RCPT TO:<good@d.example>\r\n") == [RECIPIENT_OK]


def test_smtputf8_addresses(ready: Client) -> None:
    sender = "jöran@exämple.de".encode()
    assert ready.send(b"MAIL FROM:<" + sender + b">\r\n") == [UTF8_NOT_PERMITTED]
    assert ready.send(b"MAIL FROM:<" + sender + b"> SMTPUTF8\r\n") == [SENDER_OK]
    assert ready.policy.last(DecideMail).params.smtputf8
    assert ready.send("RCPT TO:<δοκιμή@παράδειγμα.δοκιμή>\r\n".encode()) == [RECIPIENT_OK]
    ready.send(b"RSET\r\n")
    ready.send(b"MAIL FROM:<a@b.example>\r\n")
    assert ready.send("RCPT TO:<δοκιμή@παράδειγμα.δοκιμή>\r\n".encode()) == [UTF8_NOT_PERMITTED]


def test_utf8_orcpt(ready: Client) -> None:
    ready.send(b"MAIL FROM:<a@b.example> SMTPUTF8\r\n")
    line = b"RCPT TO:<c@d.example> ORCPT=utf-8;j\\x{F6}ran@ex\\x{E4}mple.de\r\n"
    assert ready.send(line) == [RECIPIENT_OK]
    assert ready.policy.last(DecideRcpt).params.orcpt == ("utf-8", "jöran@exämple.de")


def test_rset(ready: Client) -> None:
    assert ready.send(b"RSET now\r\n") == [BAD_ARGUMENTS]
    ready.send(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n")
    assert ready.send(b"RSET\r\n") == [OK]
    assert ready.send(b"RCPT TO:<c@d.example>\r\n") == [NEED_MAIL]


def test_421_from_the_policy_closes(client: Factory) -> None:
    c = client(FakePolicy(rcpt_reject=Reply(421, "4.7.0", "Bye"), rejected_rcpts={"c@d.example"}))
    c.ehlo()
    replies = c.send(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nRCPT TO:<e@d.example>\r\n")
    assert replies == [SENDER_OK, Reply(421, "4.7.0", "Bye")]
    assert c.closed


def test_quit_in_a_pipeline(ready: Client) -> None:
    assert ready.send(b"MAIL FROM:<a@b.example>\r\nQUIT\r\nNOOP\r\n") == [SENDER_OK, CLOSING]
    assert ready.closed
