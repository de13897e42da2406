"""``<home>/runs/live.json``: the running ingest's progress for ``rayflow serve`` (no Ray needed)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rayflow.engine.progress import LivePublisher, Progress, live_path, publish_live, read_live
from rayflow.engine.session import last_summaries, save_summary
from rayflow.record import RunSummary


def test_publisher_rewrites_the_file_while_running_then_marks_it_finished(tmp_path: Path) -> None:
    progress = Progress()
    progress.set_total(3)
    with publish_live(progress, tmp_path):
        first = read_live(tmp_path)
        assert first is not None and first["state"] == "running" and first["progress"]["total"] == 3
        progress.file_started("/footage/a.mp4")
        progress.stage_started("probe")
        deadline = time.monotonic() + 10
        seen = first
        while seen["progress"]["current"] != ["/footage/a.mp4"] and time.monotonic() < deadline:
            time.sleep(0.1)
            seen = read_live(tmp_path) or seen
        assert seen["progress"]["current"] == ["/footage/a.mp4"]
        assert seen["progress"]["stages"]["probe"] == {"running": 1, "done": 0, "failed": 0}
        progress.stage_finished("probe", ok=True)
        progress.file_finished("/footage/a.mp4", "ingested")
    final = read_live(tmp_path)
    assert final is not None and final["state"] == "finished" and final["finished_at"] >= final["started_at"]
    assert final["progress"]["finished"] == 1 and final["progress"]["statuses"] == {"ingested": 1}
    assert [p.name for p in live_path(tmp_path).parent.iterdir()] == ["live.json"]  # no temp files left


def test_a_run_that_raises_is_marked_failed(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), publish_live(Progress(), tmp_path):
        raise RuntimeError("boom")
    assert (read_live(tmp_path) or {})["state"] == "failed"


def test_a_killed_ingest_reads_as_stale(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True, timeout=60)
    dead_pid = int(proc.stdout)
    LivePublisher(Progress(), tmp_path).write()
    doc = json.loads(live_path(tmp_path).read_text())
    doc["pid"] = dead_pid  # the process that wrote it is gone
    live_path(tmp_path).write_text(json.dumps(doc))
    assert (read_live(tmp_path) or {})["state"] == "stale"
    doc["pid"], doc["updated_at"] = None, time.time() - 3600  # another host's run, silent for an hour
    doc["host"] = "elsewhere"
    live_path(tmp_path).write_text(json.dumps(doc))
    assert (read_live(tmp_path) or {})["state"] == "stale"


def test_unreadable_or_missing_live_file_is_none(tmp_path: Path) -> None:
    assert read_live(tmp_path) is None
    live_path(tmp_path).parent.mkdir(parents=True)
    live_path(tmp_path).write_text("{half")
    assert read_live(tmp_path) is None


def test_run_listing_ignores_the_live_file(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    LivePublisher(Progress(), tmp_path).write()
    save_summary(RunSummary(run_id="20260101T000000Z-abc", started_at=datetime.now(UTC), home=str(tmp_path),
                            output=str(tmp_path)), tmp_path)
    assert [s.run_id for s in last_summaries(tmp_path)] == ["20260101T000000Z-abc"]
