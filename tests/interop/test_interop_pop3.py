"""Real POP3 clients against `courriel serve` through the Client Access front end (110/995).

fetchmail (STLS and implicit TLS, keep and delete), getmail6 (POP3 over TLS into a Maildir),
curl (LIST, RETR, UIDL, DELE) and Python's poplib. Each test checks what the client got (the
messages, byte for byte where the tool keeps them whole) and what is left in the mailbox.
"""

from __future__ import annotations

import os
import poplib
import subprocess
from email.message import Message
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.interop.conftest import HOST, ProtocolServer
from tests.interop.mailtools import bsmtp_messages, getmail_rc, maildir_for_getmail

pytestmark = pytest.mark.interop


def subjects(messages: list[Message]) -> list[str]:
    return sorted(str(m["Subject"]) for m in messages)


def fetchmail_rc(server: ProtocolServer, user: str, folder: Path, *, implicit: bool, keep: bool) -> Path:
    port = server.port("pop3s" if implicit else "pop3")
    rc = folder / "fetchmailrc"
    rc.write_text(
        f"set no syslog\n"
        f"poll {HOST} service {port} protocol POP3 timeout 30 uidl\n"
        f'  user "{user}" there with password "{server.password}" is "root" here\n'
        f"  {'ssl' if implicit else ''} sslproto 'TLS1.2+' sslcertck sslcertfile '{server.cafile}'\n"
        # fetchmail matches the name it polls against the certificate's CN, not its IP SANs.
        f"  sslcommonname '{server.fqdn}'\n"
        f"  bsmtp '{folder / 'out.bsmtp'}'\n"
        f"  {'keep' if keep else 'nokeep'} fetchall\n"
    )
    rc.chmod(0o600)  # fetchmail refuses a readable rc file holding a password
    return rc


@pytest.mark.parametrize("implicit", [False, True], ids=["stls", "tls"])
def test_fetchmail_pop3(protocol_server: ProtocolServer, tmp_path: Path, implicit: bool) -> None:
    fetchmail = require_tool("fetchmail")
    user = protocol_server.take_user()
    for n in range(3):
        protocol_server.send(user, f"fetchmail {n}", f"Line one\n.dot line\nmessage {n}\n")
    delivered = protocol_server.inbox(user, 3)
    env = {**os.environ, "FETCHMAILHOME": str(tmp_path)}
    # First pass keeps the mail on the server: everything comes, nothing goes.
    rc = fetchmail_rc(protocol_server, user, tmp_path, implicit=implicit, keep=True)
    # fetchmail exits 1 when there was no mail: here there is, so 0.
    done = protocol_server.run(fetchmail, "-f", rc, "--nodetach", env=env).stderr
    fetched = bsmtp_messages(tmp_path / "out.bsmtp")
    assert subjects(fetched) == ["fetchmail 0", "fetchmail 1", "fetchmail 2"], done
    assert all(".dot line" in (m.get_payload() or "") for m in fetched)  # dot-unstuffed correctly
    assert len(protocol_server.inbox(user, 3)) == len(delivered)
    # Second pass deletes what it fetched (DELE, then QUIT's UPDATE state).
    (tmp_path / "out.bsmtp").unlink()
    rc = fetchmail_rc(protocol_server, user, tmp_path, implicit=implicit, keep=False)
    protocol_server.run(fetchmail, "-f", rc, "--nodetach", env=env)
    assert len(bsmtp_messages(tmp_path / "out.bsmtp")) == 3
    assert protocol_server.inbox(user, 0) == []


def test_getmail_pop3_ssl_into_maildir(protocol_server: ProtocolServer, tmp_path: Path) -> None:
    getmail = require_tool("getmail")
    user = protocol_server.take_user()
    for n in range(2):
        protocol_server.send(user, f"getmail {n}")
    delivered = protocol_server.inbox(user, 2)
    with maildir_for_getmail() as (maildir, as_user):
        retriever = f"type = SimplePOP3SSLRetriever\nport = {protocol_server.port('pop3s')}\n"
        getmail_rc(
            protocol_server, tmp_path, retriever, user, f"type = Maildir\npath = {maildir}/\n{as_user}"
        )
        protocol_server.run(getmail, "--getmaildir", tmp_path, "--rcfile", "getmailrc")
        got = sorted(p.read_bytes() for p in (maildir / "new").iterdir())
    # getmail stores LF line ends and puts a Return-Path on top; the rest is byte for byte.
    assert [g.split(b"\n", 1)[1] for g in got] == sorted(d.replace(b"\r\n", b"\n") for d in delivered)
    assert all(g.startswith(b"Return-Path: ") for g in got)
    assert protocol_server.inbox(user, 0) == []


def curl(server: ProtocolServer, user: str, url: str, *extra: str) -> bytes:
    """curl's output as bytes (text mode would turn the CRLFs we check into LFs)."""
    tool = require_tool("curl")
    command = [tool, "--silent", "--show-error", "--ssl-reqd", "--cacert", str(server.cafile)]
    command += ["--user", f"{user}:{server.password}", *extra, url]
    done = subprocess.run(command, capture_output=True, timeout=120)
    assert done.returncode == 0, f"curl exited {done.returncode}: {done.stderr.decode(errors='replace')}"
    return done.stdout


def test_curl_pop3(protocol_server: ProtocolServer) -> None:
    user = protocol_server.take_user()
    for n in range(2):
        protocol_server.send(user, f"curl {n}")
    delivered = protocol_server.inbox(user, 2)
    base = f"pop3://{HOST}:{protocol_server.port('pop3')}"  # STLS, required by --ssl-reqd
    listing = curl(protocol_server, user, base + "/")
    assert listing == f"1 {len(delivered[0])}\r\n2 {len(delivered[1])}\r\n".encode()
    assert curl(protocol_server, user, base + "/2") == delivered[1]
    uidl = curl(
        protocol_server, user, f"pop3s://{HOST}:{protocol_server.port('pop3s')}/", "--request", "UIDL"
    )
    assert [line.split()[0] for line in uidl.splitlines()] == [b"1", b"2"]
    curl(protocol_server, user, base + "/1", "--request", "DELE", "--list-only")
    assert protocol_server.inbox(user, 1) == [delivered[1]]


def test_poplib_top_uidl_and_dele(protocol_server: ProtocolServer) -> None:
    user = protocol_server.take_user()
    protocol_server.send(user, "poplib", "first body line\nsecond body line\n")
    (delivered,) = protocol_server.inbox(user, 1)
    pop = poplib.POP3_SSL(HOST, protocol_server.port("pop3s"), context=protocol_server.context(), timeout=30)
    try:
        pop.user(user)
        assert pop.pass_(protocol_server.password).startswith(b"+OK")
        assert pop.stat() == (1, len(delivered))
        top = pop.top(1, 1)[1]
        assert top[-1] == b"first body line" and b"Subject: poplib" in top
        uid_before = pop.uidl(1).split()[2]
        pop.dele(1)
        pop.rset()
        pop.dele(1)
    finally:
        pop.quit()
    assert protocol_server.inbox(user, 0) == []
    assert uid_before  # a stable unique-id was given
