"""`courriel serve`: one server process running the roles its config names.

This is the composition root (DESIGN.md §5): the only place that wires concrete parts together.
Start order: TLS material, directory and its cache, server registration, the Mailbox role (queue,
databases, transport), then the listeners. Directory changes re-read connectors and databases.
Stop order is the reverse; SIGTERM and SIGINT stop gracefully.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from courriel.config.schema import ServerConfig
from courriel.core.ports import Role
from courriel.org.cache import DirectoryCache
from courriel.org.directory import Directory
from courriel.roles.mailbox import MailboxRole
from courriel.roles.smtp_listeners import SmtpListeners
from courriel.security.throttle import LoginThrottle
from courriel.security.tls import ensure_certificate, server_context
from courriel.transport.receive.policy import ReceiveContext

log = logging.getLogger("courriel")


class Server:
    """A running server: its directory cache, roles and listeners."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.directory: Directory
        self.cache: DirectoryCache
        self.mailbox: MailboxRole | None = None
        self.smtp: SmtpListeners | None = None
        self._cache_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        cfg = self.config
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        names = [cfg.fqdn, cfg.name, "localhost", *[a for a in cfg.listen if a not in ("0.0.0.0", "::")]]
        ensure_certificate(cfg.tls_certificate, cfg.tls_key, cfg.fqdn, tuple(names[1:]))
        tls = server_context(cfg.tls_certificate, cfg.tls_key)
        self.directory = await Directory.open(cfg.directory_url, cfg.data_dir)
        await self.directory.register_server(
            cfg.name,
            cfg.fqdn,
            cfg.roles,
            cfg.site,
            tuple(a for a in cfg.listen if a not in ("0.0.0.0", "::")),
            cfg.port_offset,
            listen=cfg.listen,
        )
        self.cache = DirectoryCache(self.directory)
        await self.cache.load()
        if Role.MAILBOX in cfg.roles:
            self.mailbox = MailboxRole(cfg, self.cache)
            await self.mailbox.start()
        if self.mailbox is None:
            raise SystemExit("courriel: a server without the mailbox role needs the role-split issue's front-end proxy")
        context = ReceiveContext(
            directory=lambda: self.cache.snapshot,
            transport_config=lambda: self.cache.snapshot.transport_config,
            sink=self.mailbox.transport,
            throttle=LoginThrottle(),
            mailbox_full=self.mailbox.mailbox_full,
        )
        self.smtp = SmtpListeners(
            server=cfg.name,
            fqdn=cfg.fqdn,
            port_offset=cfg.port_offset,
            connectors=lambda: self.cache.snapshot.receive_connectors(cfg.name),
            context=context,
            tls=tls,
            log_dir=cfg.data_dir / "logs" / "protocol" / "smtp-receive",
        )
        await self.smtp.reconcile()
        self.cache.subscribe(self._directory_changed)
        self._cache_task = asyncio.create_task(self.cache.run(), name="directory-cache")

    async def _on_change(self) -> None:
        try:
            if self.mailbox is not None:
                await self.mailbox.sync_databases()
            if self.smtp is not None:
                await self.smtp.reconcile()
        except Exception:
            log.exception("applying a directory change failed")

    def _directory_changed(self, *_: object) -> None:
        asyncio.get_running_loop().create_task(self._on_change())

    async def stop(self) -> None:
        if self._cache_task is not None:
            self._cache_task.cancel()
        if self.smtp is not None:
            await self.smtp.stop()
        if self.mailbox is not None:
            await self.mailbox.stop()
        await self.directory.close()


def _setup_logging(config: ServerConfig) -> None:
    handler: logging.Handler
    if config.log_file is not None:
        config.log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(config.log_file)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(config.log_level.upper())


async def _run(config: ServerConfig) -> int:
    server = Server(config)
    await server.start()
    print(f"Courriel server {config.name} ({config.fqdn}) is running; roles: {', '.join(sorted(r.value for r in config.roles))}")
    if server.smtp is not None:
        for binding, names in server.smtp.bound():
            print(f"  smtp  {binding.address}:{binding.port + config.port_offset:<6} {', '.join(names)}")
    print("Stop with Ctrl-C (SIGINT) or SIGTERM.", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print("stopping …", flush=True)
    await server.stop()
    return 0


def serve(config: ServerConfig) -> int:
    _setup_logging(config)
    return asyncio.run(_run(config))
