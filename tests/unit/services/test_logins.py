"""One login check for every protocol (services/logins.py `PasswordLogin`): IMAP4 and POP3
(`DirectoryLogin`) and HTTP (clientaccess/http.py `BasicLogin`) differ only in the recipients
they log in and the switches they read, and each names itself in the log."""

from __future__ import annotations

import logging
from typing import cast

import pytest

from courriel.clientaccess.http import BasicLogin
from courriel.org.model import AcceptedDomain, ProtocolSettings, Recipient, RecipientKind
from courriel.org.snapshot import DirectorySnapshot
from courriel.security.passwords import hash_password
from courriel.security.throttle import LoginThrottle
from courriel.services.logins import DirectoryLogin, PasswordLogin

PASSWORD_HASH = hash_password("secret")
IP = "192.0.2.7"


class Directory:
    """What the logins read of a snapshot."""

    def __init__(self, *recipients: Recipient, imap: bool = True, pop: bool = True) -> None:
        self.by_address = {a.casefold(): r for r in recipients for a in r.addresses}
        self.imap_settings = ProtocolSettings(enabled=imap)
        self.pop_settings = ProtocolSettings(enabled=pop)

    def recipient(self, address: str) -> Recipient | None:
        return self.by_address.get(address.casefold())

    def default_domain(self) -> AcceptedDomain:
        return AcceptedDomain("example.test", default=True)


def mailbox(address: str, *, database: str | None = "DB01", imap: bool = True, pop: bool = True) -> Recipient:
    return Recipient(
        1,
        RecipientKind.MAILBOX,
        address,
        address,
        (address,),
        database,
        "g-1",
        PASSWORD_HASH,
        imap_enabled=imap,
        pop_enabled=pop,
    )


class Gate:
    """A login of one protocol over a fake directory, its throttle and the delays it slept."""

    def __init__(self, protocol: str, directory: Directory) -> None:
        self.throttle = LoginThrottle(max_failures=10, base_delay=1.0, max_delay=4.0)
        self.slept: list[float] = []

        def snapshot() -> DirectorySnapshot:
            return cast(DirectorySnapshot, directory)

        self.login: PasswordLogin = (
            BasicLogin(snapshot, self.throttle, sleep=self.sleep)
            if protocol == "http"
            else DirectoryLogin(
                snapshot, self.throttle, "imap" if protocol == "imap" else "pop", sleep=self.sleep
            )
        )

    async def sleep(self, delay: float) -> None:
        self.slept.append(delay)


async def verify(
    caplog: pytest.LogCaptureFixture, gate: Gate, username: str, password: str = "secret"
) -> tuple[Recipient | None, list[str]]:
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="courriel"):
        found = await gate.login.verify(IP, username, password)
    return found, [r.getMessage() for r in caplog.records]


@pytest.mark.parametrize("protocol", ["imap", "pop", "http"])
async def test_every_protocol_logs_in_a_mailbox_and_names_itself_on_a_refusal(
    protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    gate = Gate(protocol, Directory(mailbox("alice@example.test")))
    found, lines = await verify(caplog, gate, "alice")
    assert found is not None and found.primary_address == "alice@example.test"
    assert lines == [] and gate.slept == []
    found, lines = await verify(caplog, gate, "alice@example.test", "wrong")
    assert found is None
    assert lines == [f"{protocol} login for 'alice@example.test' from {IP} failed: bad credentials"]
    assert gate.slept == [1.0]


@pytest.mark.parametrize("protocol", ["imap", "pop", "http"])
async def test_a_throttled_name_is_refused_without_a_check(
    protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    gate = Gate(protocol, Directory(mailbox("alice@example.test")))
    for _ in range(10):
        gate.throttle.record_failure(IP, "alice@example.test")
    found, lines = await verify(caplog, gate, "alice@example.test")
    assert found is None
    assert lines == [f"{protocol} login for 'alice@example.test' from {IP} refused: throttled"]


@pytest.mark.parametrize(
    ("protocol", "directory"),
    [
        ("imap", Directory(mailbox("alice@example.test", imap=False))),
        ("imap", Directory(mailbox("alice@example.test"), imap=False)),
        ("pop", Directory(mailbox("alice@example.test", pop=False))),
        ("pop", Directory(mailbox("alice@example.test"), pop=False)),
        ("imap", Directory(mailbox("alice@example.test", database=None))),
    ],
)
async def test_imap_and_pop_read_their_switches_once_the_password_is_right(
    protocol: str, directory: Directory, caplog: pytest.LogCaptureFixture
) -> None:
    gate = Gate(protocol, directory)
    found, lines = await verify(caplog, gate, "alice@example.test")
    assert found is None
    assert lines == [f"{protocol} login for 'alice@example.test' from {IP} refused: protocol disabled"]
    assert gate.slept == [1.0]  # counted as any failure


async def test_http_reads_no_protocol_switch(caplog: pytest.LogCaptureFixture) -> None:
    directory = Directory(mailbox("alice@example.test", imap=False, pop=False), imap=False, pop=False)
    found, lines = await verify(caplog, Gate("http", directory), "alice@example.test")
    assert found is not None and lines == []


async def test_http_refuses_a_mailbox_without_a_database_as_an_unknown_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gate = Gate("http", Directory(mailbox("nodb@example.test", database=None)))
    found, lines = await verify(caplog, gate, "nodb@example.test")
    assert found is None
    assert lines == [f"http login for 'nodb@example.test' from {IP} failed: bad credentials"]
    assert gate.slept == [1.0]
