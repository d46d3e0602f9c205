"""Fixtures of the security tests: the server's shared state file (security/shared_state.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from courriel.security.shared_state import SharedState


@pytest.fixture
def state(tmp_path: Path) -> Iterator[SharedState]:
    shared = SharedState(tmp_path / "limits")
    yield shared
    shared.close()
