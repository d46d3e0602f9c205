"""The seed's split topology end to end: one Client Access server, two Mailbox servers, one
PostgreSQL directory, each server its own process on its own loopback address (tests/topology/
cluster.py). Clients and the Internet talk only to cas1, as they would in production."""

from __future__ import annotations

import asyncio
import email
import imaplib
import json
import poplib
import smtplib
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import postgres_available, require
from tests.integration.mailserver import PASSWORD, no_verify_tls
from tests.integration.outbound_env import Peer
from tests.topology.cluster import ALICE, BOB, Cluster, choose_offset

NO_VERIFY = no_verify_tls()
PEER_HOST = "127.0.0.20"  # a next hop outside the organization


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require(postgres_available(), "PostgreSQL at 127.0.0.1:5432")
    found = Cluster(tmp_path_factory.mktemp("topology"), choose_offset())
    asyncio.run(found.create())
    try:
        found.start()
        yield found
    finally:
        asyncio.run(found.destroy())


def courriel(cluster: Cluster, *args: str) -> str:
    done = cluster.servers["cas1"].courriel(*args)
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


def message(sender: str, to: list[str], token: str) -> bytes:
    return (
        f"From: {sender}\r\nTo: {', '.join(to)}\r\nSubject: {token}\r\nMessage-ID: <{token}@topology.test>\r\n\r\n"
        f"body {token}\r\n"
    ).encode()


def send_inbound(cluster: Cluster, to: list[str], token: str) -> None:
    """Mail from the Internet to cas1's Default Frontend (25)."""
    with smtplib.SMTP(*cluster.address("cas1", "smtp"), timeout=30) as smtp:
        smtp.sendmail("someone@elsewhere.test", to, message("someone@elsewhere.test", to, token))


def submit(cluster: Cluster, user: str, to: list[str], token: str) -> None:
    """An authenticated submission to cas1's Client Frontend (587)."""
    with smtplib.SMTP(*cluster.address("cas1", "submission"), timeout=30) as smtp:
        smtp.starttls(context=NO_VERIFY)
        smtp.login(user, PASSWORD)
        smtp.sendmail(user, to, message(user, to, token))


def imap_subjects(cluster: Cluster, user: str) -> list[str]:
    """Subjects in the user's Inbox, read through cas1's IMAP4 front end (993)."""
    host, port = cluster.address("cas1", "imaps")
    with imaplib.IMAP4_SSL(host, port, ssl_context=NO_VERIFY, timeout=30) as imap:
        imap.login(user, PASSWORD)
        imap.select("INBOX", readonly=True)
        _, data = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])") if _count(imap) else ("OK", [])
        return [
            str(email.message_from_bytes(part[1])["Subject"]) for part in data if isinstance(part, tuple)
        ]


def _count(imap: imaplib.IMAP4) -> int:
    _, data = imap.status("INBOX", "(MESSAGES)")
    return int(data[0].split(b"MESSAGES ")[1].rstrip(b")"))


def received_by(cluster: Cluster, user: str, token: str, server: str) -> str:
    """The Received field `server` added to the user's message with this subject ("" if none)."""
    host, port = cluster.address("cas1", "imaps")
    with imaplib.IMAP4_SSL(host, port, ssl_context=NO_VERIFY, timeout=30) as imap:
        imap.login(user, PASSWORD)
        imap.select("INBOX", readonly=True)
        _, data = imap.fetch("1:*", "(BODY.PEEK[HEADER])")
    for part in data:
        if not isinstance(part, tuple):
            continue
        headers = email.message_from_bytes(part[1])
        if headers["Subject"] == token:
            fields = [" ".join(str(r).split()) for r in headers.get_all("Received", [])]
            return next((r for r in fields if f" by {server}.example.test " in r), "")
    return ""


def wait_subjects(cluster: Cluster, user: str, wanted: set[str], timeout: float = 30.0) -> list[str]:
    """The Inbox's subjects once `wanted` are all there (or the timeout passed). A Mailbox server
    just started may not serve IMAP4 yet (MailServer waits for its SMTP ports only): the front
    end then says UNAVAILABLE, which is asked again until the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            subjects = imap_subjects(cluster, user)
        except imaplib.IMAP4.error as error:
            if "UNAVAILABLE" not in str(error) or time.monotonic() > deadline:
                raise
            subjects = []
        if wanted <= set(subjects) or time.monotonic() > deadline:
            return subjects
        time.sleep(0.3)


def test_internet_mail_reaches_users_on_both_mailbox_servers(cluster: Cluster) -> None:
    token = f"inbound-{uuid.uuid4().hex[:8]}"
    send_inbound(cluster, [ALICE, BOB], token)
    for user in (ALICE, BOB):
        assert wait_subjects(cluster, user, {token}).count(token) == 1, user


def test_pop3_through_the_front_end_reaches_each_back_end(cluster: Cluster) -> None:
    token = f"pop-{uuid.uuid4().hex[:8]}"
    send_inbound(cluster, [ALICE, BOB], token)
    for user in (ALICE, BOB):
        wait_subjects(cluster, user, {token})
        pop = poplib.POP3_SSL(*cluster.address("cas1", "pop3s"), context=NO_VERIFY, timeout=30)
        try:
            pop.user(user)
            pop.pass_(PASSWORD)
            count, _ = pop.stat()
            found = [b"".join(pop.top(i, 0)[1]) for i in range(1, count + 1)]
        finally:
            pop.quit()
        assert any(token.encode() in headers for headers in found), user


async def test_submission_to_both_servers_and_outside(cluster: Cluster) -> None:
    peer = await Peer(PEER_HOST, cluster.offset + 25).start()
    try:
        await asyncio.to_thread(
            courriel, cluster, "send-connector", "new", "Partner", "--address-space", "partner.test",
            "--smart-host", PEER_HOST, "--port", str(cluster.offset + 25),
        )
        await asyncio.sleep(2.5)  # the servers' directory caches follow within about a second
        token = f"submit-{uuid.uuid4().hex[:8]}"
        await asyncio.to_thread(submit, cluster, ALICE, [ALICE, BOB, "carol@partner.test"], token)
        for user in (ALICE, BOB):
            subjects = await asyncio.to_thread(wait_subjects, cluster, user, {token})
            assert subjects.count(token) == 1, user
        # Each hop between our servers leaves from the sender's own address, not the kernel's
        # default source (127.0.0.1): cas1 → mbx1 (Client Proxy), then mbx1 → mbx2 (intra-org).
        by_mbx1 = await asyncio.to_thread(received_by, cluster, ALICE, token, "mbx1")
        assert by_mbx1.startswith("from cas1.example.test ([127.0.0.10])"), by_mbx1
        by_mbx2 = await asyncio.to_thread(received_by, cluster, BOB, token, "mbx2")
        assert by_mbx2.startswith("from mbx1.example.test ([127.0.0.11])"), by_mbx2
        received = await peer.wait_for(1, timeout=30)
        assert received[0].recipients == ["carol@partner.test"]
        assert token.encode() in received[0].data
    finally:
        await peer.stop()


async def test_front_end_proxy_enabled_sends_through_the_client_access_server(cluster: Cluster) -> None:
    peer = await Peer(PEER_HOST, cluster.offset + 26).start()
    try:
        await asyncio.to_thread(
            courriel, cluster, "send-connector", "new", "Proxied", "--address-space", "proxied.test",
            "--smart-host", PEER_HOST, "--port", str(cluster.offset + 26), "--front-end-proxy-enabled", "true",
        )
        await asyncio.sleep(2.5)
        token = f"proxied-{uuid.uuid4().hex[:8]}"
        await asyncio.to_thread(submit, cluster, BOB, ["dave@proxied.test"], token)
        received = await peer.wait_for(1, timeout=30)
        assert received[0].recipients == ["dave@proxied.test"]
        # The last hop before the peer is cas1, the Client Access server.
        first_received = email.message_from_bytes(received[0].data)["Received"]
        assert "cas1.example.test" in str(first_received), first_received
    finally:
        await peer.stop()


def test_stopped_back_ends_give_temporary_errors_and_mail_flows_when_they_return(cluster: Cluster) -> None:
    for name in ("mbx1", "mbx2"):
        cluster.servers[name].stop()
    token = f"down-{uuid.uuid4().hex[:8]}"
    try:
        with pytest.raises(smtplib.SMTPResponseException) as refused:
            send_inbound(cluster, [ALICE], token)
        assert 400 <= refused.value.smtp_code < 500
        host, port = cluster.address("cas1", "imaps")
        with imaplib.IMAP4_SSL(host, port, ssl_context=NO_VERIFY, timeout=30) as imap:
            with pytest.raises(imaplib.IMAP4.error) as no:
                imap.login(ALICE, PASSWORD)
            assert "UNAVAILABLE" in str(no.value) or "temporar" in str(no.value).lower()
    finally:
        for name in ("mbx1", "mbx2"):
            cluster.servers[name].start()
    send_inbound(cluster, [ALICE], token)
    assert wait_subjects(cluster, ALICE, {token}).count(token) == 1


def test_one_mailbox_server_down_the_other_takes_the_mail(cluster: Cluster) -> None:
    """The front end falls back to another Mailbox server, which holds the mail for mbx1 until
    it returns: 250 to the Internet, delivered once when mbx1 is back."""
    cluster.servers["mbx1"].stop()
    token = f"fallback-{uuid.uuid4().hex[:8]}"
    try:
        send_inbound(cluster, [ALICE], token)
    finally:
        cluster.servers["mbx1"].start()
    assert wait_subjects(cluster, ALICE, {token}, timeout=90).count(token) == 1


def _senders(cluster: Cluster, to: list[str], prefix: str, stop: threading.Event, acked: list[str]) -> list[threading.Thread]:
    def run(worker: int) -> None:
        for i in range(200):  # bounded
            if stop.is_set():
                return
            token = f"{prefix}-{worker}-{i}"
            try:
                send_inbound(cluster, to, token)
            except (OSError, smtplib.SMTPException):
                time.sleep(0.2)
                continue
            acked.append(token)

    threads = [threading.Thread(target=run, args=(w,), daemon=True) for w in range(4)]
    for t in threads:
        t.start()
    return threads


@pytest.mark.parametrize("victim", ["cas1", "mbx1"])
def test_kill_9_loses_no_acknowledged_mail_and_makes_no_duplicates(cluster: Cluster, victim: str) -> None:
    prefix = f"kill-{victim}-{uuid.uuid4().hex[:6]}"
    stop, acked = threading.Event(), []
    threads = _senders(cluster, [ALICE], prefix, stop, acked)
    try:
        deadline = time.monotonic() + 30
        while len(acked) < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        cluster.servers[victim].kill()
        time.sleep(0.5)
        cluster.servers[victim].start()
        mark = len(acked)
        while len(acked) < mark + 10 and time.monotonic() < deadline + 30:
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert len(acked) >= 10
    # A backlog held by the other Mailbox server drains in rounds: the victim takes at most
    # MaxInboundConnectionPerSource (20) connections from it at once.
    subjects = wait_subjects(cluster, ALICE, set(acked), timeout=240)
    mine = [s for s in subjects if s.startswith(prefix)]
    assert set(acked) <= set(mine), sorted(set(acked) - set(mine))[:5]
    assert len(mine) == len(set(mine)), "a message was delivered twice"


def test_database_move_traffic_follows(cluster: Cluster) -> None:
    before = f"before-move-{uuid.uuid4().hex[:8]}"
    send_inbound(cluster, [BOB], before)
    wait_subjects(cluster, BOB, {before})
    courriel(cluster, "database", "move", "DB2", "--server", "mbx1")
    time.sleep(2.5)
    listed = json.loads(courriel(cluster, "database", "list", "--json"))
    assert [d["server"] for d in listed if d["name"] == "DB2"] == ["mbx1"]  # DB1 was there already
    after = f"after-move-{uuid.uuid4().hex[:8]}"
    send_inbound(cluster, [BOB], after)
    subjects = wait_subjects(cluster, BOB, {before, after})
    assert subjects.count(before) == 1 and subjects.count(after) == 1
