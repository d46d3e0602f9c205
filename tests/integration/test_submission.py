"""Message submission on "Client Frontend" (587) and "Client Proxy" (465): TLS, AUTH, send-as.

RFC 3207 and Exchange's BasicAuthRequireTLS: AUTH is neither offered nor accepted before
STARTTLS (538 5.7.11, RFC 4954 §6); MAIL before AUTH gets 530 5.7.0. After TLS, AUTH PLAIN
(RFC 4616) and LOGIN work, a wrong password gets 535 5.7.8 and repeated failures are throttled
per address and per user (454 4.7.0 even with the right password). An authenticated user may
send anywhere (external mail waits in Unreachable: no send connector), but only as one of their
own addresses (550 5.7.60); a submission gets Message-ID and Date when it lacks them (RFC 6409 §8).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import email.utils
import os
import re
import smtplib
from pathlib import Path
from select import select as wait_readable
from typing import Any

from sqlalchemy import select

from courriel.core import replies as E
from courriel.transport.queue.inspect import queue_paths
from courriel.transport.queue.schema import messages, recipients
from courriel.transport.queue.store import QueueStore
from courriel.transport.receive import replies as R
from tests.integration.mailserver import PASSWORD, MailServer
from tests.integration.server_state import (
    cli,
    delivered_once,
    header_block,
    run,
    settled,
    token,
    unreachable,
    unreachable_count,
)
from tests.integration.smtp_wire import Answer, RawSmtp, client_tls, dot_stuffed, message, plain_token, same

ALICE, BOB = "alice@example.test", "bob@example.test"


def submission(
    server: MailServer, port: str = "client", *, source: str = "127.0.0.1", user: str | None = ALICE
) -> RawSmtp:
    """A session on a client connector, after STARTTLS and EHLO; authenticated as `user` if given."""
    c = RawSmtp(server.port(port), source=source)
    c.ehlo("laptop.test")
    c.starttls(client_tls(str(server.config.tls_certificate)))
    c.ehlo("laptop.test")
    if user is not None:
        same(c.auth_plain(user, PASSWORD), R.AUTH_OK)
    return c


def queue_id(done: Answer) -> str:
    match = re.search(r"\[InternalId=(\w+)\]", done.text)
    assert done.code == 250 and match, done
    return match.group(1)


def test_repeated_failures_are_throttled(mailserver: MailServer) -> None:
    """Many quick failures for carol: then a login as carol is refused at once (454 4.7.0), even
    with her password and from another address; alice is not affected.

    Each worker process of the server keeps its own throttle and the kernel spreads connections
    over them, so there are enough guesses (16 per worker) for every worker to count five. First
    in the module: the server's sessions that delay the failures (up to 15 s) end while the other
    tests run, not while the server stops."""
    carol = f"{token('carol')}@example.test"
    run(mailserver, "mailbox", "new", carol, "--password-stdin", input=PASSWORD)

    def rcpt_carol() -> int:
        with RawSmtp(mailserver.port("frontend")) as c:
            c.ehlo()
            c.cmd("MAIL FROM:<someone@sender.test>")
            return c.cmd(f"RCPT TO:<{carol}>").code

    settled(rcpt_carol, lambda code: code == 250, what=f"every worker to know {carol}")
    workers = mailserver.config.workers or os.cpu_count() or 1
    sources = ("127.0.0.7", "127.0.0.17", "127.0.0.27")  # under MaxInboundConnectionPerSource
    guesses = [submission(mailserver, source=sources[i % 3], user=None) for i in range(16 * workers)]
    try:
        for g in guesses:  # all at once: the server's delay after each failure does not slow this test
            g.write(f"AUTH PLAIN {plain_token(carol, 'guess')}\r\n".encode())
        # Each worker answers its failures after 1, 2, 4, 8, 15 … s.
        readable, _, _ = wait_readable([g.sock for g in guesses], [], [], 10)
        first = next(g for g in guesses if g.sock in readable)
        same(first.read(), R.AUTH_UNSUCCESSFUL)

        def refused_at_once() -> bool:
            """A wrong guess now: 454 at once when blocked, a delayed 535 (a new failure) if not."""
            with submission(mailserver, source="127.0.0.8", user=None) as c:
                c.sock.settimeout(0.8)
                try:
                    return c.auth_plain(carol, "guess").is_(R.AUTH_BLOCKED)
                except OSError:  # the read timed out: the failure is being delayed
                    return False

        settled(refused_at_once, bool, what=f"every worker to block {carol}")
        with submission(mailserver, source="127.0.0.9", user=None) as c:
            same(c.auth_plain(carol, PASSWORD), R.AUTH_BLOCKED)  # the right password changes nothing
            same(c.auth_login(carol, PASSWORD), R.AUTH_BLOCKED)
        with submission(mailserver, user=None) as c:
            same(c.auth_plain(ALICE, PASSWORD), R.AUTH_OK)
    finally:
        for g in guesses:
            g.close()


def server_ca(mailserver: MailServer, port: str) -> Path:
    """What a port's certificate chains to: connectors that servers of the organization use
    (Client Proxy) present the organization's certificate, the others the server's own."""
    if port == "client_proxy":
        return mailserver.config.data_dir / "tls" / "org-ca.crt"
    return mailserver.config.tls_certificate


def test_ehlo_before_starttls_offers_starttls_and_no_auth(mailserver: MailServer) -> None:
    for port in ("client", "client_proxy"):
        with RawSmtp(mailserver.port(port)) as c:
            features = c.ehlo()
            assert "STARTTLS" in features
            assert not any(f.startswith("AUTH") for f in features), (port, features)
            c.starttls(client_tls(str(server_ca(mailserver, port))))
            features = c.ehlo()
            assert "AUTH PLAIN LOGIN" in features and "STARTTLS" not in features


def test_auth_and_mail_before_tls_are_refused(mailserver: MailServer) -> None:
    with RawSmtp(mailserver.port("client")) as c:
        c.ehlo()
        same(c.cmd(f"MAIL FROM:<{ALICE}>"), E.AUTH_REQUIRED)
        same(c.auth_plain(ALICE, PASSWORD), E.AUTH_ENCRYPTION_REQUIRED)
        same(c.cmd("AUTH LOGIN"), E.AUTH_ENCRYPTION_REQUIRED)
        same(c.cmd(f"RCPT TO:<{BOB}>"), E.NEED_MAIL)


def test_mail_after_tls_but_before_auth_is_refused(mailserver: MailServer) -> None:
    with submission(mailserver, user=None) as c:
        same(c.cmd(f"MAIL FROM:<{ALICE}>"), E.AUTH_REQUIRED)


def test_auth_plain_then_send(mailserver: MailServer) -> None:
    mark = token("plain")
    with submission(mailserver) as c:
        same(c.auth_plain(ALICE, PASSWORD), E.ALREADY_AUTHENTICATED)  # RFC 4954 §4
        answers = c.transaction(ALICE, [BOB], message(mark, sender=ALICE, to=BOB))
    same(answers[0], R.SENDER_OK)
    same(answers[1], R.RECIPIENT_OK)
    raw = delivered_once(mailserver, [BOB], mark)[BOB]
    trace = " ".join(header_block(raw).split())
    assert trace.startswith(
        "Received: from laptop.test ([127.0.0.1]) by mx1.example.test (Courriel) with ESMTPSA (TLS) id "
    )


def test_auth_login_with_an_alias_as_user_name(mailserver: MailServer) -> None:
    mark = token("login")
    with RawSmtp(mailserver.port("client")) as c:
        c.ehlo()
        c.starttls(client_tls(str(mailserver.config.tls_certificate)))
        c.ehlo()
        same(c.auth_login("Alice.Smith@example.test", PASSWORD), R.AUTH_OK)
        assert c.transaction(ALICE, [BOB], message(mark))[-1].code == 250
    delivered_once(mailserver, [BOB], mark)


def test_wrong_password_gets_535_and_the_right_one_then_works(mailserver: MailServer) -> None:
    with submission(mailserver, source="127.0.0.3", user=None) as c:
        same(c.auth_plain(BOB, "wrong-password"), R.AUTH_UNSUCCESSFUL)
        same(c.auth_login(BOB, "wrong-again"), R.AUTH_UNSUCCESSFUL)
        same(c.auth_plain(BOB, PASSWORD), R.AUTH_OK)


def test_authenticated_user_may_send_anywhere_external_waits_in_unreachable(mailserver: MailServer) -> None:
    mark = token("outside")
    external = f"{mark}@external.test"
    before = unreachable(mailserver)
    with submission(mailserver) as c:
        same(c.cmd(f"MAIL FROM:<{ALICE}> RET=HDRS ENVID={mark}"), R.SENDER_OK)
        same(c.cmd(f"RCPT TO:<{external}> NOTIFY=FAILURE,DELAY ORCPT=rfc822;{external}"), R.RECIPIENT_OK)
        same(c.cmd(f"RCPT TO:<{BOB}>"), R.RECIPIENT_OK)
        same(c.cmd("DATA"), E.START_MAIL_INPUT)
        qid = queue_id(c.send(dot_stuffed(message(mark, sender=ALICE, to=external)) + b".\r\n")[0])
    delivered_once(mailserver, [BOB], mark)
    new = {k: v for k, v in unreachable(mailserver).items() if k not in before}
    assert new == {f"mx1\\Unreachable\\{qid}": [external]}
    assert unreachable_count(mailserver) == len(before) + 1
    [row] = [m for m in cli(mailserver, "queue", "messages", "Unreachable") if m["identity"].endswith(qid)]
    assert row["from"] == ALICE and row["status"] == "retry"
    assert row["last_error"] == "451 4.4.0 No send connector routes mail to external.test"
    envelope, rcpts = asyncio.run(_queued(mailserver, qid))
    assert (envelope["ret"], envelope["envid"]) == ("HDRS", mark)  # RFC 3461 parameters are kept
    assert rcpts[external] == {"notify": "FAILURE,DELAY", "orcpt": f"rfc822;{external}"}


def test_sending_as_someone_else_is_refused(mailserver: MailServer) -> None:
    with submission(mailserver) as c:
        same(c.cmd(f"MAIL FROM:<{BOB}>"), R.SEND_AS_DENIED)
        same(c.cmd("MAIL FROM:<someone@sender.test>"), R.SEND_AS_DENIED)
        same(c.cmd("MAIL FROM:<>"), R.SEND_AS_DENIED)
        same(c.cmd("MAIL FROM:<alice%sender.test@example.test>"), R.SEND_AS_DENIED)
        same(c.cmd("DATA"), E.NEED_MAIL)


def test_sending_as_an_own_alias_is_accepted(mailserver: MailServer) -> None:
    marks = []
    with submission(mailserver) as c:
        for sender in ("Alice.Smith@example.test", "ALICE.SMITH@EXAMPLE.TEST", "ALICE@example.test"):
            marks.append(token("alias"))
            answers = c.transaction(sender, [BOB], message(marks[-1], sender=sender))
            same(answers[0], R.SENDER_OK)
            assert answers[-1].code == 250
    for mark in marks:
        delivered_once(mailserver, [BOB], mark)


def test_submission_gets_message_id_and_date(mailserver: MailServer) -> None:
    mark = token("bare")
    with submission(mailserver) as c:
        done = c.transaction(ALICE, [BOB], message(mark, message_id=False, date=False))[-1]
    parsed = email.message_from_bytes(
        delivered_once(mailserver, [BOB], mark)[BOB], policy=email.policy.compat32
    )
    message_id = parsed["Message-ID"]
    assert re.fullmatch(r"<\w+@mx1\.example\.test>", message_id), message_id
    assert done.text.startswith(f"2.6.0 {message_id} [InternalId=")  # the 250 names it too
    assert email.utils.parsedate_to_datetime(parsed["Date"]) is not None and parsed["Date"].endswith(" +0000")
    assert len(parsed.get_all("Message-ID", [])) == 1 and len(parsed.get_all("Date", [])) == 1
    # A message that has both keeps them as they are.
    kept = token("kept")
    with submission(mailserver) as c:
        c.transaction(ALICE, [BOB], message(kept))
    parsed = email.message_from_bytes(
        delivered_once(mailserver, [BOB], kept)[BOB], policy=email.policy.compat32
    )
    assert parsed.get_all("Message-ID") == [f"<{kept}@sender.test>"]
    assert parsed.get_all("Date") == ["Mon, 2 Nov 2026 10:00:00 +0000"]


def test_client_proxy_serves_authenticated_users(mailserver: MailServer) -> None:
    mark = token("proxy")
    with RawSmtp(mailserver.port("client_proxy")) as c:
        c.ehlo()
        same(c.cmd(f"MAIL FROM:<{ALICE}>"), E.AUTH_REQUIRED)
        c.starttls(client_tls(str(server_ca(mailserver, "client_proxy"))))
        c.ehlo()
        same(c.cmd(f"MAIL FROM:<{ALICE}>"), E.AUTH_REQUIRED)
        same(c.auth_login(ALICE, PASSWORD), R.AUTH_OK)
        same(c.cmd(f"MAIL FROM:<{BOB}>"), R.SEND_AS_DENIED)
        answers = c.transaction(ALICE, [BOB, f"{mark}@external.test"], message(mark))
    assert [a.code for a in answers] == [250, 250, 250, 354, 250]
    delivered_once(mailserver, [BOB], mark)
    assert [f"{mark}@external.test"] in unreachable(mailserver).values()


def test_smtplib_submission(mailserver: MailServer) -> None:
    mark = token("smtplib")
    with smtplib.SMTP("127.0.0.1", mailserver.port("client"), timeout=15) as smtp:
        smtp.starttls(context=client_tls(str(mailserver.config.tls_certificate)))
        smtp.login(ALICE, PASSWORD)
        refused = smtp.sendmail(ALICE, [BOB, "nobody@example.test"], message(mark, message_id=False))
    assert refused == {"nobody@example.test": (550, R.UNKNOWN_RECIPIENT.encode()[4:].strip())}
    delivered_once(mailserver, [BOB], mark)


async def _queued(server: MailServer, qid: str) -> tuple[dict[str, Any], dict[str, dict[str, str | None]]]:
    """The envelope of a queued message and its recipients' DSN parameters, from the queue file of
    the worker that took it (each worker process has its own)."""
    for path in queue_paths(server.config):
        store = await QueueStore.open(path)
        try:
            async with store.reader.connect() as conn:
                envelope = (
                    await conn.execute(select(messages.c.envelope).where(messages.c.id == qid))
                ).scalar_one_or_none()
                if envelope is None:
                    continue
                rows = (
                    await conn.execute(
                        select(recipients.c.address, recipients.c.notify, recipients.c.orcpt).where(
                            recipients.c.message == qid
                        )
                    )
                ).all()
        finally:
            await store.close()
        return dict(envelope), {r.address: {"notify": r.notify, "orcpt": r.orcpt} for r in rows}
    raise AssertionError(f"message {qid} is in no queue file")
