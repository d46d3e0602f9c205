"""Baseline (b): Postfix → LMTP → Dovecot Maildir, the established pipeline Courriel replaces.

A private Postfix instance and a private Dovecot instance, both under
`WORKDIR/postfix-dovecot/`, configured as `/work/shared/research/peer-baseline.md`
describes; the system's own Postfix and Dovecot configuration is read, never written, and
neither system daemon is started. Postfix listens on 127.0.0.1:2526 only (a master.cf entry
in place of the `smtp inet` one, so whatever holds port 25 does not matter), accepts the
virtual domain example.test (recipients from an `inline:` map) and hands each message over
LMTP (RFC 2033) to Dovecot through a socket in its queue directory; Dovecot stores into
`mail/<user>/Maildir` as the `mail` system user.

Durability is left at the packages' defaults, as in the baseline: Postfix fsyncs the queue
file before its 250, Dovecot fsyncs the message (`mail_fsync = optimized`) before its LMTP
250. Changed from Debian's defaults only: `default_process_limit = 200` (100 concurrent SMTP
sessions never hit the smtpd ceiling), logging to files, and loopback-only listeners.

A message is end to end when Dovecot logs `saved mail to INBOX` (tailed from its info log).

To keep it running for a look by hand: `python bench/smtp_inbound.py --serve postfix-dovecot`.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

from procfs import working_in
from watch import DeliveryCount, LogTail, dovecot_saved

from peers.system import HOST, System, wait_listening, which

# Executables of the daemons of both instances, to recognise them among all processes.
DAEMONS = ("/usr/lib/postfix/", "/usr/lib/dovecot/", "/usr/sbin/dovecot")
MASTER_CF_DIST = Path("/usr/share/postfix/master.cf.dist")
USERS = ("alice", "bob")
DOMAIN = "example.test"
IMAP_PORT = 2143
# Files smtpd and friends need inside their chroot (the queue directory), as Debian's
# configure-instance.sh copies them for the system instance: name resolution and time zone.
CHROOT_FILES = (
    "etc/localtime",
    "etc/services",
    "etc/resolv.conf",
    "etc/hosts",
    "etc/host.conf",
    "etc/nsswitch.conf",
)

MAIN_CF = """\
# Private Postfix instance of the Courriel SMTP benchmark (bench/peers/postfix_dovecot.py).
compatibility_level = 3.6
queue_directory = {spool}
data_directory = {data}
myhostname = postfix-bench.localdomain
mydestination = localhost
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks_style = host
alias_maps =
alias_database =
biff = no
# Log to a file through postlogd (there may be no syslog daemon on this machine).
maillog_file = {maillog}
maillog_file_prefixes = {workdir}
virtual_mailbox_domains = {domain}
virtual_mailbox_maps = inline:{{ {recipients} }}
virtual_transport = lmtp:unix:private/dovecot-lmtp
# The one limit raised from the defaults: 100 concurrent sessions must not meet the ceiling.
default_process_limit = 200
"""

DOVECOT_CONF = """\
# Private Dovecot instance of the Courriel SMTP benchmark (bench/peers/postfix_dovecot.py).
# Benchmark only, loopback only: any user logs in with the password "pass".
instance_name = courriel-bench
base_dir = {run}
state_dir = {state}
protocols = imap lmtp
listen = {host}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
log_path = {log}
info_log_path = {info_log}
mail_location = maildir:~/Maildir
mail_fsync = optimized
# Mail is stored as the Debian "mail" system user (uid 8): no account to create or remove.
first_valid_uid = {uid}
first_valid_gid = {gid}
passdb {{
  driver = static
  args = password=pass
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={mail}/%n allow_all_users=yes
}}
service lmtp {{
  unix_listener {spool}/private/dovecot-lmtp {{
    mode = 0600
    user = postfix
    group = postfix
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = {host}
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""


def run(
    argv: list[str], env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    argv = [which(argv[0]) or argv[0], *argv[1:]]
    return subprocess.run(argv, capture_output=True, text=True, env=env, check=check, timeout=60)


def run_daemon(argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
    """Run a command that daemonizes: its output goes to `log`, not to a pipe the daemon would
    inherit and hold open."""
    with log.open("ab") as out:
        status = subprocess.run(
            [which(argv[0]) or argv[0], *argv[1:]], stdout=out, stderr=out, env=env, timeout=60
        ).returncode
    if status != 0:
        raise RuntimeError(f"{' '.join(argv)} failed with status {status}; see {log}")


def read_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if os.path.exists(f"/proc/{pid}") else None


class PostfixDovecot(System):
    name = "postfix-dovecot"
    port = 2526

    def __init__(self, workdir: Path, recipient: str) -> None:
        super().__init__(workdir, recipient)
        w = self.workdir
        self.etc = w / "postfix" / "etc"
        self.spool = w / "postfix" / "spool"
        self.maillog = w / "postfix" / "maillog"
        self.dovecot_conf = w / "dovecot" / "dovecot.conf"
        self.dovecot_run = w / "dovecot" / "run"
        self.dovecot_info_log = w / "dovecot" / "info.log"
        self.mail = w / "mail"

    def missing(self) -> str | None:
        needed = {
            "postfix": "postfix",
            "postsuper": "postfix",
            "dovecot": "dovecot-core",
            "doveconf": "dovecot-core",
        }
        absent = sorted({pkg for prog, pkg in needed.items() if which(prog) is None})
        if not Path("/usr/lib/dovecot/lmtp").exists():
            absent.append("dovecot-lmtpd")
        if not Path("/usr/lib/dovecot/imap").exists():
            absent.append("dovecot-imapd")
        if absent:
            return f"not installed: {', '.join(absent)} (apt-get install postfix dovecot-lmtpd dovecot-imapd)"
        if os.geteuid() != 0:
            return "Postfix and Dovecot instances need root to start"
        return None

    # -- configuration -------------------------------------------------------------------

    def _postfix_env(self) -> dict[str, str]:
        return {**os.environ, "MAIL_CONFIG": str(self.etc)}

    def _write_config(self) -> None:
        mail = pwd.getpwnam("mail")
        for d in (self.etc, self.spool, self.dovecot_run, self.workdir / "dovecot" / "state", self.mail):
            d.mkdir(parents=True, exist_ok=True)
        os.chown(self.spool, 0, 0)
        os.chown(self.mail, mail.pw_uid, mail.pw_gid)
        recipients = ", ".join(f"{u}@{DOMAIN}={u}" for u in USERS)
        (self.etc / "main.cf").write_text(
            MAIN_CF.format(
                spool=self.spool,
                data=self.workdir / "postfix" / "data",
                maillog=self.maillog,
                workdir=self.workdir,
                domain=DOMAIN,
                recipients=recipients,
            )
        )
        (self.etc / "master.cf").write_text(self._master_cf())
        self.dovecot_conf.write_text(
            DOVECOT_CONF.format(
                run=self.dovecot_run,
                state=self.workdir / "dovecot" / "state",
                host=HOST,
                log=self.workdir / "dovecot" / "dovecot.log",
                info_log=self.dovecot_info_log,
                uid=mail.pw_uid,
                gid=mail.pw_gid,
                mail=self.mail,
                spool=self.spool,
                imap_port=IMAP_PORT,
            )
        )
        # Creates the queue subdirectories with Postfix's own ownership rules.
        run(["postfix", "-c", str(self.etc), "check"], env=self._postfix_env())
        for rel in CHROOT_FILES:
            src = Path("/") / rel
            if src.is_file():
                dst = self.spool / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
                dst.chmod(0o644)

    def _master_cf(self) -> str:
        """Debian's packaged master.cf (chroot as Debian ships it) with smtpd on 127.0.0.1:PORT
        in place of port 25."""
        dist = MASTER_CF_DIST.read_text()
        smtp_inet = re.compile(r"^smtp(\s+)inet(\s)", re.MULTILINE)
        if not smtp_inet.search(dist):
            raise RuntimeError(f"no 'smtp inet' service in {MASTER_CF_DIST}")
        return smtp_inet.sub(f"{HOST}:{self.port}\\1inet\\2", dist, count=1)

    # -- lifecycle -------------------------------------------------------------------------

    def _postfix_pid(self) -> int | None:
        return read_pid(self.spool / "pid" / "master.pid")

    def _dovecot_pid(self) -> int | None:
        return read_pid(self.dovecot_run / "master.pid")

    async def start(self) -> None:
        await self.stop()  # a previous bench killed hard may have left this instance running
        self.check_port_free()
        self._write_config()
        run_daemon(["dovecot", "-c", str(self.dovecot_conf)], self.workdir / "dovecot" / "start.log")
        socket_path = self.spool / "private" / "dovecot-lmtp"
        deadline = time.monotonic() + 15
        while not socket_path.exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"Dovecot did not create {socket_path}; see {self.workdir / 'dovecot'}")
            await asyncio.sleep(0.05)
        run_daemon(
            ["postfix", "-c", str(self.etc), "start"],
            self.workdir / "postfix" / "start.log",
            self._postfix_env(),
        )
        await wait_listening(self.port, 30)

    async def stop(self) -> None:
        postfix_pid = self._postfix_pid()
        if postfix_pid is not None:
            env = self._postfix_env()
            run_daemon(["postfix", "-c", str(self.etc), "stop"], self.workdir / "postfix" / "start.log", env)
        dovecot_pid = self._dovecot_pid()
        if dovecot_pid is not None:
            run(["doveadm", "-c", str(self.dovecot_conf), "stop"], check=False)
        await self._reap()

    async def _reap(self) -> None:
        """Wait until every process of both instances is gone -- Dovecot's children exit a
        moment after their master -- and kill what overstays."""
        deadline = time.monotonic() + 15
        while leftovers := working_in(str(self.workdir), DAEMONS):
            if time.monotonic() > deadline + 5:
                raise RuntimeError(f"{self.name}: processes {leftovers} do not exit")
            if time.monotonic() > deadline:
                for pid in leftovers:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            await asyncio.sleep(0.05)

    async def empty_store(self) -> None:
        # Anything a timed-out run left queued would be delivered into the next run.
        run(["postsuper", "-c", str(self.etc), "-d", "ALL"], check=False)
        for user in USERS:
            shutil.rmtree(self.mail / user, ignore_errors=True)

    def pids(self) -> list[int]:
        return [pid for pid in (self._postfix_pid(), self._dovecot_pid()) if pid is not None]

    def deliveries(self) -> DeliveryCount:
        return LogTail(self.dovecot_info_log.parent, self.dovecot_info_log.name, dovecot_saved)

    def versions(self) -> dict[str, str]:
        postfix = run(["postconf", "-h", "mail_version"], check=False).stdout.strip()
        dovecot = run(["dovecot", "--version"], check=False).stdout.strip()
        return {"postfix": postfix, "dovecot": dovecot}
