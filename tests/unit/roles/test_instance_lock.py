"""One server per data directory: a second start is refused while the first holds the lock, the
workers it forked hold it with it, and it passes on once every one of them is gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from courriel.core.errors import Conflict
from courriel.roles.server import LOCK_FILE, hold_instance_lock

# A supervisor that takes the lock and forks one worker, which inherits it.
HOLDER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from types import SimpleNamespace
    from courriel.roles.server import hold_instance_lock
    hold_instance_lock(SimpleNamespace(name="mx1", data_dir=Path(sys.argv[1])))
    worker = os.fork()
    if worker == 0:
        time.sleep(60)
        os._exit(0)
    print(worker, flush=True)
    time.sleep(60)
    """
)


def config(data_dir: Path) -> SimpleNamespace:
    return SimpleNamespace(name="mx1", data_dir=data_dir)


def refusal(data_dir: Path) -> str:
    with pytest.raises(Conflict) as refused:
        hold_instance_lock(config(data_dir), wait=0.3)  # type: ignore[arg-type]
    return refused.value.detail


def test_a_second_server_is_refused_until_the_first_and_its_workers_are_gone(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None
    worker = int(holder.stdout.readline())
    try:
        assert refusal(tmp_path) == f"server mx1 is already running on {tmp_path} (pid {holder.pid}); stop it first"
        holder.kill()
        holder.wait(10)
        assert "already running" in refusal(tmp_path)  # the worker still holds it
    finally:
        holder.kill()
        os.kill(worker, signal.SIGKILL)
    fd = hold_instance_lock(config(tmp_path), wait=10)  # type: ignore[arg-type]
    try:
        assert (tmp_path / LOCK_FILE).read_text() == f"{os.getpid()}\n"
    finally:
        os.close(fd)


def test_a_lock_its_holder_closed_is_taken_at_once(tmp_path: Path) -> None:
    os.close(hold_instance_lock(config(tmp_path)))  # type: ignore[arg-type]
    os.close(hold_instance_lock(config(tmp_path), wait=0))  # type: ignore[arg-type]
