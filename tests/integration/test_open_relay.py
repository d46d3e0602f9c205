"""The open-relay suite: classic relay tricks, each refused, and nothing queued for the outside.

Every trick is sent without authentication (anonymous on "Default Frontend", or on a connector
that demands authentication) and must get a 5xx: 550 5.7.54 where relaying would be needed
(routing characters and address literals included, research §2), 501 5.1.3 / 5.5.4 for
addresses RFC 5321 §4.1.2 does not allow, 530 5.7.0 where the connector requires AUTH
(RFC 4954 §6). Then DATA must find no recipient, and the Unreachable queue (where mail for
external domains waits, there being no send connector) must hold nothing new. A control proves
that the queue check sees relayed mail: alice, authenticated, may send outside.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from courriel.core import replies as E
from courriel.core.replies import Reply
from courriel.transport.receive import replies as R
from tests.integration.mailserver import PASSWORD, MailServer
from tests.integration.server_state import delivered_once, token, unreachable, unreachable_count
from tests.integration.smtp_wire import RawSmtp, client_tls, dot_stuffed, message, same

SENDER = "someone@sender.test"


@dataclass(frozen=True)
class Trick:
    id: str
    to: str  # the RCPT TO argument as sent, angle brackets included
    expect: Reply
    sender: str = SENDER
    mail_params: str = ""
    port: str = "frontend"
    failed_auth: bool = False  # try AUTH with a wrong password first
    starttls: bool = False

    @property
    def refused_at_mail(self) -> bool:
        return self.expect.code == 530


TRICKS = [
    Trick("external-domain", "<user@external.test>", R.RELAY_DENIED),
    Trick("percent-hack", "<user%external.test@example.test>", R.ROUTING_DENIED),
    Trick("percent-hack-on-a-real-mailbox", "<alice%external.test@example.test>", R.ROUTING_DENIED),
    Trick("mixed-case-percent-hack", "<User%External.Test@EXAMPLE.test>", R.ROUTING_DENIED),
    Trick("bang-path", "<external.test!user@example.test>", R.ROUTING_DENIED),
    Trick("bang-and-percent", "<external.test!user%other.test@example.test>", R.ROUTING_DENIED),
    Trick("quoted-local-part-with-at", '<"user@external.test"@example.test>', R.ROUTING_DENIED),
    Trick("quoted-percent-hack", '<"user%external.test"@example.test>', R.ROUTING_DENIED),
    Trick("quoted-source-route", '<"@external.test:user"@example.test>', R.ROUTING_DENIED),
    Trick("source-route", "<@example.test:user@external.test>", R.RELAY_DENIED),
    Trick("source-route-two-hops", "<@example.test,@mx1.example.test:user@external.test>", R.RELAY_DENIED),
    Trick("ipv4-literal", "<user@[127.0.0.1]>", R.ROUTING_DENIED),
    Trick("ipv4-literal-of-a-real-mailbox", "<alice@[127.0.0.1]>", R.ROUTING_DENIED),
    Trick("ipv6-literal", "<user@[IPv6:::1]>", R.ROUTING_DENIED),
    Trick("trailing-dot-external", "<user@external.test.>", E.BAD_RECIPIENT_SYNTAX),
    Trick("trailing-dot-accepted-domain", "<alice@example.test.>", E.BAD_RECIPIENT_SYNTAX),
    Trick("upper-case-external", "<USER@EXTERNAL.TEST>", R.RELAY_DENIED),
    Trick("subdomain-of-accepted-domain", "<user@sub.example.test>", R.RELAY_DENIED),
    Trick("accepted-domain-as-prefix", "<user@example.test.external.test>", R.RELAY_DENIED),
    Trick("two-at-signs", "<user@external.test@example.test>", E.BAD_RECIPIENT_SYNTAX),
    Trick("percent-in-domain", "<user@external.test%example.test>", E.BAD_RECIPIENT_SYNTAX),
    Trick("no-angle-brackets", "user@external.test", E.BAD_ARGUMENTS),
    Trick("postmaster-of-external", "<postmaster@external.test>", R.RELAY_DENIED),
    Trick("null-sender", "<user@external.test>", R.RELAY_DENIED, sender=""),
    Trick(
        "unknown-sender-in-our-domain", "<user@external.test>", R.RELAY_DENIED, sender="nobody@example.test"
    ),
    Trick("spoofed-local-sender", "<user@external.test>", R.RELAY_DENIED, sender="alice@example.test"),
    Trick("utf8-external-with-smtputf8", "<用户@例子.测试>", R.RELAY_DENIED, mail_params="SMTPUTF8"),
    Trick("after-starttls", "<user@external.test>", R.RELAY_DENIED, starttls=True),
    Trick("after-failed-auth", "<user@external.test>", R.RELAY_DENIED, starttls=True, failed_auth=True),
    Trick("transport-connector-anonymous", "<user@external.test>", E.AUTH_REQUIRED, port="transport"),
    Trick(
        "transport-connector-after-failed-auth",
        "<user@external.test>",
        E.AUTH_REQUIRED,
        port="transport",
        failed_auth=True,
    ),
    Trick("client-frontend-without-auth", "<user@external.test>", E.AUTH_REQUIRED, port="client"),
    Trick(
        "client-frontend-tls-without-auth",
        "<user@external.test>",
        E.AUTH_REQUIRED,
        port="client",
        starttls=True,
    ),
    Trick("client-proxy-without-auth", "<user@external.test>", E.AUTH_REQUIRED, port="client_proxy"),
    Trick("outbound-proxy-without-auth", "<user@external.test>", E.AUTH_REQUIRED, port="outbound_proxy"),
]
CONTROL = "control@external.test"


def attempt(server: MailServer, trick: Trick, mark: str) -> None:
    """Play the trick and check the replies to MAIL, RCPT and DATA."""
    with RawSmtp(server.port(trick.port)) as c:
        c.ehlo("relay.test")
        if trick.starttls:
            c.starttls(client_tls(str(server.config.tls_certificate)))
            c.ehlo("relay.test")
        if trick.failed_auth:
            answer = c.auth_plain("relay@example.test", "not-the-password")
            assert answer.code in (502, 535), answer  # not offered here, or refused
        mail = c.cmd(f"MAIL FROM:<{trick.sender}>{' ' + trick.mail_params if trick.mail_params else ''}")
        rcpt = c.cmd(f"RCPT TO:{trick.to}")
        data = c.cmd("DATA")
        if data.code == 354:  # the trick got through: send the message so that it shows
            c.send(dot_stuffed(message(mark)) + b".\r\n")
    if trick.refused_at_mail:
        same(mail, trick.expect)
        same(rcpt, E.NEED_MAIL)
        same(data, E.NEED_MAIL)
    else:
        same(mail, R.SENDER_OK)
        same(rcpt, trick.expect)
        same(data, E.NO_VALID_RECIPIENTS)


@pytest.mark.parametrize("trick", TRICKS, ids=[t.id for t in TRICKS])
def test_relay_trick_is_refused_and_nothing_is_queued(mailserver: MailServer, trick: Trick) -> None:
    before = unreachable(mailserver)
    attempt(mailserver, trick, token(trick.id))
    after = unreachable(mailserver)
    new = {k: v for k, v in after.items() if k not in before}
    assert all(v == [CONTROL] for v in new.values()), f"queued for outside: {new}"


def test_control_local_mail_is_accepted(mailserver: MailServer) -> None:
    """The refusals above are not a connector that refuses everything."""
    mark = token("control-local")
    with RawSmtp(mailserver.port("frontend")) as c:
        c.ehlo()
        assert c.transaction(SENDER, ["alice@example.test"], message(mark))[-1].code == 250
    delivered_once(mailserver, ["alice@example.test"], mark)


def test_control_the_queue_check_sees_relayed_mail(mailserver: MailServer) -> None:
    """Authenticated, alice may send outside: the check used above sees such mail queued."""
    before = unreachable(mailserver)
    with RawSmtp(mailserver.port("client")) as c:
        c.ehlo()
        c.starttls(client_tls(str(mailserver.config.tls_certificate)))
        c.ehlo()
        same(c.auth_plain("alice@example.test", PASSWORD), R.AUTH_OK)
        assert c.transaction("alice@example.test", [CONTROL], message(token("control-relay")))[-1].code == 250
    new = {k: v for k, v in unreachable(mailserver).items() if k not in before}
    assert list(new.values()) == [[CONTROL]]


def test_the_queue_command_shows_nothing_but_the_control_for_outside(mailserver: MailServer) -> None:
    """After every trick, `courriel queue list --json` agrees: the Unreachable queue holds at most
    the control's message."""
    for trick in TRICKS[:3]:  # whatever the order the tests ran in, some tricks came before this
        attempt(mailserver, trick, token(trick.id))
    waiting = unreachable(mailserver)
    assert all(recipients == [CONTROL] for recipients in waiting.values()), waiting
    assert unreachable_count(mailserver) == len(waiting)
