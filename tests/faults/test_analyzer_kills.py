"""Issue #18: SIGKILL of the analysis actor costs only the file at fault, never the queue.

The real CLI ingests small clips with the analyze step on; the analyzer process is SIGKILLed
while it analyses (what the kernel's OOM killer does on a huge file), twice. Before,
the files queued on it were charged with the crash and failed; now they are requeued, the
file that was running is re-run alone, and every file is ingested in the same run.

The inspect workers own the decoded frames (they ``ray.put`` them): SIGKILLing them while the
analyses wait loses those frames; the files are decoded again and still all ingested.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import psutil
import pytest

from rayflow.record import RunSummary
from tests.faults.conftest import make_clips, start_cli, verified_home

pytestmark = pytest.mark.slow

CLIPS = 6
KILLS = 2
KILL_CLIPS = 10
"""Enough files that the run is still analysing when the second kill is allowed (with 6, a fast
run could end after the first kill's re-run: 1 kill, a flaky failure)."""
LIGHT_MODELS = "[analysis]\nspeech = false\nscreen_text = false\nthumbnails = false\n[sample]\ncount = 60\n"
"""Shots and faces only: each kill costs a model reload, and what is tested is the actor's queue.
60 frames per clip (faces ~60 ms each) keep each analysis a few seconds long even on an idle
machine, so the kills land while files wait (with 12, an idle box finished before the second)."""
SLOW_ANALYSIS = "[analysis]\nspeech = false\nthumbnails = false\n"
"""On-screen text on (OCR, ~0.3 s a frame): analysis is then slower than inspect even on an idle
machine, so files wait for the analyzer with their frames held by idle inspect workers."""


def _records(home: Path) -> int:
    return len(list((home / "output" / "records").glob("*.json")))


def _analyzing(root: psutil.Process) -> psutil.Process | None:
    """The analyzer actor's process while it runs an analysis (Ray names it by the method)."""
    for proc in root.children(recursive=True):
        try:
            if proc.name().startswith("ray::AnalyzerActor.analyze"):
                return proc
        except psutil.NoSuchProcess:
            continue
    return None


def _name(proc: psutil.Process) -> str:
    try:
        return proc.name()
    except psutil.NoSuchProcess:
        return ""


def _task_workers(root: psutil.Process) -> list[psutil.Process]:
    """Ray's task workers (idle or running a task: "ray::IDLE", "ray::inspect..."), not actors
    ("ray::AnalyzerActor...", "ray::CatalogWriter") nor Ray's agents."""
    found = []
    for proc in root.children(recursive=True):
        try:
            name = proc.name()
        except psutil.NoSuchProcess:
            continue
        tail = name.removeprefix("ray::")
        if name.startswith("ray::") and not name.endswith("Agent") and (tail == "IDLE" or not tail[:1].isupper()):
            found.append(proc)
    return found


@pytest.mark.timeout(900)  # a model reload per kill, on 2 shared cores
def test_sigkilled_analyzer_loses_no_file_of_its_queue(tmp_path: Path) -> None:
    folder = tmp_path / "clips"
    make_clips(folder, KILL_CLIPS, start_hue=40)
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(LIGHT_MODELS)
    run = start_cli(["ingest", str(folder), "--home", str(home), "--skip", "proxy", "--skip", "embed",
                     "--json"], out=tmp_path / "run")
    kills: list[int] = []
    try:
        root = psutil.Process(run.pid)
        deadline = time.monotonic() + 600
        written_at_kill = -1
        while run.poll() is None and len(kills) < KILLS and time.monotonic() < deadline:
            # Kill while a file is being analysed, and only once the file re-run alone after the
            # last kill got through (a record more): each kill then hits a different file.
            victim = _analyzing(root) if _records(home) >= written_at_kill + 1 else None
            if victim is not None:
                try:
                    victim.send_signal(signal.SIGKILL)
                    kills.append(victim.pid)
                    written_at_kill = _records(home)
                except psutil.NoSuchProcess:
                    pass
            time.sleep(0.05)
        run.wait(timeout=600)
    finally:
        if run.poll() is None:
            run.kill()
    stderr = (tmp_path / "run.stderr").read_text(errors="replace")
    assert len(kills) == KILLS, (kills, stderr[-2000:])
    assert run.returncode == 0, stderr[-3000:]
    summary = RunSummary.model_validate(json.loads((tmp_path / "run.stdout").read_text()))
    failed = {Path(f.path).name: f.errors for f in summary.files if f.status != "ingested"}
    assert failed == {}, failed
    assert summary.counts["ingested"] == KILL_CLIPS
    report = verified_home(home)
    assert report.points == report.records == KILL_CLIPS


@pytest.mark.timeout(600)
def test_killed_inspect_workers_holding_frames_fail_no_file(tmp_path: Path) -> None:
    folder = tmp_path / "clips"
    make_clips(folder, CLIPS, start_hue=90)
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(SLOW_ANALYSIS)
    run = start_cli(["ingest", str(folder), "--home", str(home), "--skip", "proxy", "--skip", "embed",
                     "--json"], out=tmp_path / "run")
    killed = 0
    try:
        root = psutil.Process(run.pid)
        deadline = time.monotonic() + 400
        # Once every inspect is done (all task workers idle) while files are being analysed, the
        # files waiting on the analyzer have their frames owned by those idle workers: kill them.
        while run.poll() is None and not killed and time.monotonic() < deadline:
            workers = _task_workers(root)
            if workers and all(_name(p) == "ray::IDLE" for p in workers) and _analyzing(root) is not None \
                    and _records(home) < CLIPS - 2:
                for proc in workers:
                    try:
                        proc.send_signal(signal.SIGKILL)
                        killed += 1
                    except psutil.NoSuchProcess:
                        pass
            time.sleep(0.2)
        run.wait(timeout=500)
    finally:
        if run.poll() is None:
            run.kill()
    stderr = (tmp_path / "run.stderr").read_text(errors="replace")
    assert killed, stderr[-2000:]
    assert run.returncode == 0, stderr[-3000:]
    summary = RunSummary.model_validate(json.loads((tmp_path / "run.stdout").read_text()))
    failed = {Path(f.path).name: f.errors for f in summary.files if f.status != "ingested"}
    assert failed == {}, failed
    # The kill did take frames with it (else this test proves nothing): they were decoded again.
    assert "decoding them again" in stderr, stderr[-3000:]
    report = verified_home(home)
    assert report.points == report.records == CLIPS
