"""`courriel serve`: one server running the roles its config names, in one or more worker processes.

This is the composition root (DESIGN.md §5): the only place that wires concrete parts together.
Start order: TLS material, directory and its cache, server registration, the organization
credentials, the Mailbox role (queue, databases, transport) if the server has it, the Front End
Transport if it has Client Access, then the listeners. Directory changes re-read connectors,
databases and protocol settings. Stop order is the reverse; SIGTERM and SIGINT stop gracefully.

Any subset of client-access and mailbox runs (DESIGN.md §2). A receive connector hands its
transactions to its own service: Transport connectors ("Default <server>", "Client Proxy") to
the local queue; Front End Transport connectors to the stateless front-end proxy
(clientaccess/smtp_proxy.py), except that where the Mailbox role shares the process, "Default
Frontend" and "Client Frontend" hand over to the local transport in process (the hop over the
network would change nothing but the cost).

A Python process tops out near one core (DESIGN.md §6), so with `server.workers` > 1 the server
forks that many workers. Each runs every role of the server (with the Mailbox role, a transport
with its own queue file) and listens on the shared ports (SO_REUSEPORT: the kernel spreads
connections), SMTP as IMAP4 and POP3. The parent only supervises: it restarts a worker that dies, and if the parent
itself is killed the kernel kills the workers (PR_SET_PDEATHSIG), so nothing is left bound.

One server runs per data directory (`hold_instance_lock`). Every listener shares its port with
SO_REUSEPORT, so a second `courriel serve` of the same config would bind without an error and
silently split the connections, and its transport would scan the same queue; it is refused
instead, naming the running one. Another server given the same address and port does not
listen there (services/port_claim.py: the lock tells the workers of a server from the rest).
"""

from __future__ import annotations

import asyncio
import ctypes
import fcntl
import logging
import os
import signal
import sys
import time
from collections.abc import Callable

from courriel.clientaccess.locator import BackendLocator
from courriel.clientaccess.smtp_outbound import OutboundProxy
from courriel.clientaccess.smtp_proxy import FrontEndTransport
from courriel.config.schema import ServerConfig
from courriel.core.errors import Conflict, TransientError
from courriel.core.ids import new_id
from courriel.core.ports import DEFAULT_FRONTEND, Role
from courriel.dns import NextHopResolver
from courriel.org.cache import DirectoryCache
from courriel.org.directory import Directory
from courriel.org.model import LoggingLevel, ReceiveConnector, Recipient, TransportRole
from courriel.roles.credentials import server_credentials
from courriel.roles.http import HttpServices
from courriel.roles.mailbox import MailboxRole
from courriel.roles.protocols import ProtocolServices
from courriel.roles.smtp_listeners import SmtpListeners
from courriel.security.orgca import OrgCredentials
from courriel.security.shared_state import SharedState
from courriel.security.slots import SharedSlots
from courriel.security.throttle import LoginThrottle
from courriel.security.tls import ensure_certificate, server_context
from courriel.services import port_claim
from courriel.transport.deliver.client import ProtocolLogger
from courriel.transport.protocol_log import ProtocolLog
from courriel.transport.receive.policy import MessageSink, ReceiveContext
from courriel.transport.route.organization import INTRA_ORG_CONNECTOR
from courriel.transport.service import Accepted, Submission

log = logging.getLogger("courriel")
PR_SET_PDEATHSIG = 1
RESTART_DELAY = 1.0  # seconds before a crashed worker is started again
LOCK_WAIT = 5.0  # seconds a start waits for the lock: the workers of a server just killed are exiting
LOCK_FILE = "server.lock"


class ConnectorSink:
    """Each transaction to the service of the receive connector that took it (module docstring)."""

    def __init__(
        self,
        connectors: Callable[[], tuple[ReceiveConnector, ...]],
        transport: MessageSink | None,
        frontend: FrontEndTransport | None,
    ) -> None:
        self.connectors = connectors
        self.transport = transport
        self.frontend = frontend

    def _frontend_role(self, name: str | None) -> bool:
        key = (name or "").casefold()
        return any(c.name.casefold() == key and c.transport_role is TransportRole.FRONTEND for c in self.connectors())

    async def submit(self, sub: Submission) -> Accepted:
        frontend = self.frontend
        # A Front End Transport connector relays, unless the transport shares the process and the
        # mail stays in the organization (then the hop would change nothing but the cost).
        relayed = self.transport is None or (frontend is not None and frontend.is_outbound_proxy(sub.connector))
        if frontend is not None and relayed and self._frontend_role(sub.connector):
            handed = await frontend.submit(sub)
            return Accepted(handed.queue_id, handed.message_id)
        if self.transport is None:  # a Transport connector on a server without the Mailbox role
            raise TransientError("Temporary failure storing the message", f"{sub.connector}: no Mailbox role here")
        return await self.transport.submit(sub)


async def _no_mailbox_size(_recipient: Recipient) -> int | None:
    return None


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
        self.http: HttpServices | None = None
        self.frontend: FrontEndTransport | None = None
        self._send_log: ProtocolLog | None = None
        # What the workers must agree on: failed logins, connection slots (security/shared_state.py).
        self.shared = SharedState.of_server(config.data_dir)
        self._cache_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        cfg = self.config
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        self.shared.open()
        names = [cfg.fqdn, cfg.name, "localhost", *cfg.addresses]
        ensure_certificate(cfg.tls_certificate, cfg.tls_key, cfg.fqdn, tuple(names[1:]))
        tls = server_context(cfg.tls_certificate, cfg.tls_key)
        self.directory = await Directory.open(cfg.directory_url, cfg.data_dir)
        if self.worker == 0:
            await self.directory.register_server(
                cfg.name,
                cfg.fqdn,
                cfg.roles,
                cfg.site,
                cfg.addresses,
                cfg.port_offset,
                listen=cfg.listen,
            )
        self.cache = DirectoryCache(self.directory)
        await self.cache.load()
        if not cfg.roles & {Role.MAILBOX, Role.CLIENT_ACCESS}:
            raise SystemExit("courriel: the edge role is not served by this command yet")
        credentials = await server_credentials(self.directory, cfg)
        if Role.MAILBOX in cfg.roles:
            self.mailbox = MailboxRole(cfg, self.cache, worker=self.worker, credentials=credentials)
            await self.mailbox.start()
        if Role.CLIENT_ACCESS in cfg.roles:
            self.frontend = self._frontend(credentials)
        throttle = LoginThrottle(shared=self.shared)
        context = ReceiveContext(
            directory=lambda: self.cache.snapshot,
            transport_config=lambda: self.cache.snapshot.transport_config,
            sink=ConnectorSink(
                lambda: self.cache.snapshot.receive_connectors(cfg.name),
                self.mailbox.transport if self.mailbox is not None else None,
                self.frontend,
            ),
            throttle=throttle,
            slots=SharedSlots(self.shared),
            mailbox_size=self.mailbox.mailbox_size if self.mailbox is not None else _no_mailbox_size,
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
            credentials=credentials,
        )
        await self.smtp.reconcile()
        self.http = HttpServices(cfg, self.cache, tls, throttle, org=credentials, reuse_port=self.workers > 1)
        await self.http.start()
        # Every worker serves IMAP4 and POP3 on the shared ports, as SMTP (roles/protocols.py).
        self.protocols = ProtocolServices(
            cfg,
            self.cache,
            self.mailbox,
            tls,
            throttle,
            reuse_port=self.workers > 1,
            slots=SharedSlots(self.shared),
        )
        await self.protocols.start()
        self.cache.subscribe(self._directory_changed)
        self._cache_task = asyncio.create_task(self.cache.run(), name="directory-cache")

    def _frontend(self, credentials: OrgCredentials) -> FrontEndTransport:
        """Front End Transport: relays to Mailbox servers (organization certificate) and, for
        "Outbound Proxy Frontend", to the Internet; its send-side protocol log is its own."""
        cfg = self.config
        snapshot = lambda: self.cache.snapshot  # noqa: E731
        self._send_log = send_log = ProtocolLog(
            cfg.data_dir / "logs" / "protocol" / "frontend" / "smtp-send", self._send_logging_enabled, prefix="SEND"
        )

        def session_log(connector: str) -> ProtocolLogger:
            session = new_id()[-12:]
            return lambda event, text: send_log.write(connector, session, event, text)

        backend_tls = credentials.client_context()
        user_tls = credentials.user_context()  # as a user: Client Frontend → Client Proxy
        return FrontEndTransport(
            server=cfg.name,
            fqdn=cfg.fqdn,
            locator=BackendLocator(snapshot, cfg.name, cfg.listen),
            directory=snapshot,
            backend_tls=lambda: backend_tls,
            user_tls=lambda: user_tls,
            outbound=OutboundProxy(
                directory=snapshot,
                resolver=NextHopResolver(list(cfg.dns_nameservers) or None, timeout=cfg.dns_timeout),
                fqdn=cfg.fqdn,
                protocol_log=session_log,
            ),
            protocol_log=lambda: session_log(INTRA_ORG_CONNECTOR),
        )

    def _send_logging_enabled(self, connector: str) -> bool:
        """Sessions to Mailbox servers are logged as "Default Frontend" is (Verbose by default);
        sessions to the Internet as their send connector says."""
        snapshot = self.cache.snapshot
        if connector == INTRA_ORG_CONNECTOR:
            name = DEFAULT_FRONTEND.format(server=self.config.name).casefold()
            levels = [c.protocol_logging_level for c in snapshot.receive_connectors(self.config.name) if c.name.casefold() == name]
        else:
            levels = [c.protocol_logging_level for c in snapshot.send_connectors() if c.name == connector]
        return LoggingLevel.VERBOSE in levels

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
                lines.append(f"  {'smtp':<12} {binding.address}:{binding.port + self.config.port_offset:<6} {', '.join(names)}")
        if self.protocols is not None:
            for service, host, port in self.protocols.bound():
                lines.append(f"  {service:<12} {host}:{port}")
        if self.http is not None:
            for service, host, port in self.http.bound():
                lines.append(f"  {service:<12} {host}:{port}")
        return lines

    async def stop(self) -> None:
        if self._cache_task is not None:
            self._cache_task.cancel()
        if self.smtp is not None:
            await self.smtp.stop()
        if self.http is not None:
            await self.http.stop()
        if self.protocols is not None:
            await self.protocols.stop()
        if self.frontend is not None:
            await self.frontend.stop()
        if self._send_log is not None:
            self._send_log.close()
        if self.mailbox is not None:
            await self.mailbox.stop()
        await self.directory.close()
        self.shared.close()


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


def hold_instance_lock(config: ServerConfig, wait: float = LOCK_WAIT) -> int:
    """Take the data directory's lock for this process and the workers it forks (they inherit
    the descriptor, so the lock lasts until the last of them exits); Conflict if another server
    holds it after `wait` seconds. The file names the holder's pid for the message."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(config.data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
                os.close(fd)
                raise Conflict(
                    "server already running",
                    f"server {config.name} is already running on {config.data_dir} (pid {holder}); stop it first",
                ) from None
            time.sleep(0.1)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    return fd


def serve(config: ServerConfig) -> int:
    hold_instance_lock(config)
    port_claim.set_owner(config.data_dir / LOCK_FILE)
    workers = config.workers or (os.cpu_count() or 1)
    if workers == 1:
        _setup_logging(config, None)
        return asyncio.run(_run(config, 0, 1))
    _setup_logging(config, None)
    return _supervise(config, workers)
