"""What the benchmark reads from Linux's /proc: server memory and machine CPU.

Two measurements, both taken the way the peer baseline took them (see
`/work/shared/research/peer-baseline.md`):

* the resident set of a server's whole process tree (Postfix is a dozen daemons, Dovecot
  forks one process per LMTP session), summed over the process and all its descendants and
  sampled every 0.2 s while a run lasts, of which the peak is reported (RSS counts shared
  library pages once per process, so a many-process server like Postfix is overstated;
  the proportional set size, PSS, is taken once at the end of each run for the record);
* the TCP addresses a server's processes listen on, to check that each binds loopback only;
* the machine's busy fraction from `/proc/stat`, sampled before each run (`bg_busy_frac`:
  the VM is shared, so a run that starts under foreign load is flagged rather than trusted),
  and the CPU-seconds the whole machine spent during a run;
* the CPU-seconds a server's process tree spent (topology.py's per-server figure).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """Direct children of `pid`, from every thread's `children` list (a child is listed under
    the thread that forked it, so a threaded server's children hide in its worker threads)."""
    found: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                found.extend(int(p) for p in f.read().split())
        except OSError:
            continue
    return found


def tree(roots: Iterable[int]) -> list[int]:
    """The roots and all their descendants that are alive now."""
    seen: dict[int, None] = {}
    stack = list(roots)
    while stack:
        pid = stack.pop()
        if pid in seen or not os.path.exists(f"/proc/{pid}"):
            continue
        seen[pid] = None
        stack.extend(children(pid))
    return list(seen)


def working_in(directory: str, programs: tuple[str, ...]) -> list[int]:
    """Processes whose working directory is `directory` or below it and whose executable
    path starts with one of `programs`: the daemons of a server instance (Postfix and
    Dovecot processes chdir to their queue and base directories), found even after their
    master has exited and they were reparented."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
            exe = os.readlink(f"/proc/{entry}/exe")
        except OSError:
            continue
        if (cwd == directory or cwd.startswith(directory + "/")) and exe.startswith(programs):
            found.append(int(entry))
    return found


def rss_bytes(pid: int) -> int:
    """Resident set of one process (0 if it has exited meanwhile)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


def tree_rss_bytes(roots: Iterable[int]) -> int:
    """Sum of RSS over the process trees under `roots` (shared pages count once per process,
    as `ps` and the baseline's RSS column count them)."""
    return sum(rss_bytes(pid) for pid in tree(roots))


def pss_bytes(pid: int) -> int:
    """Proportional set size (shared pages split among their users, the figure `smem`
    reports): costly to read, so taken once per run, not every 0.2 s."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def tree_pss_bytes(roots: Iterable[int]) -> int:
    return sum(pss_bytes(pid) for pid in tree(roots))


def tree_cpu_seconds(roots: Iterable[int]) -> float:
    """CPU time (user + system, own and reaped children's) of the process trees under `roots`."""
    ticks = 0
    for pid in tree(roots):
        try:
            with open(f"/proc/{pid}/stat") as f:
                # proc(5): after "(comm)" come state (field 3) …; utime..cstime are fields 14-17.
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += sum(int(x) for x in fields[11:15])
    return ticks / CLOCK_TICKS


class RssPeak:
    """Samples the tree RSS of a server every `interval` seconds in the background; `peak` is
    the largest sum seen. The roots are asked for on each sample because a server may
    restart its master between runs."""

    def __init__(self, roots: Callable[[], list[int]], interval: float = 0.2) -> None:
        self._roots = roots
        self._interval = interval
        self.peak = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="rss-sampler")

    async def stop(self) -> int:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._sample()
        return self.peak

    def _sample(self) -> None:
        self.peak = max(self.peak, tree_rss_bytes(self._roots()))

    async def _run(self) -> None:
        while True:
            self._sample()
            await asyncio.sleep(self._interval)


def _socket_inodes(pids: Iterable[int]) -> set[str]:
    inodes: set[str] = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    return inodes


def _address(hex_addr: str) -> str:
    """/proc/net/tcp{,6} addresses are hex of the in-memory words, host (little) endian."""
    raw = bytes.fromhex(hex_addr)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, words)


def listening(pids: Iterable[int]) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state held by one of `pids`."""
    inodes = _socket_inodes(pids)
    found: list[tuple[str, int]] = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            # fields: sl local_address rem_address st ... inode (10th); 0A is TCP_LISTEN.
            if fields[3] == "0A" and fields[9] in inodes:
                addr, port = fields[1].split(":")
                found.append((_address(addr), int(port, 16)))
    return sorted(set(found))


def not_loopback(addresses: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
    return [(a, p) for a, p in addresses if not ipaddress.ip_address(a).is_loopback]


@dataclass(frozen=True)
class CpuTimes:
    """Machine-wide CPU time from the first line of /proc/stat, in clock ticks."""

    busy: int
    total: int

    @classmethod
    def now(cls) -> CpuTimes:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        # user nice system idle iowait irq softirq steal [guest guest_nice]; guest time is
        # already counted in user, so only the first eight add up to the total.
        total = sum(fields[:8])
        idle = fields[3] + fields[4]
        return cls(busy=total - idle, total=total)

    def busy_seconds_since(self, earlier: CpuTimes) -> float:
        return (self.busy - earlier.busy) / CLOCK_TICKS

    def busy_fraction_since(self, earlier: CpuTimes) -> float:
        spent = self.total - earlier.total
        return (self.busy - earlier.busy) / spent if spent > 0 else 0.0


async def busy_fraction(seconds: float = 0.5) -> float:
    """Fraction of all CPUs busy over the next `seconds` (before a run: background load)."""
    before = CpuTimes.now()
    await asyncio.sleep(seconds)
    return CpuTimes.now().busy_fraction_since(before)
