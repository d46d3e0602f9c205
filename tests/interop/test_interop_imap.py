"""Real IMAP4 clients against `courriel serve` through the Client Access front end (143/993).

Python's imaplib and the imapclient package (APPEND, SEARCH, FETCH, STORE, EXPUNGE, folders,
IDLE seeing SMTP delivery and another session's changes), curl, fetchmail and getmail6 over
IMAP, and two-way synchronisation with mbsync (isync) and offlineimap: several folders, a
nested one, flags and deletions in both directions. Every test checks the data on both sides.
"""

from __future__ import annotations

import email
import imaplib
import os
import poplib
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from imapclient import IMAPClient

from tests.conftest import require_tool
from tests.interop.conftest import HOST, ProtocolServer
from tests.interop.mailtools import bsmtp_messages, getmail_rc, maildir_for_getmail

pytestmark = pytest.mark.interop


def raw(subject: str, body: str = "Some text.\r\n") -> bytes:
    return (
        f"From: sender@example.net\r\nTo: someone@example.test\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '.')}@example.net>\r\n\r\n{body}"
    ).encode()


@contextmanager
def imap(server: ProtocolServer, user: str) -> Iterator[imaplib.IMAP4_SSL]:
    client = imaplib.IMAP4_SSL(HOST, server.port("imaps"), ssl_context=server.context(), timeout=30)
    try:
        client.login(user, server.password)
        yield client
    finally:
        try:
            client.logout()
        except (imaplib.IMAP4.error, OSError):
            pass


def folder_state(server: ProtocolServer, user: str) -> dict[str, dict[str, set[str]]]:
    """Every folder: Subject → flags, read over a fresh connection (what the server holds)."""
    out: dict[str, dict[str, set[str]]] = {}
    with IMAPClient(HOST, server.port("imaps"), ssl_context=server.context(), timeout=30) as client:
        client.login(user, server.password)
        for _flags, _delim, name in client.list_folders():
            folder = name if isinstance(name, str) else name.decode()
            client.select_folder(folder, readonly=True)
            uids = client.search()
            messages = client.fetch(uids, ["FLAGS", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]"]) if uids else {}
            state: dict[str, set[str]] = {}
            for data in messages.values():
                header = email.message_from_bytes(data[b"BODY[HEADER.FIELDS (SUBJECT)]"])
                state[str(header["Subject"])] = {f.decode() for f in data[b"FLAGS"] if f != b"\\Recent"}
            out[folder] = state
    return out


# ---- imaplib / imapclient ------------------------------------------------------------------


def test_imaplib_append_fetch_store_expunge(protocol_server: ProtocolServer) -> None:
    user = protocol_server.take_user()
    with imap(protocol_server, user) as client:
        for n in range(3):
            typ, data = client.append("INBOX", "(\\Seen)" if n == 0 else "", None, raw(f"imaplib {n}"))
            assert typ == "OK" and b"APPENDUID" in data[0]
        assert client.select("INBOX") == ("OK", [b"3"])
        typ, data = client.uid("SEARCH", "ALL")
        uids = data[0].split()
        assert len(uids) == 3
        typ, data = client.uid("FETCH", uids[1], "(BODY.PEEK[])")
        assert data[0][1] == raw("imaplib 1")
        assert client.uid("STORE", uids[1], "+FLAGS", "(\\Flagged)")[0] == "OK"
        assert client.uid("STORE", uids[2], "+FLAGS.SILENT", "(\\Deleted)")[0] == "OK"
        assert client.expunge()[0] == "OK"
        assert client.create("Archive/2026")[0] == "OK"
        assert client.uid("COPY", uids[0], "Archive/2026")[0] == "OK"
    state = folder_state(protocol_server, user)
    assert state["INBOX"] == {"imaplib 0": {"\\Seen"}, "imaplib 1": {"\\Flagged"}}
    assert state["Archive/2026"] == {"imaplib 0": {"\\Seen"}}
    # POP3 sees the same Inbox.
    pop = poplib.POP3_SSL(HOST, protocol_server.port("pop3s"), context=protocol_server.context(), timeout=30)
    try:
        pop.user(user)
        pop.pass_(protocol_server.password)
        assert pop.stat()[0] == 2
    finally:
        pop.quit()


def test_imapclient_idle_sees_smtp_delivery_and_other_sessions(protocol_server: ProtocolServer) -> None:
    user = protocol_server.take_user()
    with (
        IMAPClient(
            HOST, protocol_server.port("imaps"), ssl_context=protocol_server.context(), timeout=30
        ) as watcher,
        IMAPClient(
            HOST, protocol_server.port("imaps"), ssl_context=protocol_server.context(), timeout=30
        ) as other,
    ):
        watcher.login(user, protocol_server.password)
        other.login(user, protocol_server.password)
        assert b"IDLE" in watcher.capabilities()
        watcher.select_folder("INBOX")
        watcher.idle()
        started = time.monotonic()
        protocol_server.send(user, "idle test")
        responses = []
        while time.monotonic() - started < 15 and not any(r[1] == b"EXISTS" for r in responses):
            responses += watcher.idle_check(timeout=1)
        watcher.idle_done()
        assert (1, b"EXISTS") in responses
        # A flag set by the other session is reported to this one at NOOP.
        other.select_folder("INBOX")
        other.add_flags([1], [b"\\Flagged"])
        _, untagged = watcher.noop()
        assert any(r[:2] == (1, b"FETCH") for r in untagged), untagged
        assert b"\\Flagged" in watcher.get_flags([1])[1]


# ---- curl ----------------------------------------------------------------------------------


def curl(server: ProtocolServer, user: str, url: str, *extra: str) -> bytes:
    tool = require_tool("curl")
    command = [tool, "--silent", "--show-error", "--ssl-reqd", "--cacert", str(server.cafile)]
    command += ["--user", f"{user}:{server.password}", *extra, url]
    done = subprocess.run(command, capture_output=True, timeout=120)
    assert done.returncode == 0, f"curl exited {done.returncode}: {done.stderr.decode(errors='replace')}"
    return done.stdout


def test_curl_imap(protocol_server: ProtocolServer, tmp_path: Path) -> None:
    user = protocol_server.take_user()
    upload = tmp_path / "upload.eml"
    upload.write_bytes(raw("curl upload"))
    imaps = f"imaps://{HOST}:{protocol_server.port('imaps')}"
    starttls = f"imap://{HOST}:{protocol_server.port('imap')}"
    curl(protocol_server, user, f"{imaps}/INBOX", "--upload-file", str(upload))  # APPEND
    listing = curl(protocol_server, user, starttls + "/")
    assert b'"INBOX"' in listing or b" INBOX" in listing
    assert b"Sent Items" in listing  # the Exchange default folders
    found = curl(protocol_server, user, f"{starttls}/INBOX?SUBJECT%20%22curl%20upload%22")
    assert re.search(rb"\* SEARCH 1\b", found), found
    assert curl(protocol_server, user, f"{imaps}/INBOX;UID=1") == raw("curl upload")
    curl(protocol_server, user, f"{imaps}/INBOX", "--request", "UID STORE 1 +FLAGS (\\Answered)")
    # curl fetched BODY[] (not BODY.PEEK[]), which sets \Seen (RFC 9051 §6.4.5).
    assert folder_state(protocol_server, user)["INBOX"] == {"curl upload": {"\\Answered", "\\Seen"}}


# ---- fetchmail and getmail -----------------------------------------------------------------


def test_fetchmail_imap(protocol_server: ProtocolServer, tmp_path: Path) -> None:
    fetchmail = require_tool("fetchmail")
    user = protocol_server.take_user()
    for n in range(2):
        protocol_server.send(user, f"fetchmail imap {n}")
    protocol_server.inbox(user, 2)
    rc = tmp_path / "fetchmailrc"
    rc.write_text(
        f"set no syslog\n"
        f"poll {HOST} service {protocol_server.port('imap')} protocol IMAP timeout 30\n"
        f'  user "{user}" there with password "{protocol_server.password}" is "root" here\n'
        f"  sslproto 'TLS1.2+' sslcertck sslcertfile '{protocol_server.cafile}'\n"
        f"  sslcommonname '{protocol_server.fqdn}'\n"
        f"  bsmtp '{tmp_path / 'out.bsmtp'}'\n"
        "  nokeep fetchall\n"
    )
    rc.chmod(0o600)
    env = {**os.environ, "FETCHMAILHOME": str(tmp_path)}
    protocol_server.run(fetchmail, "-f", rc, "--nodetach", env=env)
    fetched = bsmtp_messages(tmp_path / "out.bsmtp")
    assert sorted(str(m["Subject"]) for m in fetched) == ["fetchmail imap 0", "fetchmail imap 1"]
    assert protocol_server.inbox(user, 0) == []  # flagged \Deleted and expunged


def test_getmail_imap_two_folders(protocol_server: ProtocolServer, tmp_path: Path) -> None:
    getmail = require_tool("getmail")
    user = protocol_server.take_user()
    with imap(protocol_server, user) as client:
        client.create("Projects")
        client.append("INBOX", "", None, raw("getmail inbox"))
        client.append("Projects", "", None, raw("getmail projects"))
    with maildir_for_getmail() as (maildir, as_user):
        retriever = (
            f"type = SimpleIMAPSSLRetriever\nport = {protocol_server.port('imaps')}\n"
            'mailboxes = ("INBOX", "Projects")\n'
        )
        getmail_rc(
            protocol_server, tmp_path, retriever, user, f"type = Maildir\npath = {maildir}/\n{as_user}"
        )
        protocol_server.run(getmail, "--getmaildir", tmp_path, "--rcfile", "getmailrc")
        got = sorted(
            str(email.message_from_bytes(p.read_bytes())["Subject"]) for p in (maildir / "new").iterdir()
        )
    assert got == ["getmail inbox", "getmail projects"]
    state = folder_state(protocol_server, user)
    assert state["INBOX"] == {} and state["Projects"] == {}


# ---- two-way synchronisation ---------------------------------------------------------------


def maildir_deliver(folder: Path, name: str, data: bytes, flags: str = "") -> Path:
    for sub in ("cur", "new", "tmp"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    path = folder / "cur" / f"{time.time_ns()}.{name}.local:2,{flags}"
    path.write_bytes(data)
    return path


def maildir_state(folder: Path) -> dict[str, set[str]]:
    """Subject → IMAP flags of the messages of one Maildir folder."""
    letters = {"S": "\\Seen", "F": "\\Flagged", "R": "\\Answered", "D": "\\Draft", "T": "\\Deleted"}
    state: dict[str, set[str]] = {}
    for sub in ("cur", "new"):
        for path in (folder / sub).iterdir() if (folder / sub).is_dir() else ():
            info = path.name.partition(":2,")[2]
            subject = str(email.message_from_bytes(path.read_bytes())["Subject"])
            state[subject] = {letters[c] for c in info if c in letters}
    return state


def find_message(folder: Path, subject: str) -> Path:
    for sub in ("cur", "new"):
        for path in (folder / sub).iterdir():
            if str(email.message_from_bytes(path.read_bytes())["Subject"]) == subject:
                return path
    raise AssertionError(f"{subject!r} not in {folder}")


def seed_server(server: ProtocolServer, user: str) -> None:
    with imap(server, user) as client:
        client.append("INBOX", "(\\Seen)", None, raw("server seen"))
        client.append("INBOX", "", None, raw("server new"))
        client.create("Projects/2026")  # creates Projects too (RFC 9051 §6.3.4)
        client.append("Projects", "(\\Flagged)", None, raw("server project"))
        client.append("Projects/2026", "", None, raw("server nested"))


def change_server(server: ProtocolServer, user: str) -> None:
    """Delete "server project", add "server later" to the Inbox."""
    with imap(server, user) as client:
        client.select("Projects")
        client.store("1:*", "+FLAGS", "(\\Deleted)")
        client.expunge()
        client.append("INBOX", "", None, raw("server later"))


def test_mbsync_two_way_sync(protocol_server: ProtocolServer, tmp_path: Path) -> None:
    mbsync = require_tool("mbsync")
    user = protocol_server.take_user()
    seed_server(protocol_server, user)
    local = tmp_path / "mail"
    maildir_deliver(local / "INBOX", "a", raw("local inbox"))
    maildir_deliver(local / "Local", "b", raw("local folder"), "S")
    rc = tmp_path / "mbsyncrc"
    rc.write_text(
        f"IMAPAccount courriel\nHost {HOST}\nPort {protocol_server.port('imaps')}\nUser {user}\n"
        f"Pass {protocol_server.password}\nSSLType IMAPS\nCertificateFile {protocol_server.cafile}\n\n"
        "IMAPStore remote\nAccount courriel\n\n"
        f"MaildirStore local\nPath {local}/\nInbox {local}/INBOX\nSubFolders Verbatim\n\n"
        "Channel sync\nFar :remote:\nNear :local:\nPatterns *\nCreate Both\nRemove Both\n"
        "Expunge Both\nSyncState *\n"
    )
    protocol_server.run(mbsync, "-c", rc, "-a")
    assert maildir_state(local / "INBOX") == {
        "server seen": {"\\Seen"},
        "server new": set(),
        "local inbox": set(),
    }
    assert maildir_state(local / "Projects") == {"server project": {"\\Flagged"}}
    assert maildir_state(local / "Projects" / "2026") == {"server nested": set()}
    server = folder_state(protocol_server, user)
    assert server["INBOX"] == {"server seen": {"\\Seen"}, "server new": set(), "local inbox": set()}
    assert server["Local"] == {"local folder": {"\\Seen"}}
    # Second round: changes on both sides.
    change_server(protocol_server, user)
    flagged = find_message(local / "INBOX", "server new")
    flagged.rename(flagged.with_name(flagged.name.partition(":2,")[0] + ":2,F"))
    find_message(local / "INBOX", "local inbox").unlink()
    protocol_server.run(mbsync, "-c", rc, "-a")
    assert maildir_state(local / "INBOX") == {
        "server seen": {"\\Seen"},
        "server new": {"\\Flagged"},
        "server later": set(),
    }
    assert maildir_state(local / "Projects") == {}
    server = folder_state(protocol_server, user)
    assert server["INBOX"] == {"server seen": {"\\Seen"}, "server new": {"\\Flagged"}, "server later": set()}
    assert server["Projects"] == {}


def test_offlineimap_two_way_sync(protocol_server: ProtocolServer, tmp_path: Path) -> None:
    offlineimap = require_tool("offlineimap")
    user = protocol_server.take_user()
    seed_server(protocol_server, user)
    local = tmp_path / "mail"
    maildir_deliver(local / "INBOX", "a", raw("local inbox"))
    maildir_deliver(local / "Local", "b", raw("local folder"), "S")
    rc = tmp_path / "offlineimaprc"
    rc.write_text(
        f"[general]\naccounts = courriel\nmetadata = {tmp_path / 'meta'}\n\n"
        "[Account courriel]\nlocalrepository = local\nremoterepository = remote\n\n"
        f"[Repository local]\ntype = Maildir\nlocalfolders = {local}\nsep = /\n\n"
        # imaplib2 matches the host name against the certificate's DNS names only.
        f"[Repository remote]\ntype = IMAP\nremotehost = localhost\nremoteport = {protocol_server.port('imaps')}\n"
        f"remoteuser = {user}\nremotepass = {protocol_server.password}\nssl = yes\n"
        f"sslcacertfile = {protocol_server.cafile}\n"
    )
    protocol_server.run(offlineimap, "-c", rc, "-o", "-u", "quiet")
    assert maildir_state(local / "INBOX") == {
        "server seen": {"\\Seen"},
        "server new": set(),
        "local inbox": set(),
    }
    assert maildir_state(local / "Projects") == {"server project": {"\\Flagged"}}
    assert maildir_state(local / "Projects" / "2026") == {"server nested": set()}
    server = folder_state(protocol_server, user)
    assert server["INBOX"] == {"server seen": {"\\Seen"}, "server new": set(), "local inbox": set()}
    assert server["Local"] == {"local folder": {"\\Seen"}}
    change_server(protocol_server, user)
    flagged = find_message(local / "INBOX", "server new")
    flagged.rename(flagged.with_name(flagged.name.partition(":2,")[0] + ":2,F"))
    find_message(local / "INBOX", "local inbox").unlink()
    protocol_server.run(offlineimap, "-c", rc, "-o", "-u", "quiet")
    assert maildir_state(local / "INBOX") == {
        "server seen": {"\\Seen"},
        "server new": {"\\Flagged"},
        "server later": set(),
    }
    assert maildir_state(local / "Projects") == {}
    server = folder_state(protocol_server, user)
    assert server["INBOX"] == {"server seen": {"\\Seen"}, "server new": {"\\Flagged"}, "server later": set()}
    assert server["Projects"] == {}
