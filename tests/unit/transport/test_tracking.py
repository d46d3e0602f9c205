"""The message tracking log: written as JSON lines, searched like Get-MessageTrackingLog."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from courriel.transport.tracking import TrackingLog, search_tracking


def test_write_and_search(tmp_path: Path) -> None:
    log = TrackingLog(tmp_path, "mx1")
    log.write("RECEIVE", source="SMTP", internal_message_id="Q1", message_id="<m1@x>", sender="s@x.test", recipients=["a@example.test", "b@example.test"], client_ip="192.0.2.1")
    log.write("DELIVER", source="STOREDRIVER", internal_message_id="Q1", message_id="<m1@x>", sender="s@x.test", recipients=["a@example.test"])
    log.write("RECEIVE", source="SMTP", internal_message_id="Q2", message_id="<m2@x>", sender="t@x.test", recipients=["b@example.test"])
    assert [r["event_id"] for r in search_tracking(tmp_path, message_id="m1@x")] == ["RECEIVE", "DELIVER"]
    assert [r["internal_message_id"] for r in search_tracking(tmp_path, recipient="B@example.test")] == ["Q1", "Q2"]
    assert [r["internal_message_id"] for r in search_tracking(tmp_path, sender="t@x.test")] == ["Q2"]
    assert len(search_tracking(tmp_path, event_id="deliver")) == 1
    assert search_tracking(tmp_path, start=datetime.now(UTC) + timedelta(hours=1)) == []
    assert len(search_tracking(tmp_path, limit=2)) == 2
    assert search_tracking(tmp_path / "missing") == []
    (next(tmp_path.glob("MSGTRK*.log"))).open("a").write('{"cut by a cra')
    assert len(search_tracking(tmp_path)) == 3
