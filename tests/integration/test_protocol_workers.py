"""IMAP4 and POP3 back ends in every worker process of `courriel serve` (SO_REUSEPORT).

A real server with `workers = 2`, on SQLite and PostgreSQL. The kernel spreads connections over
the workers, so a dozen connections reach both (all on one worker: a 1-in-2048 chance):
- twelve IMAP sessions in IDLE all hear of one message delivered by SMTP, whichever worker
  delivered it (the other worker's sessions only through its change feed: services/imap/feed.py);
- while one POP3 session holds a maildrop, logins to it through either worker get [IN-USE]
  (the lock file in the data directory, services/pop3/maildrop.py), and once it quits the next
  login succeeds;
- COMPRESS=DEFLATE works through the Client Access front end (993), which relays the bytes.
"""

from __future__ import annotations

import asyncio
import imaplib
import poplib
import smtplib
from collections.abc import Iterator
from email.message import EmailMessage

import pytest

from courriel.config import load_config
from courriel.org.directory import Directory
from tests.integration.mailserver import (
    PASSWORD,
    MailServer,
    engine_databases,
    no_verify_tls,
    organization_server,
)
from tests.integration.test_imap_compress import DeflateIMAP_SSL

HOST = "127.0.0.1"
IMAPS_BACKEND, POP3S_BACKEND, IMAPS_FRONTEND = 1993, 1995, 993
SESSIONS = 12


async def _enable(config_path: str) -> None:
    config = load_config(config_path)
    directory = await Directory.open(config.directory_url, config.data_dir)
    try:
        for protocol in ("imap", "pop"):
            await directory.set_protocol_settings(protocol, enabled=True)
    finally:
        await directory.close()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailServer]:
    with engine_databases(request.param) as urls:
        mail = organization_server(
            tmp_path_factory.mktemp(f"workers-{request.param}"),
            urls,
            workers=2,
            wait_ports=(IMAPS_BACKEND, POP3S_BACKEND, IMAPS_FRONTEND),
        )
        asyncio.run(_enable(str(mail.config_path)))
        mail.start()
        try:
            yield mail
        finally:
            mail.stop()


def test_idle_sessions_on_every_worker_hear_a_delivery(server: MailServer) -> None:
    sessions: list[imaplib.IMAP4_SSL] = []
    try:
        for _ in range(SESSIONS):
            imap = imaplib.IMAP4_SSL(
                HOST, IMAPS_BACKEND + server.offset, ssl_context=no_verify_tls(), timeout=20
            )
            imap.login("alice@example.test", PASSWORD)
            assert imap.select("INBOX")[0] == "OK"
            imap.send(b"i1 IDLE\r\n")
            assert imap.readline().startswith(b"+ ")
            sessions.append(imap)
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "s@example.net", "alice@example.test", "wake"
        message.set_content("hello\n")
        with smtplib.SMTP(HOST, server.port("frontend"), timeout=30) as smtp:
            smtp.send_message(message)
        heard = [imap.readline() for imap in sessions]  # each waits up to the 20 s timeout
        assert heard == [b"* 1 EXISTS\r\n"] * SESSIONS
    finally:
        for imap in sessions:
            imap.shutdown()


def test_the_pop3_maildrop_lock_holds_across_workers(server: MailServer) -> None:
    port = POP3S_BACKEND + server.offset
    holder = poplib.POP3_SSL(HOST, port, context=no_verify_tls(), timeout=20)
    holder.user("bob@example.test")
    assert holder.pass_(PASSWORD).startswith(b"+OK")
    refusals = []
    for _ in range(8):
        other = poplib.POP3_SSL(HOST, port, context=no_verify_tls(), timeout=20)
        other.user("bob@example.test")
        with pytest.raises(poplib.error_proto) as refused:
            other.pass_(PASSWORD)
        refusals.append(refused.value.args[0])
        other.quit()
    assert all(r.startswith(b"-ERR [IN-USE]") for r in refusals), refusals
    holder.quit()
    after = poplib.POP3_SSL(HOST, port, context=no_verify_tls(), timeout=20)
    after.user("bob@example.test")
    assert after.pass_(PASSWORD).startswith(b"+OK")
    after.quit()


def test_compress_through_the_front_end(server: MailServer) -> None:
    imap = DeflateIMAP_SSL(HOST, IMAPS_FRONTEND + server.offset, ssl_context=no_verify_tls(), timeout=20)
    imap.login("alice@example.test", PASSWORD)
    assert "COMPRESS=DEFLATE" in imap.capability()[1][0].decode().split()
    assert imap.compress() == ("OK", [b"DEFLATE active"])
    assert imap.select("INBOX")[0] == "OK"
    typ, data = imap.uid("SEARCH", "ALL")
    assert typ == "OK" and data[0] is not None
    assert imap.logout()[0] == "BYE"
