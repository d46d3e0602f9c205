# ruff: noqa: F811  (the tests take the imported `mailserver` fixture as a parameter of the same name)
"""Debian's SMTP clients against a real Courriel server: swaks and curl, and the mail they leave.

swaks sends plain mail on port 25, pipelined mail (RFC 2920), and submissions on 587 with
STARTTLS (RFC 3207) and AUTH PLAIN / LOGIN (RFC 4954); curl's SMTP support sends on 25 and, with
`--ssl-reqd` and `--user`, on 587. Each test checks the client's exit status and what landed in
which mailbox. The tools come from Debian (`.ci/run` installs them); without them the tests skip,
and under CI they fail.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.integration.conftest import mailserver  # noqa: F401  (the fixture: a running server)
from tests.integration.mailserver import PASSWORD, MailServer
from tests.integration.server_state import delivered_once, found, header_block, token, unreachable
from tests.integration.smtp_wire import message

pytestmark = pytest.mark.interop

ALICE, BOB = "alice@example.test", "bob@example.test"


def tool(*command: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, input=stdin, capture_output=True, timeout=60, check=False)
    return subprocess.CompletedProcess(
        result.args,
        result.returncode,
        result.stdout.decode("utf-8", "replace"),
        result.stderr.decode("utf-8", "replace"),
    )


def swaks(server: MailServer, port: str, *args: str) -> subprocess.CompletedProcess[str]:
    return tool(
        require_tool("swaks"),
        "--server",
        "127.0.0.1",
        "--port",
        str(server.port(port)),
        "--helo",
        "swaks.test",
        *args,
    )


def curl(server: MailServer, port: str, *args: str, message_file: Path) -> subprocess.CompletedProcess[str]:
    url = f"smtp://127.0.0.1:{server.port(port)}/curl.test"  # the path is curl's EHLO name
    return tool(
        require_tool("curl"),
        "--silent",
        "--show-error",
        "--max-time",
        "30",
        url,
        "--upload-file",
        str(message_file),
        *args,
    )


def trace(raw: bytes) -> str:
    return " ".join(header_block(raw).split())


def test_swaks_plain(mailserver: MailServer) -> None:
    mark = token("swaks")
    result = swaks(
        mailserver,
        "frontend",
        "--from",
        "someone@sender.test",
        "--to",
        ALICE,
        "--header",
        f"Subject: {mark}",
        "--body",
        f"token={mark}",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "<-  250 2.6.0 " in result.stdout
    raw = delivered_once(mailserver, [ALICE], mark)[ALICE]
    assert trace(raw).startswith(
        "Received: from swaks.test ([127.0.0.1]) by mx1.example.test (Courriel) with ESMTP "
    )
    assert f"Subject: {mark}\r\n".encode() in raw and b"X-Mailer: swaks" in raw


def test_swaks_pipelining_with_an_unknown_recipient(mailserver: MailServer) -> None:
    mark = token("swaks-pipe")
    result = swaks(
        mailserver,
        "frontend",
        "--pipeline",
        "--from",
        "someone@sender.test",
        "--to",
        f"{ALICE},nobody@example.test,{BOB}",
        "--header",
        f"Subject: {mark}",
        "--body",
        f"token={mark}",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # swaks writes the whole envelope before reading a reply: that is pipelining (RFC 2920).
    envelope = result.stdout.split(" -> MAIL FROM:", 1)[1].split("<-", 1)[0]
    assert envelope.count(" -> RCPT TO:") == 3 and " -> DATA" in envelope
    assert "<** 550 5.1.10 " in result.stdout
    delivered_once(mailserver, [ALICE, BOB], mark)


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_swaks_starttls_and_auth_on_submission(mailserver: MailServer, mechanism: str) -> None:
    mark = token(f"swaks-{mechanism.lower()}")
    result = swaks(
        mailserver,
        "client",
        "--tls",
        "--auth",
        mechanism,
        "--auth-user",
        ALICE,
        "--auth-password",
        PASSWORD,
        "--from",
        ALICE,
        "--to",
        BOB,
        "--header",
        f"Subject: {mark}",
        "--body",
        f"token={mark}",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "<~  235 2.7.0 Authentication successful" in result.stdout  # "~": said under TLS
    raw = delivered_once(mailserver, [BOB], mark)[BOB]
    assert " with ESMTPSA (TLS) " in trace(raw)


def test_swaks_refuses_to_send_credentials_in_clear_on_submission(mailserver: MailServer) -> None:
    mark = token("swaks-clear")
    result = swaks(
        mailserver,
        "client",
        "--auth",
        "PLAIN",
        "--auth-user",
        ALICE,
        "--auth-password",
        PASSWORD,
        "--from",
        ALICE,
        "--to",
        BOB,
        "--body",
        f"token={mark}",
    )
    assert result.returncode != 0  # AUTH is not even offered before STARTTLS
    assert "AUTH" not in result.stdout.split("STARTTLS", 1)[0].split("EHLO", 1)[1]
    assert "<-  250 2.6.0" not in result.stdout
    assert found(mailserver, BOB, mark) == []


def test_curl_plain(mailserver: MailServer, tmp_path: Path) -> None:
    mark = token("curl")
    eml = tmp_path / "message.eml"
    eml.write_bytes(message(mark, to=ALICE))
    result = curl(
        mailserver, "frontend", "--mail-from", "someone@sender.test", "--mail-rcpt", ALICE, message_file=eml
    )
    assert result.returncode == 0, result.stderr
    raw = delivered_once(mailserver, [ALICE], mark)[ALICE]
    assert trace(raw).startswith(
        "Received: from curl.test ([127.0.0.1]) by mx1.example.test (Courriel) with ESMTP "
    )
    assert raw.endswith(f"token={mark}\r\n".encode())


def test_curl_unknown_recipient_fails_the_transfer(mailserver: MailServer, tmp_path: Path) -> None:
    mark = token("curl-unknown")
    eml = tmp_path / "message.eml"
    eml.write_bytes(message(mark))
    refused = curl(
        mailserver,
        "frontend",
        "--mail-from",
        "someone@sender.test",
        "--mail-rcpt",
        "nobody@example.test",
        message_file=eml,
    )
    assert refused.returncode == 55, refused  # CURLE_SEND_ERROR: RCPT failed
    allowed = curl(
        mailserver,
        "frontend",
        "--mail-from",
        "someone@sender.test",
        "--mail-rcpt",
        "nobody@example.test",
        "--mail-rcpt",
        BOB,
        "--mail-rcpt-allowfails",
        message_file=eml,
    )
    assert allowed.returncode == 0, allowed.stderr
    delivered_once(mailserver, [BOB], mark)


def test_curl_starttls_and_auth_on_submission(mailserver: MailServer, tmp_path: Path) -> None:
    mark = token("curl-587")
    external = f"{mark}@external.test"
    eml = tmp_path / "message.eml"
    eml.write_bytes(message(mark, sender=ALICE, to=BOB, message_id=False, date=False))
    result = curl(
        mailserver,
        "client",
        "--ssl-reqd",
        "-k",
        "--user",
        f"{ALICE}:{PASSWORD}",
        "--mail-from",
        ALICE,
        "--mail-rcpt",
        BOB,
        "--mail-rcpt",
        external,
        message_file=eml,
    )
    assert result.returncode == 0, result.stderr
    raw = delivered_once(mailserver, [BOB], mark)[BOB]
    assert " with ESMTPSA (TLS) " in trace(raw)
    assert b"\r\nMessage-ID: <" in raw and b"\r\nDate: " in raw  # added to the submission (RFC 6409 §8)
    assert [external] in unreachable(mailserver).values()


def test_curl_wrong_password_is_refused(mailserver: MailServer, tmp_path: Path) -> None:
    mark = token("curl-denied")
    eml = tmp_path / "message.eml"
    eml.write_bytes(message(mark))
    result = curl(
        mailserver,
        "client",
        "--ssl-reqd",
        "-k",
        "--user",
        f"{BOB}:not-the-password",
        "--mail-from",
        BOB,
        "--mail-rcpt",
        ALICE,
        message_file=eml,
    )
    assert result.returncode == 67, result  # CURLE_LOGIN_DENIED
    assert found(mailserver, ALICE, mark) == []
