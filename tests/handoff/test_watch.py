"""``rayflow watch``: a file written into a watched folder is ingested once it stops growing, once."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rayflow.cli.main import app
from rayflow.config import DEFAULT_VIDEO_EXTENSIONS
from rayflow.handoff.watch import Watcher
from tests.conftest import SHARED_MEDIA

pytestmark = pytest.mark.skipif(not SHARED_MEDIA.is_dir(), reason="../shared/media is not present")
CLIP = SHARED_MEDIA / "big_buck_bunny_432_433.webm"


def _watcher(folder: Path, state: Path) -> Watcher:
    return Watcher([folder], state, DEFAULT_VIDEO_EXTENSIONS, settle_s=5.0)


def test_growing_file_waits_then_is_ready_once_and_survives_a_restart(tmp_path: Path) -> None:
    folder, state = tmp_path / "in", tmp_path / "home" / "watch.json"
    folder.mkdir()
    data = CLIP.read_bytes()
    target = folder / "C0001.webm"
    watcher = _watcher(folder, state)
    with target.open("wb") as fh:  # a copy in progress: it grows between polls
        for t, piece in enumerate((data[:30_000], data[30_000:60_000])):
            fh.write(piece)
            fh.flush()
            assert watcher.poll(now=float(t * 10)) == []
        fh.write(data[60_000:])
    assert watcher.poll(now=20.0) == []  # changed since the last poll: settling again
    assert watcher.poll(now=24.0) == []  # 4 s < settle 5 s
    assert watcher.poll(now=25.5) == [target.resolve()]
    watcher.mark([target.resolve()], "ingested")
    assert watcher.poll(now=40.0) == []
    restarted = _watcher(folder, state)  # a new process: the state file remembers
    assert restarted.poll(now=0.0) == [] and restarted.poll(now=100.0) == []
    with target.open("ab") as fh:  # the same name, new content: handed over again
        fh.write(b"\0" * 10)
    assert restarted.poll(now=200.0) == [] and restarted.poll(now=206.0) == [target.resolve()]


def test_watch_cli_ingests_a_file_written_into_the_folder(tmp_path: Path, monkeypatch) -> None:
    """The loop and its state with the ingest process replaced (a real ingest takes 1-2 min here)."""
    from rayflow.cli import handoff_cmds
    folder = tmp_path / "in"
    folder.mkdir()
    calls: list[list[Path]] = []

    def fake_batch(paths: list[Path], home: Path | None, only: list[str] | None) -> object:
        calls.append(list(paths))
        return {"files": [{"path": str(p), "status": "ingested"} for p in paths]}
    monkeypatch.setattr(handoff_cmds, "_ingest_batch", fake_batch)

    def writer() -> None:
        time.sleep(0.2)
        shutil.copyfile(CLIP, folder / "C0002.webm")
    thread = threading.Thread(target=writer)
    thread.start()
    home = tmp_path / "home"
    args = ["watch", str(folder), "--home", str(home), "--interval", "0.2", "--settle", "1", "--once"]
    result = CliRunner().invoke(app, args)
    thread.join()
    assert result.exit_code == 0, result.output
    assert calls == [[(folder / "C0002.webm").resolve()]]
    state = json.loads((home / "watch.json").read_text())
    assert state["files"][str((folder / "C0002.webm").resolve())]["outcome"] == "ingested"
    assert CliRunner().invoke(app, args).exit_code == 0 and len(calls) == 1  # restart: not again


@pytest.mark.slow
def test_watch_really_ingests_a_file_copied_into_the_folder(tmp_path: Path) -> None:
    """End to end: ``rayflow watch --once`` in its own process, a real clip copied in while it polls,
    a real ``rayflow ingest`` (probe only: its own Ray and Prefect) and the record in the catalog."""
    import subprocess
    import sys

    from rayflow.catalog.store import Catalog

    folder, home = tmp_path / "in", tmp_path / "home"
    folder.mkdir()
    argv = [sys.executable, "-m", "rayflow.cli.main", "watch", str(folder), "--home", str(home),
            "--interval", "0.5", "--settle", "2", "--once", "--only", "probe"]
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "RAY_ADDRESS")}  # its own, as a user's
    watch = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        time.sleep(1.0)  # the watch is polling an empty folder
        shutil.copyfile(CLIP, folder / "C0003.webm")
        stdout, stderr = watch.communicate(timeout=400)
    finally:
        watch.kill()
    assert watch.returncode == 0, stderr[-3000:]
    state = json.loads((home / "watch.json").read_text())
    assert state["files"][str((folder / "C0003.webm").resolve())]["outcome"] == "ingested", stderr[-3000:]
    catalog = Catalog.open(path=home / "catalog", url=None)
    try:
        [record] = [r for r in catalog.iter_records() if r.file.name == "C0003.webm"]
    finally:
        catalog.close()
    assert record.status == "ingested" and record.video is not None and record.video.codec == "vp8"
