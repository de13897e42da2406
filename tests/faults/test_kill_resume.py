"""kill -9 of the real CLI mid-batch, and of Ray workers mid-batch; a second ingest on the same
home while one runs; what the processes listen on; whether a secret leaks anywhere.

Each scenario runs the real ``rayflow`` CLI in a subprocess with its own embedded Ray and
Prefect server, kills real processes with SIGKILL, re-runs the same command, and checks
the home with ``rayflow.catalog.verify``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import psutil
import pytest

from rayflow.engine.orphans import leftover_processes
from rayflow.record import RunSummary
from tests.faults.conftest import BATCH, FAST, cli_env, run_cli, start_cli, verified_home

pytestmark = pytest.mark.slow

CANARY = "rf-canary-7f3a9c1e5b2d"


def _wait_for(predicate, timeout_s: float, what: str, proc=None) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the CLI exited ({proc.returncode}) before {what}")
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def _records(home: Path) -> list[Path]:
    return list((home / "output" / "records").glob("*.json"))


def _listening(root: psutil.Process) -> list[tuple[str, str, int]]:
    found = []
    for proc in [root, *root.children(recursive=True)]:
        try:
            for conn in proc.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    found.append((proc.name(), conn.laddr.ip, conn.laddr.port))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def _loopback(ip: str) -> bool:
    return ip.startswith("127.") or ip in ("::1", "::ffff:127.0.0.1") or ip.startswith("::ffff:127.")


def _check_home(home: Path, expected_points: int) -> None:
    report = verified_home(home)
    assert report.points == report.records == report.clip_dirs == expected_points


def test_kill_9_of_the_cli_then_rerun_finishes_only_what_is_missing(clips30: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = cli_env(RAYFLOW_QDRANT_API_KEY=CANARY)
    args = ["ingest", str(clips30), "--home", str(home), *FAST, "--json"]
    first = start_cli(args, env=env, out=tmp_path / "first")
    try:
        # Mid-batch: some records written, most not.
        _wait_for(lambda: len(_records(home)) >= 6, 600, "the first records", first)
        cli = psutil.Process(first.pid)
        listening = _listening(cli)
        # A second ingest on the same home is refused at once, with the reason and exit 3.
        second = run_cli(args, env=env, timeout=300)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    done_before = len(_records(home))
    assert 1 <= done_before < BATCH, done_before
    assert second.returncode == 3, second.stderr[-2000:]
    assert "another rayflow ingest is running" in second.stderr

    # Every socket of the run (CLI, Prefect server, Ray's gcs/raylet/agents/workers) is loopback.
    assert listening, "no listening sockets found: the check would prove nothing"
    exposed = [x for x in listening if not _loopback(x[1])]
    assert exposed == [], exposed

    # The killed run's lock file still names it, and its Prefect server (own session) lives on.
    assert f"pid {first.pid}" in (home / "ingest.lock").read_text()
    leftovers = [p.pid for p in leftover_processes(home)]
    assert leftovers, "the killed run's Prefect server (its own session) should still be running"

    rerun = run_cli(args, env=env)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    summary = RunSummary.model_validate(json.loads(rerun.stdout))
    assert len(summary.files) == BATCH
    assert summary.counts["failed"] == 0
    # Resumed: what the killed run had catalogued is skipped, only the rest is processed.
    assert summary.counts["duplicate"] >= 1 and summary.counts["ingested"] >= 1
    assert summary.counts["duplicate"] + summary.counts["ingested"] == BATCH
    assert summary.counts["duplicate"] <= done_before  # a sidecar without its point is redone
    assert not [pid for pid in leftovers if psutil.pid_exists(pid)
                and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    _check_home(home, BATCH)

    # The API key never reaches records, run summaries, Prefect's database, Ray's logs or output.
    outputs = [rerun.stdout, rerun.stderr, second.stdout, second.stderr,
               *(p.read_text(errors="replace") for p in tmp_path.glob("first.std*"))]
    assert not [o for o in outputs if CANARY in o]
    leaks = [p for p in home.rglob("*") if p.is_file() and CANARY.encode() in p.read_bytes()]
    assert leaks == []


def test_kill_9_of_ray_workers_mid_batch_loses_nothing(clips30: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    args = ["ingest", str(clips30), "--home", str(home), *FAST, "--json"]
    run = start_cli(args, out=tmp_path / "run")
    killed: list[str] = []
    rng = random.Random(7)
    try:
        _wait_for(lambda: len(_records(home)) >= 3, 600, "the first records", run)
        cli = psutil.Process(run.pid)
        while run.poll() is None and len(killed) < 6:
            # Workers and actors (ray::IDLE, ray::inspect, ray::CatalogWriter...), not Ray's own
            # agents: the raylet fate-shares with those, so killing one ends the node (and the run).
            workers = [p for p in cli.children(recursive=True)
                       if p.name().startswith("ray::") and not p.name().endswith("Agent")]
            if workers:
                victim = rng.choice(workers)
                try:
                    name = victim.name()
                    victim.send_signal(signal.SIGKILL)
                    killed.append(name)
                except psutil.NoSuchProcess:
                    pass
            time.sleep(1.5)
        run.wait(timeout=900)
    finally:
        if run.poll() is None:
            run.kill()
    assert len(killed) >= 3, killed
    assert run.returncode in (0, 1), (tmp_path / "run.stderr").read_text()[-3000:]
    first = RunSummary.model_validate(json.loads((tmp_path / "run.stdout").read_text()))
    assert len(first.files) == BATCH  # the run finished and reported every file
    for res in first.files:
        if res.status == "failed":  # a file whose worker was killed twice says so
            reasons = " ".join(res.errors.values()).lower()
            assert "crashed or was lost" in reasons or "died" in reasons or "lost" in reasons, res
    rerun = run_cli(args)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    summary = RunSummary.model_validate(json.loads(rerun.stdout))
    assert summary.counts["failed"] == 0
    assert summary.counts["duplicate"] + summary.counts["ingested"] == BATCH
    _check_home(home, BATCH)
