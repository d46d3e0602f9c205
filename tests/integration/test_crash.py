"""Mail acknowledged with 250 is never lost, and delivered once, even when the server is SIGKILLed.

20 concurrent senders submit numbered messages while the server is killed with SIGKILL several
times and restarted. Afterwards every message that got a 250 is in its mailbox exactly once; a
message whose 250 never arrived may or may not be there (the client will send it again), but never
twice.
"""

from __future__ import annotations

import re
import smtplib
import threading
import time
from collections import Counter

import pytest

from tests.integration.mailserver import MailServer

SENDERS = 20
KILLS = 3
MAX_PER_SENDER = 400  # bounds the load whatever happens


def _send_loop(server: MailServer, sender: int, stop: threading.Event, acked: list[str], tried: list[str]) -> None:
    n = 0
    while not stop.is_set() and n < MAX_PER_SENDER:
        token = f"s{sender:02d}-m{n:04d}"
        n += 1
        rcpt = "team@example.test" if n % 5 == 0 else "alice@example.test"
        body = f"Subject: crash {token}\r\nMessage-ID: <{token}@crash.test>\r\n\r\ntoken={token}\r\n" + "x" * 2000
        tried.append(token)
        try:
            with smtplib.SMTP("127.0.0.1", server.port("frontend"), timeout=10) as smtp:
                smtp.sendmail("load@sender.test", [rcpt], body)
            acked.append(token)
        except (OSError, smtplib.SMTPException):
            time.sleep(0.05)  # the server is down or refused: not acknowledged, try the next one


@pytest.mark.slow
def test_sigkill_under_load_loses_nothing_and_duplicates_nothing(mailserver: MailServer) -> None:
    acked: list[str] = []
    tried: list[str] = []
    stop = threading.Event()
    threads = [threading.Thread(target=_send_loop, args=(mailserver, i, stop, acked, tried)) for i in range(SENDERS)]
    for t in threads:
        t.start()
    try:
        for _ in range(KILLS):
            time.sleep(2.5)
            mailserver.kill()
            time.sleep(0.3)
            mailserver.start()
        time.sleep(1.5)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert len(acked) > 100, f"the load did not get going: {len(acked)} messages acknowledged"
    assert len(tried) > len(acked), "the kills never interrupted a transaction"
    expected_alice = {t for t in acked}  # alice gets every message (team includes her)
    expected_bob = {t for i, t in enumerate(acked) if int(t.split("-m")[1]) % 5 == 4}  # n % 5 == 0 before n += 1
    # Wait for the acknowledged tokens themselves, not for a count: messages whose 250 a kill cut
    # off are delivered too, and would make a count complete while an acknowledged one is in flight.
    found_alice = _wait_for(mailserver, "alice@example.test", expected_alice, timeout=120)
    found_bob = _wait_for(mailserver, "bob@example.test", expected_bob, timeout=60)
    missing = expected_alice - set(found_alice)
    assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {sorted(missing)[:5]}"
    assert not expected_bob - set(found_bob)
    for found in (found_alice, found_bob):
        twice = [t for t, c in Counter(found).items() if c > 1]
        assert not twice, f"delivered more than once: {twice[:5]}"
        assert set(found) <= set(tried)


def _wait_for(server: MailServer, address: str, tokens: set[str], timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        found = _tokens(server.inbox(address))
        if tokens <= set(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def _tokens(messages: list[bytes]) -> list[str]:
    out = []
    for m in messages:
        match = re.search(rb"token=(s\d+-m\d+)", m)
        assert match, m[:200]
        out.append(match.group(1).decode())
    return out
