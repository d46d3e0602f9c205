"""Queue management against a running server: `courriel queue suspend|resume|remove|show|retry`.

Mail from alice to an external domain waits in Unreachable (no send connector routes it); the
commands change it in the server's queue files while the server runs, and the server acts on
the change within about a second (the change mark, transport/service.py). Remove-Message
-WithNDR sends alice a multipart/report; without it nothing reaches her. Retry-Queue after a
send connector is added moves the message to a sink at once instead of at the next retry.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator

import pytest

from courriel.transport.queue.manage import REMOVED
from tests.integration.mailserver import MailServer
from tests.integration.outbound_env import Peer
from tests.integration.server_state import cli, found, poll, run, token, tracking, unreachable
from tests.integration.test_submission import queue_id, submission

ALICE = "alice@example.test"


def queued(server: MailServer, domain: str = "external.test") -> tuple[str, str, str]:
    """Alice sends one message to `mark@domain`; returns (mark, recipient, queue id)."""
    mark = token("qm")
    rcpt = f"{mark}@{domain}"
    with submission(server) as c:
        qid = queue_id(c.transaction(ALICE, [rcpt], _message(mark, rcpt))[-1])
    assert f"mx1\\Unreachable\\{qid}" in unreachable(server)
    return mark, rcpt, qid


def _message(mark: str, rcpt: str) -> bytes:
    return f"From: {ALICE}\r\nTo: {rcpt}\r\nSubject: {mark}\r\n\r\nbody {mark}\r\n".encode()


def status_of(server: MailServer, qid: str) -> str | None:
    rows = [m for m in cli(server, "queue", "messages") if m["identity"].endswith(qid)]
    return rows[0]["status"] if rows else None


def test_suspend_then_resume(mailserver: MailServer) -> None:
    _, rcpt, qid = queued(mailserver)
    [changed] = cli(mailserver, "queue", "suspend", qid)
    assert changed["status"] == "suspended" and changed["recipients"] == [rcpt]
    assert status_of(mailserver, qid) == "suspended"
    # First in the module: this message is all the Unreachable queue holds.
    [queue] = [q for q in cli(mailserver, "queue", "list") if q["identity"] == "mx1\\Unreachable"]
    assert (queue["status"], queue["message_count"]) == ("Suspended", 1)
    assert cli(mailserver, "queue", "suspend", qid) == []  # nothing left to suspend
    [changed] = cli(mailserver, "queue", "resume", f"mx1\\Unreachable\\{qid}")
    assert changed["status"] == "ready"
    # The server's scan (started by the change mark) finds no route yet: back to retry.
    poll(lambda: status_of(mailserver, qid), lambda s: s == "retry", what="the resumed message to be retried")
    events = {(e["event_id"], e["source"]) for e in tracking(mailserver, "--recipient", rcpt)}
    assert ("DEFER", "ADMIN") in events


def test_show_prints_envelope_recipients_and_headers(mailserver: MailServer) -> None:
    mark, rcpt, qid = queued(mailserver)
    shown = cli(mailserver, "queue", "show", qid)
    assert shown["identity"] == f"mx1\\{qid}" and shown["from"] == ALICE and shown["subject"] == mark
    [r] = shown["recipients"]
    assert (r["address"], r["status"], r["queue"]) == (rcpt, "retry", "Unreachable")
    assert r["last_error"] == "451 4.4.0 No send connector routes mail to external.test"
    assert f"Subject: {mark}" in shown["headers"] and "Received: " in shown["headers"]
    assert f"body {mark}" not in shown["headers"]
    text = run(mailserver, "queue", "show", qid)
    assert rcpt in text and f"Subject: {mark}" in text and "Unreachable" in text


def test_remove_without_ndr_is_silent(mailserver: MailServer) -> None:
    mark, rcpt, qid = queued(mailserver)
    [changed] = cli(mailserver, "queue", "remove", qid)
    assert changed["status"] == "failed"
    assert status_of(mailserver, qid) is None
    drops = tracking(mailserver, "--recipient", rcpt, "--event-id", "DROP")
    assert [(d["source"], d["recipient_status"]) for d in drops] == [("ADMIN", REMOVED)]
    assert found(mailserver, ALICE, mark) == []


def test_remove_with_ndr_reports_to_the_sender(mailserver: MailServer) -> None:
    mark, rcpt, qid = queued(mailserver)
    cli(mailserver, "queue", "remove", qid, "--with-ndr")
    assert status_of(mailserver, qid) is None
    [ndr] = poll(lambda: found(mailserver, ALICE, mark), bool, what="the NDR in alice's Inbox")
    assert b"multipart/report" in ndr and rcpt.encode() in ndr and b"5.3.2" in ndr
    events = {(e["event_id"], e["source"]) for e in tracking(mailserver, "--recipient", rcpt)}
    assert {("FAIL", "ADMIN"), ("DSN", "DSN")} <= events


def test_unknown_message_is_an_error(mailserver: MailServer) -> None:
    for verb in ("suspend", "resume", "remove", "show"):
        result = mailserver.courriel("queue", verb, "01NOSUCHMESSAGE")
        assert result.returncode == 1, (verb, result)
        assert "no message 01NOSUCHMESSAGE in the queues of mx1" in result.stderr
    result = mailserver.courriel("queue", "retry")
    assert result.returncode == 2 and "--all" in result.stderr


@pytest.fixture
def sink() -> Iterator[Peer]:
    """A remote SMTP server on a free loopback port, in a thread of its own."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    loop = asyncio.new_event_loop()
    peer = Peer("127.0.0.1", port)
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(peer.start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield peer
    finally:
        asyncio.run_coroutine_threadsafe(peer.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_retry_after_a_send_connector_is_added(mailserver: MailServer, sink: Peer) -> None:
    mark, rcpt, qid = queued(mailserver, "sink.test")
    run(
        mailserver,
        "send-connector",
        "new",
        "Sink",
        "--address-spaces",
        "sink.test",
        "--smart-hosts",
        "127.0.0.1",
        "--port",
        str(sink.port),
        "--dns-routing-enabled",
        "false",
    )

    # The workers load the new connector within ~1 s; retry until the scan it starts routes the message.
    def arrived() -> bool:
        if not any(mark in m.data.decode("utf-8", "replace") for m in sink.messages):
            run(mailserver, "queue", "retry", "Unreachable", "--json")
        return any(mark in m.data.decode("utf-8", "replace") for m in sink.messages)

    poll(arrived, bool, timeout=8, what="the message at the sink")
    [got] = [m for m in sink.messages if mark in m.data.decode("utf-8", "replace")]
    assert got.sender == ALICE and got.recipients == [rcpt]
    poll(lambda: status_of(mailserver, qid), lambda s: s is None, what="the message to leave the queue")
    assert all(
        c["status"] == "retry" for c in json.loads(run(mailserver, "queue", "retry", "--all", "--json"))
    )
