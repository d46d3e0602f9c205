"""Header facts, the Received field and the headers added to submissions."""

from __future__ import annotations

from courriel.transport.receive.headers import (
    header_facts,
    received_header,
    submission_headers,
    with_protocol,
)


def test_header_facts_reads_only_the_header_block() -> None:
    msg = b"Received: a\r\nSubject: Hello\r\n  world\r\nMessage-ID: <1@x>\r\nReceived: b\r\n\r\nSubject: not a header\r\n"
    facts = header_facts(msg)
    assert (facts.subject, facts.message_id, facts.received_count, facts.has_date) == ("Hello world", "<1@x>", 2, False)
    assert msg[facts.header_end : facts.header_end + 2] == b"\r\n"


def test_submission_gets_message_id_and_date_only_when_missing() -> None:
    added, mid = submission_headers(header_facts(b"Subject: x\r\n\r\nbody"), "mx1.example.test")
    assert added.startswith(b"Message-ID: <") and b"@mx1.example.test>" in added and b"\r\nDate: " in added
    assert mid in added.decode()
    added, mid = submission_headers(header_facts(b"Message-ID: <k@y>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\n"), "mx1")
    assert (added, mid) == (b"", "<k@y>")


def test_received_header_shape() -> None:
    h = received_header(helo="client.test", client_ip="192.0.2.1", by="mx1.example.test", protocol="ESMTPSA", queue_id="Q1", recipient="a@b.test")
    text = h.decode()
    assert text.startswith("Received: from client.test ([192.0.2.1])\r\n\tby mx1.example.test (Courriel) with ESMTPSA id Q1")
    assert "for <a@b.test>;" in text and text.endswith("\r\n")
    assert "[IPv6:::1]" in received_header(helo=None, client_ip="::1", by="m", protocol="SMTP", queue_id="Q", recipient=None).decode()


def test_with_protocol_follows_rfc_3848() -> None:
    assert with_protocol(esmtp=False, tls=True, auth=True, utf8=False) == "SMTP"
    assert with_protocol(esmtp=True, tls=True, auth=True, utf8=False) == "ESMTPSA"
    assert with_protocol(esmtp=True, tls=False, auth=False, utf8=True) == "UTF8SMTP"
