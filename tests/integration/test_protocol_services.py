"""ProtocolServices on an all-in-one server: disabled by default, switched by the directory.

`courriel imap-settings set --enabled` (here: the same directory call) followed by the reconcile
that a directory change triggers opens the IMAP4 front end (143/993) and back end (1143/1993)
with the port offset; POP3 likewise; disabling closes them, without a restart. A login through
the front end reaches the co-located back end over the server's own address.
"""

from __future__ import annotations

import asyncio
import imaplib
import poplib
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from courriel.config import ServerConfig, load_config
from courriel.org.cache import DirectoryCache
from courriel.org.directory import Directory
from courriel.roles.mailbox import MailboxRole
from courriel.roles.protocols import ProtocolServices
from courriel.security.throttle import LoginThrottle
from courriel.security.tls import ensure_certificate, server_context
from tests.integration.mailserver import PASSWORD, create_organization
from tests.integration.protocol_env import free_offset

HOST = "127.0.0.1"


@dataclass
class Env:
    config: ServerConfig
    directory: Directory
    cache: DirectoryCache
    services: ProtocolServices
    offset: int

    async def set(self, protocol: str, enabled: bool) -> None:
        await self.directory.set_protocol_settings(protocol, enabled=enabled)
        await self.cache.refresh()
        await self.services.reconcile()

    def ports(self) -> list[tuple[str, int]]:
        return [(name, port - self.offset) for name, host, port in self.services.bound() if host == HOST]


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    offset = free_offset()
    config = load_config(
        str(await create_organization(tmp_path, directory_url=None, mailbox_db_url=None, offset=offset))
    )
    directory = await Directory.open(config.directory_url, config.data_dir)
    cache = DirectoryCache(directory)
    await cache.load()
    mailbox = MailboxRole(config, cache)
    await mailbox.start()
    ensure_certificate(config.tls_certificate, config.tls_key, config.fqdn, [HOST])
    tls = server_context(config.tls_certificate, config.tls_key)
    services = ProtocolServices(config, cache, mailbox, tls, LoginThrottle())
    try:
        yield Env(config, directory, cache, services, offset)
    finally:
        await services.stop()
        await mailbox.stop()
        await directory.close()


def refused(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


async def test_listeners_follow_the_directory(env: Env) -> None:
    await env.services.start()
    assert env.services.bound() == []  # IMAP4 and POP3 are disabled by default, as in the seed
    await env.set("imap", True)
    assert env.ports() == [
        ("imap-backend", 1143),
        ("imap-backend", 1993),
        ("imap-proxy", 143),
        ("imap-proxy", 993),
    ]
    await env.set("pop", True)
    assert len(env.ports()) == 8
    assert ("pop3-proxy", 110) in env.ports() and ("pop3-backend", 1995) in env.ports()
    await env.set("imap", False)
    assert env.ports() == [
        ("pop3-backend", 1110),
        ("pop3-backend", 1995),
        ("pop3-proxy", 110),
        ("pop3-proxy", 995),
    ]
    assert refused(143 + env.offset) and refused(1993 + env.offset)
    await env.services.reconcile()  # nothing changed: nothing moves
    assert len(env.ports()) == 4


def login_through_front_ends(env: Env) -> tuple[str, tuple[int, int]]:
    context = ssl.create_default_context(cafile=str(env.config.tls_certificate))
    with imaplib.IMAP4_SSL(HOST, 993 + env.offset, ssl_context=context, timeout=10) as client:
        typ, _ = client.login("alice@example.test", PASSWORD)
        client.logout()
    pop = poplib.POP3_SSL(HOST, 995 + env.offset, context=context, timeout=10)
    try:
        pop.user("Alice.Smith@example.test")  # any proxy address of the mailbox
        pop.pass_(PASSWORD)
        stat = pop.stat()
    finally:
        pop.quit()
    return typ, stat


async def test_front_ends_reach_the_co_located_back_ends(env: Env) -> None:
    await env.directory.set_protocol_settings("pop", enabled=True)
    await env.set("imap", True)
    typ, stat = await asyncio.to_thread(login_through_front_ends, env)
    assert typ == "OK" and stat == (0, 0)
