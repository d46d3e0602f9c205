"""Outbound delivery end to end on loopback: send connectors, MX and smart hosts, TLS and AUTH,
per-recipient results, retries, limits, a real Postfix, and a kill -9 in mid-delivery.

The network layout (DNS zone, peer addresses) is in `outbound_env`; DSN content is checked in
`test_outbound_dsn.py`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from courriel.core.replies import Reply
from courriel.org.model import SendConnector
from courriel.transport.categorize.resolver import EnvelopeRecipient
from courriel.transport.deliver.connections import Connections
from tests.conftest import require_tool
from tests.dnsserver import DnsServer
from tests.integration.outbound_env import (  # noqa: F401 (fixtures)
    INTERNET,
    MX_PORT,
    ROOT,
    SENDER,
    ZONE,
    Directory,
    Outbound,
    Peer,
    bounces_fixture,
    build_outbound,
    dns_fixture,
    out_fixture,
    peer_tls,
)


async def test_mx_preference_and_fallback(out: Outbound) -> None:
    peer = await Peer("127.0.0.122", MX_PORT, name="mx-b.pref.test").start()
    try:
        await out.submit(SENDER, ["bob@pref.test"])
        (got,) = await peer.wait_for(1)
        assert got.recipients == ["bob@pref.test"] and got.sender == SENDER
        assert peer.helo_names == [out.service.fqdn]  # EHLO name: the server FQDN (no connector Fqdn)
        await out.until(lambda: out.events("SEND"), what="SEND event")
        (send,) = out.events("SEND")
        assert send["server_ip"] == "127.0.0.122" and send["recipient_status"].startswith("250 ")
        assert send["detail"] == "remote host mx-b.pref.test" and send["connector"] == "Internet"
        assert await out.rows() == []  # finished and removed
        log = (out.root / "protocol").glob("SEND*.log")
        text = "".join(p.read_text() for p in log)
        assert "connected to 127.0.0.122" in text and "MAIL FROM:<alice@sender.test>" in text
    finally:
        await peer.stop()


async def test_every_mx_is_tried_before_deferring(out: Outbound) -> None:
    peer = await Peer("127.0.0.126", MX_PORT, greeting=Reply(554, "5.7.1", "Not here")).start()
    try:
        await out.submit(SENDER, ["carol@dead.test"])
        row = await out.until(lambda: out.deferred("carol@dead.test"), what="deferral")
        assert peer.connections >= 1 and peer.mail_commands == 0  # the first MX refused at its greeting …
        assert row.last_error.startswith("451 4.4.1 Could not connect to mx2.dead.test")  # … then the second
        defer = out.events("DEFER")[0]
        assert defer["source"] == "SMTP" and defer["recipient_status"] == row.last_error
    finally:
        await peer.stop()


async def test_implicit_mx(out: Outbound) -> None:
    peer = await Peer("127.0.0.123", MX_PORT, name="implicit.test").start()
    try:
        await out.submit(SENDER, ["dan@implicit.test"])
        (got,) = await peer.wait_for(1)
        assert got.recipients == ["dan@implicit.test"]
    finally:
        await peer.stop()


async def test_dns_failure_is_temporary(out: Outbound) -> None:
    await out.submit(SENDER, ["fay@broken.test"])
    row = await out.until(lambda: out.deferred("fay@broken.test"), what="deferral")
    assert row.last_error.startswith("451 4.4.3")


async def test_smart_host_with_auth_over_tls(tmp_path: Path, dns: DnsServer) -> None:
    tls, cert = peer_tls(tmp_path, "relay.partner.test", "127.0.0.125")
    peer = await Peer(
        "127.0.0.125", 2526, name="relay.partner.test", tls=tls, credentials=("courriel", "s3cret!")
    ).start()
    connector = SendConnector(
        name="Partner",
        address_spaces=(("partner.test", 1),),
        dns_routing_enabled=False,
        smart_hosts=("relay.partner.test",),
        port=2526,
        smart_host_auth_mechanism="BasicAuthRequireTLS",
        auth_username="courriel",
        auth_password="s3cret!",
        require_tls=True,
        tls_auth_level="DomainValidation",
        fqdn="outbound.corp.test",
    )
    zone = dict(ZONE, **{"relay.partner.test": {"A": ["127.0.0.125"]}})
    dns.records = zone
    out = await build_outbound(
        tmp_path / "t",
        Directory([INTERNET, connector]),
        nameservers=[dns.address],
        mx_port=MX_PORT,
        cafile=str(cert),
    )
    try:
        await out.submit(SENDER, ["gus@partner.test", "hal@partner.test"])
        (got,) = await peer.wait_for(1)  # one transaction for both recipients
        assert got.tls and got.auth == "courriel"
        assert sorted(got.recipients) == ["gus@partner.test", "hal@partner.test"]
        assert peer.helo_names == [
            "outbound.corp.test",
            "outbound.corp.test",
        ]  # the connector's Fqdn, again after TLS
    finally:
        await out.close()
        await peer.stop()


async def test_wrong_credentials_defer(tmp_path: Path, dns: DnsServer) -> None:
    tls, _ = peer_tls(tmp_path, "relay.partner.test", "127.0.0.125")
    peer = await Peer("127.0.0.125", 2526, tls=tls, credentials=("courriel", "right")).start()
    connector = SendConnector(
        name="Partner",
        address_spaces=(("partner.test", 1),),
        dns_routing_enabled=False,
        smart_hosts=("127.0.0.125",),
        port=2526,
        smart_host_auth_mechanism="BasicAuth",
        auth_username="courriel",
        auth_password="wrong",
    )
    out = await build_outbound(tmp_path / "t", Directory([connector]), nameservers=[dns.address])
    try:
        await out.submit(SENDER, ["ivy@partner.test"])
        row = await out.until(lambda: out.deferred("ivy@partner.test"), what="deferral")
        assert row.last_error.startswith("451 4.7.0 Authentication to 127.0.0.125 failed: 535 5.7.8")
        assert peer.mail_commands == 0
    finally:
        await out.close()
        await peer.stop()


async def test_require_tls_never_sends_in_clear(tmp_path: Path, dns: DnsServer) -> None:
    peer = await Peer("127.0.0.124", MX_PORT).start()  # no certificate: no STARTTLS
    secure = SendConnector(
        name="Secure", address_spaces=(("remote.test", 1),), require_tls=True, tls_auth_level="EncryptionOnly"
    )
    out = await build_outbound(
        tmp_path / "t", Directory([secure]), nameservers=[dns.address], mx_port=MX_PORT
    )
    try:
        await out.submit(SENDER, ["jo@remote.test"])
        row = await out.until(lambda: out.deferred("jo@remote.test"), what="deferral")
        assert row.last_error.startswith("451 4.7.10") and "STARTTLS" in row.last_error
        assert peer.connections >= 1 and peer.mail_commands == 0 and peer.messages == []
    finally:
        await out.close()
        await peer.stop()


async def test_require_tls_with_an_untrusted_certificate_defers(tmp_path: Path, dns: DnsServer) -> None:
    tls, _ = peer_tls(tmp_path, "mx.remote.test")
    peer = await Peer("127.0.0.124", MX_PORT, tls=tls).start()
    strict = SendConnector(
        name="Strict",
        address_spaces=(("remote.test", 1),),
        require_tls=True,
        tls_auth_level="CertificateValidation",
    )
    out = await build_outbound(
        tmp_path / "t", Directory([strict]), nameservers=[dns.address], mx_port=MX_PORT
    )
    try:  # the system's CAs do not know the peer's self-signed certificate
        await out.submit(SENDER, ["lou@remote.test"])
        row = await out.until(lambda: out.deferred("lou@remote.test"), what="deferral")
        assert row.last_error.startswith("451 4.7.10 TLS negotiation with mx.remote.test failed")
        assert peer.mail_commands == 0  # and no fallback to clear text
    finally:
        await out.close()
        await peer.stop()


async def test_opportunistic_tls_with_an_unverifiable_certificate(tmp_path: Path, out: Outbound) -> None:
    tls, _ = peer_tls(tmp_path, "self-signed.remote.test")
    peer = await Peer("127.0.0.124", MX_PORT, tls=tls).start()
    try:
        await out.submit(SENDER, ["kim@remote.test"])
        (got,) = await peer.wait_for(1)
        assert got.tls  # RFC 7435: encrypt even when the certificate proves nothing
    finally:
        await peer.stop()


async def test_mixed_recipient_results_in_one_transaction(out: Outbound, bounces: Peer) -> None:
    peer = await Peer(
        "127.0.0.124",
        MX_PORT,
        rcpt_replies={
            "busy@remote.test": Reply(451, "4.2.1", "Mailbox busy, try later"),
            "nobody@remote.test": Reply(550, "5.1.1", "No such user here"),
        },
    ).start()
    try:
        accepted = await out.submit(
            SENDER,
            [
                EnvelopeRecipient("ok@remote.test", notify="SUCCESS,FAILURE", orcpt="rfc822;OK@remote.test"),
                "busy@remote.test",
                "nobody@remote.test",
            ],
            ret="HDRS",
            envid="QQ314159",
        )
        (got,) = await peer.wait_for(1)
        assert got.recipients == ["ok@remote.test"] and peer.mail_commands == 1
        # DSN parameters went on to a peer that offers DSN (RFC 3461 §5.2.2) …
        assert got.mail_params.ret == "HDRS" and got.mail_params.envid == "QQ314159"
        assert got.rcpt_params[0].notify == ("SUCCESS", "FAILURE") and got.rcpt_params[0].orcpt == (
            "rfc822",
            "OK@remote.test",
        )
        (ndr,) = await bounces.wait_for(1)  # … so only the refused recipient is reported, not the success
        blocks = ndr.report()
        assert blocks[0]["Original-Envelope-Id"] == "QQ314159"
        assert [(b["Final-Recipient"], b["Action"], b["Status"]) for b in blocks[1:]] == [
            ("rfc822;nobody@remote.test", "failed", "5.1.1")
        ]
        assert blocks[1]["Remote-MTA"] == "dns; mx.remote.test"
        assert ndr.parsed().get_payload()[2].get_content_type() == "text/rfc822-headers"  # RET=HDRS
        busy = await out.row("busy@remote.test")
        assert busy is not None and busy.status == "retry" and busy.last_error.startswith("451 4.2.1")
        events = {e["event_id"] for e in out.events() if e.get("internal_message_id") == accepted.queue_id}
        assert events >= {"RECEIVE", "SEND", "DEFER", "FAIL", "DSN"}
    finally:
        await peer.stop()


async def test_pipelining_sends_the_envelope_in_one_write(out: Outbound) -> None:
    """A scripted server that answers nothing until MAIL, both RCPTs and DATA have all arrived."""
    seen: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 scripted ESMTP\r\n")
        await reader.readline()
        writer.write(b"250-scripted\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
        batch = [await reader.readline() for _ in range(4)]
        seen.extend(batch)
        writer.write(b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n250 2.1.5 ok\r\n354 go\r\n")
        while await reader.readline() not in (b".\r\n", b""):
            pass
        writer.write(b"250 2.0.0 queued\r\n")
        await reader.readline()
        writer.write(b"221 bye\r\n")
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.124", MX_PORT)
    try:
        await out.submit(SENDER, ["a@remote.test", "b@remote.test"])
        await out.until(lambda: out.events("SEND"), what="SEND")
        assert [line.split(b":")[0] for line in seen] == [b"MAIL FROM", b"RCPT TO", b"RCPT TO", b"DATA\r\n"]
    finally:
        server.close()
        await server.wait_closed()


async def test_connection_reuse(out: Outbound) -> None:
    peer = await Peer("127.0.0.124", MX_PORT).start()
    out.smtp.connections = Connections(per_destination=1, max_transactions=3)
    try:
        for i in range(3):
            await out.submit(SENDER, [f"r{i}@remote.test"])
        await peer.wait_for(3)
        assert peer.connections == 1  # three messages, one session
        for i in range(3, 5):
            await out.submit(SENDER, [f"r{i}@remote.test"])
        await peer.wait_for(5)
        assert peer.connections == 2  # MaxMessagesPerConnection reached: a new session
    finally:
        await peer.stop()


async def test_per_destination_concurrency_limit(out: Outbound) -> None:
    peer = await Peer("127.0.0.124", MX_PORT, data_delay=0.2).start()
    out.smtp.connections = Connections(per_destination=2)
    try:
        for i in range(6):
            await out.submit(SENDER, [f"c{i}@remote.test"])
        await peer.wait_for(6)
        assert peer.max_sessions == 2  # never more, and used
    finally:
        await peer.stop()


async def test_a_peer_at_its_session_limit_gets_fewer_sessions_not_deferrals(out: Outbound) -> None:
    """A 421 greeting while other sessions to the peer are open means "at my limit" (Exchange's
    MaxInboundConnectionPerSource): the message waits for an open session instead of a retry
    interval, and fewer sessions are opened from then on."""
    peer = await Peer("127.0.0.124", MX_PORT, data_delay=0.1, session_limit=2).start()
    out.smtp.connections = Connections(per_destination=8)
    try:
        for i in range(16):
            await out.submit(SENDER, [f"l{i}@remote.test"])
        received = await peer.wait_for(16, timeout=20)
        assert sorted(r.recipients[0] for r in received) == sorted(f"l{i}@remote.test" for i in range(16))
        assert peer.refused >= 1  # the limit was met: the feedback was exercised
        assert peer.refused < 6  # not one refused session per waiting message
        await out.until(lambda: len(out.events("SEND")) == 16, what="16 SEND events")
        assert out.events("DEFER") == []
        assert peer.max_sessions == 2  # both sessions the peer takes were used
    finally:
        await peer.stop()


async def test_a_stalled_peer_times_out_and_defers(tmp_path: Path, dns: DnsServer) -> None:
    peer = await Peer("127.0.0.124", MX_PORT, stall_after=0).start()
    impatient = SendConnector(name="Internet", address_spaces=(("*", 1),), connection_inactivity_timeout=1.0)
    out = await build_outbound(
        tmp_path / "t", Directory([impatient]), nameservers=[dns.address], mx_port=MX_PORT
    )
    try:
        await out.submit(SENDER, ["slow@remote.test"])
        await peer.stalled.wait()
        row = await out.until(lambda: out.deferred("slow@remote.test"), timeout=5, what="deferral")
        # The content was sent: the peer may have it, so no other host is tried now (RFC 1047).
        assert row.last_error.startswith("451 4.4.2 Lost connection with mx.remote.test[127.0.0.124]")
        assert "no reply within 1 s" in row.last_error
    finally:
        await out.close()
        await peer.stop()


async def test_a_peer_that_drops_the_connection(out: Outbound) -> None:
    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(drop, "127.0.0.124", MX_PORT)
    try:
        await out.submit(SENDER, ["gone@remote.test"])
        row = await out.until(lambda: out.deferred("gone@remote.test"), what="deferral")
        assert row.last_error.startswith("451 4.4.2 Lost connection with mx.remote.test")
    finally:
        server.close()
        await server.wait_closed()


async def test_retry_then_success(out: Outbound) -> None:
    peer = await Peer(
        "127.0.0.124", MX_PORT, data_replies=[Reply(452, "4.3.1", "Insufficient system storage")]
    ).start()
    try:
        await out.submit(SENDER, ["lee@remote.test"])
        (got,) = await peer.wait_for(1, timeout=15)
        assert got.recipients == ["lee@remote.test"]
        await out.until(lambda: out.events("SEND"), what="SEND")
        assert [e["event_id"] for e in out.events() if e["event_id"] in ("DEFER", "SEND")] == [
            "DEFER",
            "SEND",
        ]
        assert out.events("DEFER")[0]["recipient_status"].startswith("452 4.3.1")
    finally:
        await peer.stop()


async def test_no_connector_waits_unreachable_then_goes(tmp_path: Path, dns: DnsServer) -> None:
    out = await build_outbound(tmp_path / "t", Directory([]), nameservers=[dns.address], mx_port=MX_PORT)
    peer = await Peer("127.0.0.124", MX_PORT).start()
    try:
        await out.submit(SENDER, ["ned@remote.test"])
        row = await out.row("ned@remote.test")
        assert row is not None and row.next_hop == "unreachable:remote.test" and row.status == "retry"
        assert out.events("DEFER")[0]["source"] == "ROUTING"
        out.directory.connectors.append(INTERNET)  # the administrator adds a send connector
        (got,) = await peer.wait_for(1, timeout=10)
        assert got.recipients == ["ned@remote.test"]
    finally:
        await out.close()
        await peer.stop()


async def test_refused_cleanly_when_the_next_hop_lacks_smtputf8(out: Outbound, bounces: Peer) -> None:
    peer = await Peer("127.0.0.124", MX_PORT, smtputf8=False).start()
    try:
        await out.submit(SENDER, ["émile@remote.test"], smtputf8=True)
        (ndr,) = await bounces.wait_for(1)
        _, block = ndr.report()
        assert (block["Action"], block["Status"]) == ("failed", "5.6.7")
        assert peer.mail_commands == 0
    finally:
        await peer.stop()


async def test_connector_size_limit(out: Outbound, bounces: Peer) -> None:
    out.directory.connectors[0] = SendConnector(
        name="Internet", address_spaces=(("*", 1),), max_message_size=64 * 1024
    )
    await out.submit(SENDER, ["big@remote.test"], body=(b"x" * 78 + b"\r\n") * 900)
    (ndr,) = await bounces.wait_for(1)
    _, block = ndr.report()
    assert (block["Action"], block["Status"]) == ("failed", "5.3.4")


# -- a real third-party MTA ------------------------------------------------------------------------

POSTFIX_MAIN = """\
compatibility_level = 3.6
queue_directory = {root}/spool
data_directory = {root}/data
inet_interfaces = loopback-only
inet_protocols = ipv4
myhostname = mx.postfix.test
mydestination =
mynetworks = 127.0.0.0/8
virtual_mailbox_domains = postfix.test
virtual_mailbox_base = {root}/mail
virtual_mailbox_maps = static:inbox/
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
smtputf8_enable = yes
alias_maps =
alias_database =
"""
# smtpd on 127.0.0.129:25 only (inet_interfaces must name a configured address, and 127.0.0.129
# is not one: a master.cf address is bound as given); no chroot, so no files to copy into it;
# local and virtual run privileged (they write mail as its owner).
POSTFIX_MASTER = (
    "127.0.0.129:smtp inet n - n - - smtpd\n"
    + "".join(
        f"{name} unix {private} {'n' if command in ('local', 'virtual') else '-'} n {wakeup} {limit} {command}\n"
        for name, private, wakeup, limit, command in [
            ("pickup", "n", "60", "1", "pickup"),
            ("cleanup", "n", "-", "0", "cleanup"),
            ("qmgr", "n", "300", "1", "qmgr"),
            ("rewrite", "-", "-", "-", "trivial-rewrite"),
            ("bounce", "-", "-", "0", "bounce"),
            ("defer", "-", "-", "0", "bounce"),
            ("trace", "-", "-", "0", "bounce"),
            ("verify", "-", "-", "1", "verify"),
            ("flush", "n", "1000?", "0", "flush"),
            ("proxymap", "-", "-", "-", "proxymap"),
            ("smtp", "-", "-", "-", "smtp"),
            ("relay", "-", "-", "-", "smtp"),
            ("showq", "n", "-", "-", "showq"),
            ("error", "-", "-", "-", "error"),
            ("retry", "-", "-", "-", "error"),
            ("discard", "-", "-", "-", "discard"),
            ("local", "-", "-", "-", "local"),
            ("virtual", "-", "-", "-", "virtual"),
            ("lmtp", "-", "-", "-", "lmtp"),
            ("anvil", "-", "-", "1", "anvil"),
            ("scache", "-", "-", "1", "scache"),
        ]
    )
    + "postlog unix-dgram n - n - 1 postlogd\n"
)


def _postfix(binary: str, conf: Path, *command: str) -> subprocess.CompletedProcess[str]:
    # Postfix reports on stderr only to a terminal; otherwise its maillog_file has the reason.
    return subprocess.run(
        [binary, "-c", str(conf), *command],
        env={**os.environ, "MAIL_CONFIG": str(conf)},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.fixture
async def postfix() -> AsyncIterator[Path]:
    """A private Postfix instance (not the system's) delivering postfix.test into a Maildir."""
    binary = require_tool("postfix")
    if not ROOT:
        pytest.skip("a private Postfix instance on port 25 needs root")
    import pwd

    owner = pwd.getpwnam("postfix")
    root = Path(f"/tmp/courriel-postfix-{os.getpid()}")  # short: Postfix limits socket path lengths
    shutil.rmtree(root, ignore_errors=True)
    for sub in ("etc", "spool", "mail"):
        (root / sub).mkdir(parents=True)
    os.chown(root / "mail", owner.pw_uid, owner.pw_gid)
    (root / "etc" / "main.cf").write_text(POSTFIX_MAIN.format(root=root, uid=owner.pw_uid, gid=owner.pw_gid))
    (root / "etc" / "master.cf").write_text(POSTFIX_MASTER)
    conf = root / "etc"
    try:
        for command in ("check", "start"):
            done = _postfix(binary, conf, command)
            log = (root / "maillog").read_text() if (root / "maillog").exists() else ""
            assert done.returncode == 0, f"postfix {command} failed: {done.stdout}{done.stderr}{log}"
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.129", 25), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "Postfix did not start listening"
                await asyncio.sleep(0.1)
        yield root
    finally:
        _postfix(binary, conf, "stop")
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.interop
async def test_postfix_receives_our_mail(postfix: Path, out: Outbound) -> None:
    await out.submit(
        SENDER,
        ["pat@postfix.test", "quinn@postfix.test"],
        subject="Hello Postfix",
        body="8-bit body: café\r\n".encode(),
        body_type="8BITMIME",
    )
    maildir = postfix / "mail" / "inbox" / "new"
    files = await out.until(
        lambda: sorted(maildir.glob("*")) if maildir.exists() else [], timeout=20, what="Postfix delivery"
    )
    data = files[0].read_bytes()
    assert b"Subject: Hello Postfix" in data and "café".encode() in data
    assert b"by mx.postfix.test (Postfix" in data  # Postfix's own Received header
    await out.until(lambda: out.events("SEND"), what="SEND")
    (send,) = out.events("SEND")
    assert sorted(send["recipients"]) == ["pat@postfix.test", "quinn@postfix.test"]
    assert send["recipient_status"].startswith("250 2.0.0 Ok: queued as ")


# -- crash ---------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_kill_9_in_mid_delivery_loses_nothing_and_repeats_nothing(tmp_path: Path) -> None:
    """The transport process dies while the peer holds DATA: what the peer answered 250 for is
    never sent again, everything else is sent after the restart."""
    total, answered_first = 12, 5
    peer = await Peer("127.0.0.127", 2527, stall_after=answered_first).start()
    args = [
        sys.executable,
        "-m",
        "tests.integration.outbound_env",
        "--dir",
        str(tmp_path),
        "--smart-host",
        "127.0.0.127",
        "--port",
        "2527",
    ]
    cwd = Path(__file__).resolve().parents[2]
    first = subprocess.Popen(
        [*args, "--submit", str(total)], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        async with asyncio.timeout(20):
            assert first.stdout is not None
            line = await asyncio.to_thread(first.stdout.readline)  # every message is committed
            assert line.strip() == f"submitted {total}".encode(), line
            await peer.stalled.wait()
        tracking = tmp_path / "tracking"
        deadline = time.monotonic() + 10
        while sum(log.read_text().count('"SEND"') for log in tracking.glob("MSGTRK*.log")) < answered_first:
            assert time.monotonic() < deadline, "the answered messages were not recorded"
            await asyncio.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(5)
    finally:
        if first.poll() is None:
            first.kill()
    assert len(peer.messages) == answered_first
    peer.stall_after = None  # the peer recovers; held sessions stay held (their client is gone)
    second = subprocess.Popen(args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        await peer.wait_for(total, timeout=30)
        await asyncio.sleep(1.0)  # anything sent twice would arrive now
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            second.wait(5)
        except subprocess.TimeoutExpired:
            second.kill()
        await peer.stop()
    seqs = sorted(int(m.parsed()["X-Seq"]) for m in peer.messages)
    assert seqs == list(range(total)), seqs  # each exactly once
