"""Receive connectors are data: `courriel receive-connector` changes apply to a running server.

A change applies to the next connection, without a restart (sessions already open keep the
settings they started with): MaxMessageSize, the inactivity timeout, RemoteIPRanges (a new
connector on the same binding for a narrower range wins for its clients: most specific range),
ProtocolLoggingLevel (Verbose writes RECV*.log, with AUTH credentials masked), ImplicitTls, and
Enabled (disabling the last connector of a binding closes its listener).
"""

from __future__ import annotations

import csv
import os
import smtplib
import socket
import time
from pathlib import Path

from courriel.core import replies as E
from courriel.transport.receive import replies as R
from tests.integration.mailserver import PASSWORD, MailServer
from tests.integration.server_state import (
    assert_not_delivered,
    connector_changed,
    delivered_once,
    greeting,
    poll,
    run,
    settled,
    token,
)
from tests.integration.smtp_wire import RawSmtp, b64, client_tls, message, plain_token, same

ALICE, BOB = "alice@example.test", "bob@example.test"
FRONTEND, CLIENT = "Default Frontend mx1", "Client Frontend mx1"


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def test_max_message_size_applies_to_the_next_connection(mailserver: MailServer) -> None:
    big, small, early = token("big"), token("small"), token("early")
    body = (b"y" * 1022 + b"\r\n") * 1200  # 1.2 MB
    port = mailserver.port("frontend")
    with RawSmtp(port) as before:
        assert "SIZE 37748736" in before.ehlo()
        with connector_changed(mailserver, FRONTEND, port, max_message_size="1MB"):
            with RawSmtp(port) as c:
                assert "SIZE 1048576" in c.ehlo()
                same(c.cmd("MAIL FROM:<someone@sender.test> SIZE=1200000"), E.MESSAGE_TOO_BIG)
                same(
                    c.transaction("someone@sender.test", [ALICE], message(big, body=body))[-1],
                    E.MESSAGE_TOO_BIG,
                )
                assert (
                    c.transaction(
                        "someone@sender.test", [ALICE], message(small, body=(b"z" * 998 + b"\r\n") * 100)
                    )[-1].code
                    == 250
                )
            # The session opened before the change keeps its settings.
            assert (
                before.transaction("someone@sender.test", [ALICE], message(early, body=body))[-1].code == 250
            )
    delivered_once(mailserver, [ALICE], small)
    delivered_once(mailserver, [ALICE], early)
    assert_not_delivered(mailserver, [ALICE], big)


def test_inactivity_timeout_applies_to_the_next_connection(mailserver: MailServer) -> None:
    port = mailserver.port("frontend")
    with connector_changed(mailserver, FRONTEND, port, connection_inactivity_timeout="1s"):
        c = RawSmtp(port, timeout=10)
        try:
            c.ehlo()
            started = time.monotonic()
            same(c.read(), E.TIMEOUT)
            assert time.monotonic() - started < 5
            assert c.closed_by_server()
        finally:
            c.close()


def test_connections_per_source_are_limited_per_connector(mailserver: MailServer) -> None:
    """MaxInboundConnectionPerSource counts this connector's sessions from one address, no others.

    Each worker process counts its own sessions (the kernel spreads connections over them), so
    the first refusal comes after between `limit` and `limit × workers` accepted sessions.
    """
    port, source, limit = mailserver.port("frontend"), "127.0.0.11", 2
    workers = mailserver.config.workers or os.cpu_count() or 1
    with connector_changed(mailserver, FRONTEND, port, max_inbound_connection_per_source=str(limit)):
        open_sessions = [RawSmtp(mailserver.port("client"), source=source) for _ in range(2 * workers)]
        try:
            assert all(c.greeting.code == 220 for c in open_sessions)  # sessions of another connector
            while len(open_sessions) < 2 * workers + limit * workers + 1:
                c = RawSmtp(port, source=source)
                if c.greeting.code != 220:
                    break
                open_sessions.append(c)
            accepted = len(open_sessions) - 2 * workers
            assert limit <= accepted <= limit * workers, accepted
            same(c.greeting, R.TOO_MANY_FROM_SOURCE)
            assert c.closed_by_server()
            with RawSmtp(port, source="127.0.0.12") as other:  # another address is not affected
                assert other.greeting.code == 220
            for c in open_sessions[2 * workers :]:
                c.quit()
            settled(
                lambda: greeting(mailserver, port, source),
                lambda t: t.startswith("applied-"),
                what="free slots",
            )
        finally:
            for c in open_sessions:
                c.close()


def test_most_specific_remote_ip_range_wins(mailserver: MailServer) -> None:
    """A connector for 127.0.0.1/32 on the Default Frontend's binding, for clients that must log in."""
    name, mark = "Lab mx1", token("lab")
    port = mailserver.port("frontend")
    default = greeting(mailserver, port)
    run(
        mailserver,
        "receive-connector",
        "new",
        name,
        "--transport-role",
        "FrontendTransport",
        "--bindings",
        "127.0.0.1:25",
        "--remote-ip-ranges",
        "127.0.0.1/32",
        "--permission-groups",
        "ExchangeUsers",
        "--auth-mechanism",
        "Tls,BasicAuth",
        "--banner",
        "220 lab.example.test lab connector",
    )
    try:
        settled(
            lambda: greeting(mailserver, port),
            lambda text: text == "lab.example.test lab connector",
            what=name,
        )
        with RawSmtp(port) as c:  # from 127.0.0.1: the lab connector
            assert "AUTH PLAIN LOGIN" in c.ehlo()
            same(c.cmd("MAIL FROM:<someone@sender.test>"), E.AUTH_REQUIRED)
            same(c.auth_plain(ALICE, PASSWORD), R.AUTH_OK)
            assert c.transaction(ALICE, [BOB, "lab@external.test"], message(mark))[-1].code == 250
        with RawSmtp(port, source="127.0.0.2") as c:  # anyone else: the Default Frontend
            assert c.greeting.text.startswith("mx1.example.test Courriel ESMTP")
            assert not any(f.startswith("AUTH") for f in c.ehlo())
            answers = c.transaction("someone@sender.test", [ALICE, "lab@external.test"], message(mark))
            same(answers[2], R.RELAY_DENIED)
            assert answers[-1].code == 250
        delivered_once(mailserver, [ALICE, BOB], mark)
    finally:
        run(mailserver, "receive-connector", "remove", name)
    settled(
        lambda: greeting(mailserver, port),
        lambda text: text.split(" at ")[0] == default.split(" at ")[0],
        what="removal",
    )


def test_protocol_log_records_sessions_but_never_credentials(mailserver: MailServer) -> None:
    logs = Path(mailserver.config.data_dir) / "logs" / "protocol" / "smtp-receive"
    frontend_helo, quiet_helo, client_helo = token("frontend"), token("quiet"), token("client")
    secret = f"{token('secret')}-{PASSWORD}"
    with RawSmtp(mailserver.port("frontend")) as c:  # Verbose by default on Default Frontend
        c.ehlo(frontend_helo)
        c.cmd(f"AUTH PLAIN {plain_token(ALICE, secret)}")
        c.transaction("someone@sender.test", [ALICE], message(frontend_helo))
    with RawSmtp(mailserver.port("client")) as c:  # None by default on Client Frontend
        c.ehlo(quiet_helo)
    with (
        connector_changed(mailserver, CLIENT, mailserver.port("client"), protocol_logging_level="Verbose"),
        RawSmtp(mailserver.port("client")) as c,
    ):
        c.ehlo(client_helo)
        c.starttls(client_tls(str(mailserver.config.tls_certificate)))
        c.ehlo(client_helo)
        same(c.auth_login(ALICE, secret), R.AUTH_UNSUCCESSFUL)
        same(c.cmd(f"AUTH PLAIN {plain_token(ALICE, secret)}"), R.AUTH_UNSUCCESSFUL)

    def sessions() -> dict[str, list[tuple[str, str, str]]]:
        by_session: dict[str, list[tuple[str, str, str]]] = {}
        for path in sorted(logs.glob("RECV*.log")):
            with path.open(encoding="utf-8", newline="") as fh:
                for row in csv.DictReader(fh):
                    by_session.setdefault(row["session-id"], []).append(
                        (row["connector-id"], row["event"], row["data"])
                    )
        return by_session

    def session_of(helo: str) -> list[tuple[str, str, str]]:
        return next(
            (rows for rows in sessions().values() if ("<", f"EHLO {helo}") in [(e, d) for _, e, d in rows]),
            [],
        )

    frontend = poll(
        lambda: session_of(frontend_helo), lambda rows: ("-", "") in [(e, d) for _, e, d in rows], what="log"
    )
    assert {c for c, _, _ in frontend} == {FRONTEND}
    lines = [(e, d) for _, e, d in frontend]
    assert lines[0][0] == "+" and lines[0][1].startswith("127.0.0.1:")
    assert ("<", "AUTH PLAIN ****") in lines
    assert ("<", "MAIL FROM:<someone@sender.test>") in lines and ("<", f"RCPT TO:<{ALICE}>") in lines
    assert ("<", "QUIT") in lines and (">", "221 2.0.0 Service closing transmission channel") in lines
    client = poll(
        lambda: session_of(client_helo), lambda rows: ("-", "") in [(e, d) for _, e, d in rows], what="log"
    )
    assert {c for c, _, _ in client} == {CLIENT}
    assert [d for _, e, d in client if e == "<" and d.startswith("AUTH")] == ["AUTH LOGIN", "AUTH PLAIN ****"]
    assert session_of(quiet_helo) == []
    text = "".join(p.read_text(encoding="utf-8") for p in logs.glob("RECV*.log"))
    for credential in (secret, b64(secret), plain_token(ALICE, secret), PASSWORD):
        assert credential not in text


def test_implicit_tls_connector(mailserver: MailServer) -> None:
    """A connector with ImplicitTls speaks TLS from the first byte (RFC 8314 §3), on a new binding."""
    name, mark = "Submissions mx1", token("smtps")
    seed_port = 1465
    port = seed_port + mailserver.offset
    run(
        mailserver,
        "receive-connector",
        "new",
        name,
        "--usage",
        "Client",
        "--transport-role",
        "FrontendTransport",
        "--bindings",
        f"127.0.0.1:{seed_port}",
        "--implicit-tls",
        "true",
    )
    try:
        poll(lambda: listening(port), bool, what=f"{name} to listen")
        context = client_tls(str(mailserver.config.tls_certificate))
        with smtplib.SMTP_SSL("127.0.0.1", port, context=context, timeout=15) as smtp:
            smtp.ehlo("laptop.test")
            assert "starttls" not in smtp.esmtp_features
            smtp.login(ALICE, PASSWORD)
            assert smtp.sendmail(ALICE, [BOB], message(mark)) == {}
        delivered_once(mailserver, [BOB], mark)
    finally:
        run(mailserver, "receive-connector", "remove", name)
    poll(lambda: listening(port), lambda up: not up, what=f"{name} to stop listening")


def test_disabling_a_connector_closes_its_listener(mailserver: MailServer) -> None:
    name, port = "Outbound Proxy Frontend mx1", mailserver.port("outbound_proxy")
    assert listening(port)
    run(mailserver, "receive-connector", "set", name, "--enabled", "false")
    try:
        poll(lambda: listening(port), lambda up: not up, what=f"{name} to close")
        assert listening(mailserver.port("frontend"))  # the others are untouched
    finally:
        run(mailserver, "receive-connector", "set", name, "--enabled", "true")
    poll(lambda: listening(port), bool, what=f"{name} to listen again")
    with RawSmtp(port) as c:
        same(c.cmd("MAIL FROM:<someone@sender.test>"), E.NEED_HELO)
