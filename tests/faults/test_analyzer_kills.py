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
import re
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from rayflow.engine.analysis_queue import QUEUE_DEPTH
from rayflow.record import RunSummary
from tests.faults.conftest import make_clips, start_cli, verified_home

pytestmark = pytest.mark.slow

CLIPS = 6
KILL_CLIPS = 16
"""The issue's "done when": 16 clips, the analyzer SIGKILLed twice, all ingested in that run."""
LIGHT_MODELS = ("[analysis]\nspeech = false\nscreen_text = false\nthumbnails = false\n"
                "[sample]\ncount = 60\nmin_interval_s = 0\n")
"""Shots and faces only: each kill costs a model reload, and what is tested is the actor's queue.
60 sampled frames per clip (faces ~60 ms each) make an analysis (~2 s on 2 cores) slower than
inspect, so files queue on the analyzer: 3-4 records were written when inspect was over, idle or
loaded (``min_interval_s = 0``: all 60, however short the clip). The kills are timed by records and
by inspect being over, not by the clock."""
SLOW_ANALYSIS = "[analysis]\nspeech = false\nthumbnails = false\n[sample]\nmin_interval_s = 0\n"
"""On-screen text on (OCR, ~0.3 s a frame): analysis is then slower than inspect even on an idle
machine, so files wait for the analyzer with their frames held by idle inspect workers."""
POLL_S = 0.05
SETTLED_S = 0.3
"""The task workers must all be idle this long to count inspect as over (not between two tasks)."""
SUSPECT = re.compile(r"(\S+) was being analysed when the analyzer died; it runs again alone")
ON_IT = re.compile(r"analyzer \d+ died \(.*?\) with (\d+) file\(s\) on it")


def _records(home: Path) -> int:
    return len(list((home / "output" / "records").glob("*.json")))


def _analyzer(root: psutil.Process) -> psutil.Process | None:
    """The analyzer actor's process once its models are loaded. Not told by the ".analyze" in
    its title: Ray sets the title when any method starts and resets it when any ends, and the
    driver asks the actor where it runs (``node``, on its own thread) after each file, so while
    files queue the title reads "ray::AnalyzerActor" for all but a few ms of each analysis."""
    for proc in root.children(recursive=True):
        name = _name(proc)
        if name.startswith("ray::AnalyzerActor") and "__init__" not in name:
            return proc
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


class Timeline:
    """What the test saw and did, with times: shown when an assertion fails."""

    def __init__(self) -> None:
        self.start, self.lines, self.last = time.monotonic(), list[str](), ""

    def see(self, state: str) -> None:
        if state != self.last:
            self.note(state)
            self.last = state

    def note(self, line: str) -> None:
        self.lines.append(f"{time.monotonic() - self.start:6.2f} {line}")

    def __str__(self) -> str:
        return "\n".join(self.lines)


def _kill_analyzer_twice(run: subprocess.Popen[bytes], home: Path, timeline: Timeline) -> list[int]:
    """SIGKILL the analyzer twice, each time while it analyses one file with others queued behind it.

    The first kill waits for a record (the analyzer is loaded and working through its queue) and
    for inspect to be over (every file left is queued on the analyzer, one running), with at least
    4 files left. Ray retries the calls that were on the actor once, in order, so the first record
    after the restart is normally the file that was running. The second kill waits for that record: the
    file then running is another one, queued at the first kill, whose Ray retry is spent, so
    this crash is the flow's to handle (the suspect alone, the rest requeued)."""
    root = psutil.Process(run.pid)
    kills: list[int] = []
    rec_at_kill = 0
    idle_since: float | None = None
    deadline = time.monotonic() + 600
    while run.poll() is None and time.monotonic() < deadline:  # watched to the end, for the timeline
        rec, analyzer, workers = _records(home), _analyzer(root), _task_workers(root)
        idle = bool(workers) and all(_name(p) == "ray::IDLE" for p in workers)
        idle_since = (idle_since or time.monotonic()) if idle else None
        timeline.see(f"records={rec} analyzer={analyzer.pid if analyzer else None} "
                     f"workers={sorted(_name(p) for p in workers)}")
        if not kills:
            due = 1 <= rec <= KILL_CLIPS - 4 and idle_since is not None \
                and time.monotonic() - idle_since >= SETTLED_S
        else:
            due = rec_at_kill + 1 <= rec <= KILL_CLIPS - 3
        if due and len(kills) < 2 and analyzer is not None and analyzer.pid not in kills:
            try:
                analyzer.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                continue
            kills.append(analyzer.pid)
            rec_at_kill = rec
            timeline.note(f"SIGKILL analyzer {analyzer.pid} at records={rec}")
        time.sleep(POLL_S)
    timeline.note(f"exit {run.poll()}")
    return kills


@pytest.mark.timeout(900)  # a model reload per kill, on 2 shared cores
def test_sigkilled_analyzer_loses_no_file_of_its_queue(tmp_path: Path) -> None:
    folder = tmp_path / "clips"
    make_clips(folder, KILL_CLIPS, start_hue=40)
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(LIGHT_MODELS)
    run = start_cli(["ingest", str(folder), "--home", str(home), "--skip", "proxy", "--skip", "embed",
                     "--json"], out=tmp_path / "run")
    timeline = Timeline()
    try:
        kills = _kill_analyzer_twice(run, home, timeline)
        run.wait(timeout=600)
    finally:
        if run.poll() is None:
            run.kill()
    (tmp_path / "timeline.txt").write_text(str(timeline))
    stderr = (tmp_path / "run.stderr").read_text(errors="replace")
    assert len(kills) == 2, f"{kills}\n{timeline}\n{stderr[-2000:]}"
    assert run.returncode == 0, stderr[-3000:]
    summary = RunSummary.model_validate(json.loads((tmp_path / "run.stdout").read_text()))
    failed = {Path(f.path).name: f.errors for f in summary.files if f.status != "ingested"}
    assert failed == {}, failed
    assert summary.counts["ingested"] == KILL_CLIPS
    # The second kill reached the flow (Ray's one retry of those calls was spent on the first):
    # one file was running and ran again alone, the other on the actor (the queue sends at most
    # QUEUE_DEPTH = 2 per analyzer) was requeued uncharged.
    suspects = SUSPECT.findall(stderr)
    on_it = [int(n) for n in ON_IT.findall(stderr)]
    assert suspects and len(set(suspects)) == len(suspects) and max(on_it, default=0) >= QUEUE_DEPTH, \
        f"{suspects} {on_it}\n{timeline}\n{stderr[-3000:]}"
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
        # Once every inspect is done (all task workers idle) while the analyzer works through its
        # queue (a record written, 3 files or more left), the files waiting on the analyzer have
        # their frames owned by those idle workers: kill them.
        while run.poll() is None and not killed and time.monotonic() < deadline:
            workers = _task_workers(root)
            if workers and all(_name(p) == "ray::IDLE" for p in workers) and _analyzer(root) is not None \
                    and 1 <= _records(home) < CLIPS - 2:
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
