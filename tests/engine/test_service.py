"""The long-lived service: `rayflow server start` keeps a Ray head (and Prefect) under the home,
ingests attach to it and find their models loaded, `server stop` leaves nothing behind, and a
stale record never fails an ingest."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import psutil
import pytest

from rayflow.config import load_settings
from rayflow.engine import orphans, runtime, searcher, service, session
from tests.clirun import run_in_home
from tests.media import h264_aac

_run = run_in_home


def _stale_record(home: Path) -> None:
    """A record of a service that is gone: nothing listens at its address, no process names it."""
    home.mkdir(parents=True, exist_ok=True)
    service.state_path(home).write_text(json.dumps(
        {"address": f"127.0.0.1:{runtime.free_port()}", "session_dir": str(home / "ray" / "session_gone")}))


def _loads(summary: dict[str, Any]) -> tuple[int, int]:
    """(model loads, files) the analyzers reported, from the summary's analysis note."""
    note = next(n for n in summary["notes"] if n.startswith("analysis:"))
    match = re.search(r"model loads (\d+) for (\d+) file", note)
    assert match, note
    return int(match[1]), int(match[2])


@pytest.mark.slow
def test_ingests_attach_to_the_service_and_stop_leaves_nothing(tmp_path: Path) -> None:
    home = tmp_path / "h"
    clips = [tmp_path / "a.mp4", tmp_path / "b.mp4"]
    h264_aac(clips[0])
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(clips[0]), "-vf", "hflip",
                    "-c:a", "copy", str(clips[1])], check=True, timeout=60)
    _stale_record(home)  # left by a killed service: start replaces it
    started = _run(["server", "start"], home)
    assert started.returncode == 0, started.stderr[-2000:]
    svc = service.running(home)
    assert svc is not None and svc.address.startswith("127.0.0.1:")
    assert f"ray: {svc.address}" in started.stdout
    status = _run(["server", "status"], home, timeout=60)
    assert status.returncode == 0 and f"ray: {svc.address}" in status.stdout
    assert "PREFECT_API_URL=http://127.0.0.1:" in status.stdout
    search_pid = searcher.running(home)  # the searcher answers too
    assert search_pid is not None and f"search: pid {search_pid}" in status.stdout
    try:
        summaries = []
        for clip in clips:
            proc = _run(["ingest", str(clip), "--only", "analyze", "--json"], home)
            assert proc.returncode == 0, proc.stderr[-3000:]
            summaries.append(json.loads(proc.stdout))
        for summary in summaries:
            assert f"attached to the rayflow service's Ray at {svc.address}" in " ".join(summary["notes"])
        first, second = _loads(summaries[0]), _loads(summaries[1])
        assert first[1] == 1 and first[0] >= 1
        # The same actor served the second run (its file count went on) and loaded nothing new.
        assert second == (first[0], 2), (first, second)
    finally:
        stopped = _run(["server", "stop"], home, timeout=120)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped.stderr
    assert service.session_processes(svc.session_dir) == []
    assert orphans.leftover_processes(home) == []  # no Ray or Prefect process of the home
    assert runtime.running_server(home) is None and not service.state_path(home).exists()
    assert searcher.running(home) is None and not psutil.pid_exists(search_pid)
    gone = _run(["server", "status"], home, timeout=60)
    assert gone.returncode == 1 and "ray: not running" in gone.stdout


def test_a_stale_record_is_not_running(tmp_path: Path) -> None:
    _stale_record(tmp_path)
    assert service.recorded(tmp_path) is not None
    assert service.running(tmp_path) is None
    assert service.stop(tmp_path) is False and not service.state_path(tmp_path).exists()


def test_ingest_joins_a_live_service_and_otherwise_starts_its_own_ray(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No service, a stale one, or one that does not let us join: nothing is joined (the run
    then starts its own Ray); a live one is joined as a cluster."""
    calls: list[str | None] = []
    unreachable = {"yes": False}

    def fake_start_ray(home: Path, *, address: str | None, prefect_api_url: str, **kw: Any) -> None:
        calls.append(address)
        if address and unreachable["yes"]:
            raise runtime.ClusterUnreachable(f"cannot join {address}")

    monkeypatch.setattr(runtime, "start_ray", fake_start_ray)
    settings = load_settings(env={}, home=tmp_path)
    assert session._attach_to_service(settings, "http://x") is None
    _stale_record(tmp_path)
    assert session._attach_to_service(settings, "http://x") is None
    assert calls == []

    live = service.RayService(address="127.0.0.1:6390", session_dir="s")
    monkeypatch.setattr(service, "running", lambda home: live)
    assert session._attach_to_service(settings, "http://x") == live and calls == [live.address]
    unreachable["yes"] = True
    assert session._attach_to_service(settings, "http://x") is None and calls == [live.address] * 2
    assert session._attach_to_service(replace(settings, address="10.0.0.1:6379"), "http://x") is None  # --address


def test_the_service_record_keeps_the_encoders_an_attached_ingest_reuses(tmp_path: Path) -> None:
    """What `server start` found is written to the record and read back for the same encoder
    preference only; another preference (or an older record without it) detects again."""
    from rayflow.media.encoders import EncoderPlan

    plan = EncoderPlan(encoders=("libx264",), rejected=(("hevc_nvenc", "no NVIDIA GPU"),), tone_mapper="zscale")
    svc = service.RayService(address="127.0.0.1:6390", session_dir="s",
                             encoders={"preference": ["hevc_nvenc", "libx264"], "plan": plan.to_dict()})
    service.state_path(tmp_path).write_text(json.dumps(asdict(svc)))
    read = service.recorded(tmp_path)
    assert read is not None and read.encoder_plan(("hevc_nvenc", "libx264")) == plan
    assert read.encoder_plan(("libx264",)) is None
    assert session._plan_encodes(frozenset({"proxy"}), load_settings(env={}, home=tmp_path),
                                 known=plan)[0] is plan
    service.state_path(tmp_path).write_text(json.dumps({"address": "127.0.0.1:6390", "session_dir": "s"}))
    older = service.recorded(tmp_path)
    assert older is not None and older.encoder_plan(("hevc_nvenc", "libx264")) is None
