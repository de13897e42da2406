"""The ``rayflow`` command as a user runs it: a real process, real exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.clirun import RAYFLOW, run_in_home
from tests.media import make_corpus

_run = run_in_home


@pytest.mark.slow
def test_ingest_json_then_list_and_show(tmp_path: Path) -> None:
    assets = make_corpus(tmp_path / "src", ["h264_aac.mp4", "text.mp4"])
    home = tmp_path / "h"
    proc = _run(["ingest", str(assets["h264_aac.mp4"]), str(assets["text.mp4"]), "--json"], home)
    assert proc.returncode == 1, proc.stderr[-2000:]  # one file failed -> exit 1
    summary = json.loads(proc.stdout)  # stdout is the JSON summary and nothing else
    by_name = {Path(f["path"]).name: f for f in summary["files"]}
    assert summary["run_id"]
    assert by_name["h264_aac.mp4"]["status"] == "ingested"
    assert by_name["text.mp4"]["status"] == "failed"
    assert "probe" in by_name["text.mp4"]["errors"]
    assert (home / "runs" / f"{summary['run_id']}.json").is_file()
    assert (home / "prefect" / "prefect.db").is_file()  # the one API lived under the home

    listed = _run(["list", "--json"], home)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert {r["file"]["name"] for r in rows} == {"h264_aac.mp4", "text.mp4"}

    clip_id = by_name["h264_aac.mp4"]["clip_id"]
    shown = _run(["show", clip_id[:8], "--json"], home)
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert record["video"]["codec"] == "h264"
    assert record["video"]["width"] == 320 and record["video"]["height"] == 240
    by_path = _run(["show", str(assets["h264_aac.mp4"]), "--json"], home)
    assert json.loads(by_path.stdout)["clip_id"] == clip_id

    again = _run(["ingest", str(assets["h264_aac.mp4"]), "--json"], home)
    assert again.returncode == 0
    assert json.loads(again.stdout)["files"][0]["status"] == "duplicate"


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    proc = _run(["ingest", str(tmp_path), "--skip", "store"], tmp_path / "h", timeout=60)
    assert proc.returncode == 2
    assert "required" in proc.stderr
    proc = _run(["ingest", str(tmp_path), "--only", "nope"], tmp_path / "h", timeout=60)
    assert proc.returncode == 2
    assert "unknown step 'nope'" in proc.stderr


def test_a_missing_path_fails_fast_before_anything_starts(tmp_path: Path) -> None:
    typo = tmp_path / "footge"
    code = ("import runpy, sys; sys.argv = ['rayflow', 'ingest', sys.argv[1], sys.argv[2]]\n"
            "try:\n    runpy.run_module('rayflow.cli.main', run_name='__main__')\n"
            "finally:\n    print(sorted(m for m in ('ray', 'prefect', 'torch') if m in sys.modules), file=sys.stderr)")
    env = {**os.environ, "RAYFLOW_HOME": str(tmp_path / "h")}
    proc = subprocess.run([sys.executable, "-c", code, str(typo), str(tmp_path)], capture_output=True, text=True,
                          timeout=60, env=env, stdin=subprocess.DEVNULL, check=False)
    assert proc.returncode == 2, proc.stderr
    assert f"no such file or folder: {typo}" in proc.stderr
    assert proc.stderr.strip().endswith("[]"), proc.stderr  # nothing of Ray, Prefect or torch was imported
    assert not (tmp_path / "h").exists()  # no state written either


def test_schema_steps_and_doctor(tmp_path: Path) -> None:
    schema = _run(["schema"], tmp_path, timeout=60)
    doc = json.loads(schema.stdout)
    assert doc["title"] == "ClipRecord"
    for name in ("clip_id", "file", "video", "audio_tracks", "camera", "capture", "errors"):
        assert name in doc["properties"]
    assert "schema_version" in doc["$comment"]
    steps = _run(["steps"], tmp_path, timeout=60)
    for step in ("fingerprint", "probe", "sample", "thumbnails", "exposure", "store"):
        assert step in steps.stdout
    doctor = _run(["doctor", "--json"], tmp_path, timeout=120)
    checks = json.loads(doctor.stdout)
    assert doctor.returncode == 0  # everything required is installed here
    names = {c["name"] for c in checks}
    assert {"ffmpeg", "ffprobe", "mediainfo", "exiftool", "ray", "prefect", "nvml"} <= names


def test_doctor_names_the_fix_when_a_tool_is_missing(tmp_path: Path) -> None:
    env_path = tmp_path / "bin"
    env_path.mkdir()
    # A PATH with python but without ffmpeg/mediainfo/exiftool.
    os.symlink(sys.executable, env_path / "python")
    env = {k: v for k, v in os.environ.items()}
    env["PATH"] = str(env_path)
    env["RAYFLOW_HOME"] = str(tmp_path / "h")
    proc = subprocess.run([*RAYFLOW, "doctor"], capture_output=True, text=True, env=env,
                          timeout=120, check=False)
    assert proc.returncode == 3
    assert "MISSING" in proc.stdout
    assert "apt-get install libimage-exiftool-perl" in proc.stdout


def test_version_answers_without_a_command(tmp_path: Path) -> None:
    from rayflow import __version__

    proc = _run(["--version"], tmp_path / "h", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"rayflow {__version__}"
