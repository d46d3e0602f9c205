"""Mailbox moves and database switchovers with real servers, real SMTP and IMAP clients.

- `courriel mailbox move` under SMTP traffic, on SQLite and PostgreSQL: the mailbox keeps its mail,
  flags, keywords and folders; every message sent before, during and after the move is in the
  Inbox exactly once, read over IMAP from the new database.
- `courriel database move` between two Mailbox servers sharing a PostgreSQL directory: the
  database's mailboxes are served by the new server (its IMAP back end, and the first server's
  Client Access front end proxying there), with the bodies stored before the move; a switchover
  that cannot work (a SQLite file, a loopback PostgreSQL URL, a server on another machine) is
  refused with a clear message.
"""

from __future__ import annotations

import asyncio
import imaplib
import json
import re
import smtplib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from courriel.admin.commands.setup import ServerSetup, init_server
from courriel.org.directory import Directory
from tests.integration.mailserver import (
    PASSWORD,
    MailServer,
    _listening,
    distinct_offsets,
    engine_databases,
    no_verify_tls,
    organization_server,
    wait_for,
)

ALICE = "alice@example.test"
HOST = "127.0.0.1"


def send(port: int, subject: str) -> None:
    with smtplib.SMTP(HOST, port, timeout=30) as smtp:
        smtp.sendmail(
            "sender@outside.test",
            [ALICE],
            f"From: sender@outside.test\r\nTo: {ALICE}\r\nSubject: {subject}\r\n\r\nbody of {subject}\r\n",
        )


def imap_login(port: int) -> imaplib.IMAP4_SSL:
    imap = imaplib.IMAP4_SSL(HOST, port, ssl_context=no_verify_tls(), timeout=30)
    imap.login(ALICE, PASSWORD)
    return imap


def inbox(imap: imaplib.IMAP4_SSL, folder: str = "INBOX") -> list[tuple[str, str, str]]:
    """(subject, flags, body text) of every message, in order."""
    typ, data = imap.select(folder)
    assert typ == "OK", data
    if int(data[0] or 0) == 0:
        return []
    typ, fetched = imap.fetch("1:*", "(FLAGS BODY.PEEK[])")
    assert typ == "OK"
    out = []
    for item in fetched:
        if not isinstance(item, tuple):
            continue
        flags = re.search(rb"FLAGS \(([^)]*)\)", item[0])
        text = item[1].decode()
        subject = re.search(r"^Subject: (.*)$", text, re.M)
        out.append((subject.group(1).strip() if subject else "", flags.group(1).decode() if flags else "", text))
    return out


def wait_for_inbox(imap: imaplib.IMAP4_SSL, count: int, what: str, server: MailServer) -> list[tuple[str, str, str]]:
    """Wait until the Inbox holds at least `count` messages; on timeout say what it held, what
    the queue holds and what the server logged."""
    seen: list[tuple[str, str, str]] = []

    def check() -> bool:
        seen[:] = inbox(imap)
        return len(seen) >= count

    try:
        wait_for(check, what)
    except AssertionError as timeout:
        queue = server.courriel("queue", "messages").stdout
        held = sorted(subject for subject, _, _ in seen)
        log = server.log_path.read_text()[-4000:]
        raise AssertionError(f"{timeout}; the Inbox held {held}\nqueue:\n{queue}\nlog:\n{log}") from None
    return seen


def enable_imap(server: MailServer, port: int) -> None:
    done = server.courriel("imap-settings", "set", "--enabled", "true")
    assert done.returncode == 0, done.stderr
    wait_for(lambda: _listening(HOST, port), "IMAP to listen")


@pytest.fixture(params=["sqlite", "postgresql"])
def urls(request: pytest.FixtureRequest) -> Iterator[list[str]]:
    """The directory, the mailbox database and the move's target: on PostgreSQL, or SQLite files."""
    with engine_databases(request.param, 3) as found:
        yield found


def test_mailbox_move_under_traffic(urls: list[str], tmp_path: Path) -> None:
    server = organization_server(tmp_path, urls)
    target = "PG02" if urls else "DB02"
    created = server.courriel("database", "new", target, *(["--url", urls[2]] if urls else []))
    assert created.returncode == 0, created.stderr
    server.start()
    try:
        smtp_port, imap_port = server.port("frontend"), 993 + server.offset
        enable_imap(server, imap_port)
        for n in range(8):
            send(smtp_port, f"before {n}")
        imap = imap_login(imap_port)
        assert len(wait_for_inbox(imap, 8, "the first messages", server)) == 8
        # Two workers deliver in parallel: find each message by its subject, not its position.
        numbers = {n: imap.search(None, "SUBJECT", f'"before {n}"')[1][0].decode() for n in range(4)}
        flag = ",".join(numbers[n] for n in range(3))
        assert imap.store(flag, "+FLAGS", "(\\Flagged $Project)")[0] == "OK"
        assert imap.create("Archive")[0] == "OK"
        assert imap.copy(numbers[3], "Archive")[0] == "OK"
        assert imap.subscribe("Archive")[0] == "OK"
        imap.logout()

        sent: list[str] = []
        stop = threading.Event()

        def traffic() -> None:
            for n in range(500):
                if stop.is_set():
                    return
                send(smtp_port, f"during {n}")
                sent.append(f"during {n}")
                time.sleep(0.05)

        sender = threading.Thread(target=traffic)
        sender.start()
        try:
            wait_for(lambda: len(sent) >= 3, "traffic to start")
            moved = server.courriel("mailbox", "move", ALICE, "--database", target)
            during = len(sent)
            wait_for(lambda: len(sent) >= during + 3, "traffic after the move")
        finally:
            stop.set()
            sender.join(60)
        assert moved.returncode == 0, moved.stderr + moved.stdout
        assert "final step" in moved.stdout and f"moved {ALICE} to {target}" in moved.stdout
        for n in range(3):
            send(smtp_port, f"after {n}")
        server.courriel("queue", "retry", "--all")  # deliveries turned back by the final step: now

        expected = sorted([f"before {n}" for n in range(8)] + sent + [f"after {n}" for n in range(3)])
        imap = imap_login(imap_port)
        wait_for_inbox(imap, len(expected), "every message in the new database", server)
        messages = inbox(imap)
        assert sorted(subject for subject, _, _ in messages) == expected  # each once: none lost, none twice
        assert all(f"body of {subject}" in text for subject, _, text in messages)
        flagged = [subject for subject, flags, _ in messages if "\\Flagged" in flags and "$Project" in flags]
        assert sorted(flagged) == ["before 0", "before 1", "before 2"]
        assert [subject for subject, _, _ in inbox(imap, "Archive")] == ["before 3"]
        assert b"Archive" in b"".join(imap.lsub()[1])
        imap.logout()
        shown = server.courriel("mailbox", "show", ALICE, "--json")
        assert f'"database": "{target}"' in shown.stdout
    finally:
        server.stop()


async def _join(root: Path, directory_url: str, offset: int) -> Path:
    setup = ServerSetup(
        config_path=root / "courriel.toml",
        server="mx2",
        fqdn="mx2.example.test",
        roles=("mailbox",),
        listen=(HOST,),
        port_offset=offset,
        directory_url=directory_url,
    )
    await init_server(setup, organization=None, domain=None, join=True)
    directory = await Directory.open(directory_url)
    try:  # a Mailbox server on another machine (no process: only its directory entry matters)
        await directory.register_server("mx3", "mx3.example.test", ["mailbox"], addresses=["192.0.2.10"])
    finally:
        await directory.close()
    return root / "courriel.toml"


def test_database_switchover_to_another_server(tmp_path: Path) -> None:
    servers: list[MailServer] = []
    with engine_databases("postgresql") as urls:
        try:
            offset1, offset2 = distinct_offsets()
            mx1 = organization_server(tmp_path / "mx1", urls, offset=offset1)
            servers.append(mx1)
            mx1.start()
            mx2_config = asyncio.run(_join(tmp_path / "mx2", urls[0], offset2))
            servers.append(MailServer(mx2_config, offset2, wait_for=((HOST, 25 + offset2),)))
            servers[-1].start()
            enable_imap(mx1, 993 + offset1)
            for n in range(4):
                send(mx1.port("frontend"), f"on mx1 {n}")
            wait_for(lambda: len(inbox(imap_login(993 + offset1))) == 4, "delivery on mx1")

            refused = mx1.courriel("database", "move", "DB01", "--server", "mx3")
            assert refused.returncode != 0 and "SQLite file" in refused.stderr and "mx3" in refused.stderr
            refused = mx1.courriel("database", "move", "PG01", "--server", "mx3")
            assert refused.returncode != 0 and "loopback" in refused.stderr

            moved = mx1.courriel("database", "move", "PG01", "--server", "mx2")
            assert moved.returncode == 0, moved.stderr
            assert "PG01: mounted on mx2" in moved.stdout
            # mx2's own IMAP back end serves alice, with the bodies mx1 stored.
            wait_for(lambda: _listening(HOST, 1993 + offset2), "mx2's IMAP back end")
            messages = wait_for(lambda: inbox(imap_login(1993 + offset2)), "mx2 to mount PG01")
            assert sorted(s for s, _, _ in messages) == [f"on mx1 {n}" for n in range(4)]
            assert all(f"body of {s}" in text for s, _, text in messages)
            # New mail for alice, received by mx1, follows the database to mx2; so does mx1's front end.
            send(mx1.port("frontend"), "on mx2")
            wait_for(lambda: len(inbox(imap_login(1993 + offset2))) == 5, "delivery on mx2")
            proxied = wait_for(lambda: inbox(imap_login(993 + offset1)), "mx1's front end to proxy to mx2")
            assert sorted(s for s, _, _ in proxied) == sorted([f"on mx1 {n}" for n in range(4)] + ["on mx2"])
            # A SQLite database can go to a server on the same machine: it is then named by its full path.
            moved = mx1.courriel("database", "move", "DB01", "--server", "mx2")
            assert moved.returncode == 0, moved.stderr
            listed = json.loads(mx1.courriel("database", "list", "--json").stdout)
            db01 = next(d for d in listed if d["name"] == "DB01")
            assert db01["server"] == "mx2" and db01["url"] == f"sqlite:///{(tmp_path / 'mx1' / 'data' / 'databases' / 'DB01.db').resolve()}"
        finally:
            for server in servers:
                server.stop()
