"""`courriel serve`: one server running the roles its config names, in one or more worker processes.

This is the composition root (DESIGN.md §5): the only place that wires concrete parts together.
Start order: TLS material, directory and its cache, server registration, the Mailbox role (queue,
databases, transport), then the listeners. Directory changes re-read connectors, databases and
protocol settings. Stop order is the reverse; SIGTERM and SIGINT stop gracefully.

A Python process tops out near one core (DESIGN.md §6), so with `server.workers` > 1 the server
forks that many workers. Each is a whole transport with its own queue file and its own SMTP
listeners on the shared ports (SO_REUSEPORT: the kernel spreads connections); worker 0 also runs
IMAP4 and POP3. The parent only supervises: it restarts a worker that dies, and if the parent
itself is killed the kernel kills the workers (PR_SET_PDEATHSIG), so nothing is left bound.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import sys
import time

from courriel.config.schema import ServerConfig
from courriel.core.ports import Role
from courriel.org.cache import DirectoryCache
from courriel.org.directory import Directory
from courriel.roles.mailbox import MailboxRole
from courriel.roles.protocols import ProtocolServices
from courriel.roles.smtp_listeners import SmtpListeners
from courriel.security.throttle import LoginThrottle
from courriel.security.tls import ensure_certificate, server_context
from courriel.transport.receive.policy import ReceiveContext

log = logging.getLogger("courriel")
PR_SET_PDEATHSIG = 1
RESTART_DELAY = 1.0  # seconds before a crashed worker is started again


class Server:
    """A running server (or one worker of it): its directory cache, roles and listeners."""

    def __init__(self, config: ServerConfig, worker: int = 0, workers: int = 1) -> None:
        self.config = config
        self.worker = worker
        self.workers = workers
        self.directory: Directory
        self.cache: DirectoryCache
        self.mailbox: MailboxRole | None = None
        self.smtp: SmtpListeners | None = None
        self.protocols: ProtocolServices | None = None
        self._cache_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        cfg = self.config
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        names = [cfg.fqdn, cfg.name, "localhost", *[a for a in cfg.listen if a not in ("0.0.0.0", "::")]]
        ensure_certificate(cfg.tls_certificate, cfg.tls_key, cfg.fqdn, tuple(names[1:]))
        tls = server_context(cfg.tls_certificate, cfg.tls_key)
        self.directory = await Directory.open(cfg.directory_url, cfg.data_dir)
        if self.worker == 0:
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
            self.mailbox = MailboxRole(cfg, self.cache, worker=self.worker)
            await self.mailbox.start()
        if self.mailbox is None:
            raise SystemExit("courriel: a server without the mailbox role needs the role-split issue's front-end proxy")
        throttle = LoginThrottle()
        context = ReceiveContext(
            directory=lambda: self.cache.snapshot,
            transport_config=lambda: self.cache.snapshot.transport_config,
            sink=self.mailbox.transport,
            throttle=throttle,
            mailbox_size=self.mailbox.mailbox_size,
            fqdn=cfg.fqdn,
        )
        self.smtp = SmtpListeners(
            server=cfg.name,
            fqdn=cfg.fqdn,
            port_offset=cfg.port_offset,
            connectors=lambda: self.cache.snapshot.receive_connectors(cfg.name),
            context=context,
            tls=tls,
            log_dir=cfg.data_dir / "logs" / "protocol" / "smtp-receive",
            reuse_port=self.workers > 1,
        )
        await self.smtp.reconcile()
        if self.worker == 0:
            self.protocols = ProtocolServices(cfg, self.cache, self.mailbox, tls, throttle)
            await self.protocols.start()
        self.cache.subscribe(self._directory_changed)
        self._cache_task = asyncio.create_task(self.cache.run(), name="directory-cache")

    async def _on_change(self) -> None:
        try:
            if self.mailbox is not None:
                await self.mailbox.sync_databases()
            if self.smtp is not None:
                await self.smtp.reconcile()
            if self.protocols is not None:
                await self.protocols.reconcile()
        except Exception:
            log.exception("applying a directory change failed")

    def _directory_changed(self, *_: object) -> None:
        asyncio.get_running_loop().create_task(self._on_change())

    def listening(self) -> list[str]:
        """Lines for the start-up table: service, address and bound port, names."""
        lines = []
        if self.smtp is not None:
            for binding, names in self.smtp.bound():
                lines.append(f"  smtp  {binding.address}:{binding.port + self.config.port_offset:<6} {', '.join(names)}")
        if self.protocols is not None:
            for service, host, port in self.protocols.bound():
                lines.append(f"  {service:<5} {host}:{port:<6}")
        return lines

    async def stop(self) -> None:
        if self._cache_task is not None:
            self._cache_task.cancel()
        if self.smtp is not None:
            await self.smtp.stop()
        if self.protocols is not None:
            await self.protocols.stop()
        if self.mailbox is not None:
            await self.mailbox.stop()
        await self.directory.close()


def _setup_logging(config: ServerConfig, worker: int | None) -> None:
    handler: logging.Handler
    if config.log_file is not None:
        config.log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(config.log_file)
    else:
        handler = logging.StreamHandler(sys.stderr)
    tag = f"[w{worker}] " if worker is not None else ""
    handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s {tag}%(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.log_level.upper())


async def _run(config: ServerConfig, worker: int, workers: int) -> int:
    server = Server(config, worker, workers)
    await server.start()
    if worker == 0:
        roles = ", ".join(sorted(r.value for r in config.roles))
        print(f"Courriel server {config.name} ({config.fqdn}) is running; roles: {roles}; workers: {workers}")
        for line in server.listening():
            print(line)
        print("Stop with Ctrl-C (SIGINT) or SIGTERM.", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    if worker == 0:
        print("stopping …", flush=True)
    await server.stop()
    return 0


def _die_with_parent() -> None:
    """Linux: the kernel sends us SIGKILL when the supervisor dies, however it dies."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        log.warning("cannot ask to die with the supervisor (no prctl)")


def _spawn(config: ServerConfig, worker: int, workers: int) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        _die_with_parent()
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor turns Ctrl-C into SIGTERM
        _setup_logging(config, worker)
        code = asyncio.run(_run(config, worker, workers))
    except BaseException:
        logging.getLogger("courriel").exception("worker %d failed", worker)
    finally:
        os._exit(code)


def _supervise(config: ServerConfig, workers: int) -> int:
    children = {_spawn(config, i, workers): i for i in range(workers)}
    stopping = False

    def stop(_sig: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        worker = children.pop(pid, None)
        if worker is None or stopping:
            continue
        log.error("worker %d exited (status %d); starting it again", worker, status)
        time.sleep(RESTART_DELAY)
        children[_spawn(config, worker, workers)] = worker
    return 0


def serve(config: ServerConfig) -> int:
    workers = config.workers or (os.cpu_count() or 1)
    if workers == 1:
        _setup_logging(config, None)
        return asyncio.run(_run(config, 0, 1))
    _setup_logging(config, None)
    return _supervise(config, workers)
