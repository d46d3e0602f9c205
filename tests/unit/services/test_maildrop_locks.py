"""The POP3 maildrop lock across worker processes (services/pop3/maildrop.py): a lock file per
mailbox held with flock(2), seen by every process, released when its holder exits."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from courriel.services.pop3.maildrop import MaildropLocks

GUID = "0f1e2d3c-aaaa-bbbb-cccc-000000000001"
HOLDER = """
import sys, time
from pathlib import Path
from courriel.services.pop3.maildrop import MaildropLocks
locks = MaildropLocks(Path(sys.argv[1]))
print("held" if locks.acquire(sys.argv[2]) else "refused", flush=True)
sys.stdin.readline()  # hold until told to go (or killed)
"""


def test_one_holder_per_maildrop_in_a_process(tmp_path: Path) -> None:
    a, b = MaildropLocks(tmp_path), MaildropLocks(tmp_path)  # two workers' views
    assert a.acquire(GUID)
    assert not a.acquire(GUID)
    assert not b.acquire(GUID)
    assert b.acquire("someone-else")
    a.release(GUID)
    assert b.acquire(GUID) and b.held(GUID)
    b.release(GUID)
    b.release("someone-else")


def test_names_that_are_not_plain_get_a_hashed_file(tmp_path: Path) -> None:
    locks = MaildropLocks(tmp_path)
    assert locks.acquire("../../etc/passwd")
    assert [p.parent for p in tmp_path.iterdir()] == [tmp_path]
    locks.release("../../etc/passwd")


def test_another_process_holds_it_until_it_dies(tmp_path: Path) -> None:
    here = MaildropLocks(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path), GUID],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        assert not here.acquire(GUID)
        holder.kill()  # a crashed worker: the kernel drops its lock
        holder.wait(10)
        assert here.acquire(GUID)
    finally:
        holder.kill()
        holder.wait(10)
    other = subprocess.run(
        [sys.executable, "-c", HOLDER, str(tmp_path), GUID],
        input="\n",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert other.stdout.strip() == "refused", (other.returncode, other.stdout, other.stderr)
    here.release(GUID)


def test_without_a_folder_the_lock_is_per_process() -> None:
    locks = MaildropLocks()
    assert locks.acquire(GUID) and not locks.acquire(GUID)
    locks.release(GUID)
    assert locks.acquire(GUID)
