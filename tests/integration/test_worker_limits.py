"""Login throttling and connection limits hold across the worker processes of `courriel serve`.

A real server with `workers = 2` (SO_REUSEPORT: the kernel spreads connections over both). The
limits are counted in the server's shared file (security/shared_state.py), not per worker, so:
- with IMAP4 MaxConnectionsPerUser 2, of eight logins of one user exactly two succeed, at the
  back end and through the Client Access front end (per worker counts would let up to four in);
- with POP3 MaxConnectionFromSingleIP 3, the front end greets three of eight connections, and
  with MaxInboundConnectionPerSource 3 on "Default Frontend", so does SMTP on port 25;
- five failed IMAP4 logins from one address, spread over the workers, block that address's
  next SMTP AUTH on either worker;
- the slots of workers killed with SIGKILL come back once they are restarted.
Each test uses its own user (or source address), so no test waits for another's slots.
"""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import os
import poplib
import signal
import smtplib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from courriel.config import load_config
from courriel.core.ports import DEFAULT_FRONTEND
from courriel.org.directory import Directory
from tests.integration.mailserver import PASSWORD, MailServer, no_verify_tls, organization_server

HOST = "127.0.0.1"
ATTACKER = "127.0.0.2"  # another loopback source address: its own throttling key
IMAPS_BACKEND, IMAPS_FRONTEND, POP3S_FRONTEND, SUBMISSION = 1993, 993, 995, 587
ATTEMPTS = 8
PER_USER, PER_IP = 2, 3
USERS = ("carol", "dave", "erin", "frank")


async def _prepare(config_path: Path) -> None:
    config = load_config(str(config_path))
    directory = await Directory.open(config.directory_url, config.data_dir)
    try:
        for user in USERS:
            await directory.new_mailbox(f"{user}@example.test", user.title(), PASSWORD, None)
        await directory.set_protocol_settings("imap", enabled=True, max_connections_per_user=PER_USER)
        await directory.set_protocol_settings("pop", enabled=True, max_connection_from_single_ip=PER_IP)
        frontend = DEFAULT_FRONTEND.format(server=config.name)
        await directory.set_receive_connector(config.name, frontend, max_inbound_connection_per_source=PER_IP)
    finally:
        await directory.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailServer]:
    mail = organization_server(
        tmp_path_factory.mktemp("worker-limits"),
        [],
        workers=2,
        wait_ports=(IMAPS_BACKEND, IMAPS_FRONTEND, POP3S_FRONTEND, SUBMISSION),
    )
    asyncio.run(_prepare(mail.config_path))
    mail.start()
    try:
        yield mail
    finally:
        mail.stop()


def imap_logins(port: int, user: str, attempts: int) -> tuple[list[imaplib.IMAP4_SSL], list[str]]:
    """`attempts` logins, one connection each: the sessions that got in, and the refusals."""
    sessions: list[imaplib.IMAP4_SSL] = []
    refusals: list[str] = []
    for _ in range(attempts):
        imap = imaplib.IMAP4_SSL(HOST, port, ssl_context=no_verify_tls(), timeout=20)
        try:
            imap.login(f"{user}@example.test", PASSWORD)
        except imaplib.IMAP4.error as refused:
            refusals.append(str(refused))
            imap.shutdown()
        else:
            sessions.append(imap)
    return sessions, refusals


def close(sessions: list[imaplib.IMAP4_SSL]) -> None:
    for imap in sessions:
        with contextlib.suppress(OSError, imaplib.IMAP4.abort):
            imap.logout()


@pytest.mark.parametrize(("port", "user"), [(IMAPS_BACKEND, "carol"), (IMAPS_FRONTEND, "dave")])
def test_a_users_third_imap_session_is_refused_on_every_worker(
    server: MailServer, port: int, user: str
) -> None:
    sessions, refusals = imap_logins(port + server.offset, user, ATTEMPTS)
    try:
        assert len(sessions) == PER_USER, refusals
        assert len(refusals) == ATTEMPTS - PER_USER
    finally:
        close(sessions)


def test_pop3_connections_from_one_address_are_limited_on_every_worker(server: MailServer) -> None:
    greeted, refused = [], []
    try:
        for _ in range(ATTEMPTS):
            try:
                greeted.append(
                    poplib.POP3_SSL(HOST, POP3S_FRONTEND + server.offset, context=no_verify_tls(), timeout=20)
                )
            except poplib.error_proto as error:
                refused.append(error.args[0])
        assert len(greeted) == PER_IP, refused
        assert len(refused) == ATTEMPTS - PER_IP
    finally:
        for pop in greeted:
            pop.quit()


def test_smtp_connections_from_one_address_are_limited_on_every_worker(server: MailServer) -> None:
    greeted: list[smtplib.SMTP] = []
    refused: list[int] = []
    try:
        for _ in range(ATTEMPTS):
            try:
                greeted.append(smtplib.SMTP(HOST, server.port("frontend"), timeout=20))
            except smtplib.SMTPConnectError as error:
                refused.append(error.smtp_code)
        assert len(greeted) == PER_IP, refused
        assert refused == [421] * (ATTEMPTS - PER_IP)  # 4.3.2 too many connections from your address
    finally:
        for smtp in greeted:
            smtp.quit()


def smtp_auth(server: MailServer, user: str) -> int:
    """The SMTP AUTH reply code for `user`'s right password, from the attacker's address."""
    with smtplib.SMTP(HOST, SUBMISSION + server.offset, source_address=(ATTACKER, 0), timeout=30) as smtp:
        smtp.starttls(context=no_verify_tls())
        try:
            code, _ = smtp.login(f"{user}@example.test", PASSWORD)
        except smtplib.SMTPAuthenticationError as refused:
            code = refused.smtp_code
        return code


def test_failed_logins_from_one_address_are_throttled_on_every_worker(server: MailServer) -> None:
    guesses = []
    try:
        # Five wrong passwords, one connection each: the server records each failure before it
        # waits the throttle's delay to answer, so the replies are not waited for.
        for _ in range(5):
            raw = socket.create_connection((HOST, IMAPS_BACKEND + server.offset), 20, (ATTACKER, 0))
            guess = no_verify_tls().wrap_socket(raw)
            assert guess.recv(1024).startswith(b"* OK")
            guess.sendall(b"a1 LOGIN mallory@example.test wrong-password\r\n")
            guesses.append(guess)
        codes = []
        for _ in range(100):  # until the five are recorded (each costs an argon2 check): ≤ ~15 s
            codes.append(smtp_auth(server, "erin"))
            if codes[-1] == 454:
                break
            time.sleep(0.1)
        assert codes[-1] == 454, codes  # 4.7.0 too many failed authentication attempts
        # From now on every worker refuses the address, even the right password of another user.
        assert [smtp_auth(server, "erin") for _ in range(6)] == [454] * 6
    finally:
        for guess in guesses:
            guess.close()


def workers_of(server: MailServer) -> set[int]:
    assert server.process is not None
    pid = server.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return {int(child) for child in children}


def test_killed_workers_give_their_slots_back(server: MailServer) -> None:
    held, _ = imap_logins(IMAPS_BACKEND + server.offset, "frank", PER_USER)
    assert len(held) == PER_USER
    killed = workers_of(server)
    assert len(killed) == 2
    for pid in killed:  # whichever worker holds the sessions dies without giving anything back
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for _ in range(300):  # the supervisor restarts each after a second: bounded at ~30 s
        workers = workers_of(server)
        if len(workers) == 2 and not workers & killed:
            break
        time.sleep(0.1)
    assert len(workers) == 2 and not workers & killed
    for _ in range(300):  # and until they listen again
        with contextlib.suppress(OSError), socket.create_connection((HOST, IMAPS_BACKEND + server.offset), 1):
            break
        time.sleep(0.1)
    sessions, refusals = imap_logins(IMAPS_BACKEND + server.offset, "frank", PER_USER + 1)
    try:
        assert len(sessions) == PER_USER, refusals
    finally:
        close(sessions)
        for imap in held:
            with contextlib.suppress(OSError):
                imap.shutdown()
