"""The stages run as plain Python where ray, prefect and decord are not installed (a bare GPU box).

Each check runs in a fresh interpreter whose ``sys.meta_path`` refuses ray, prefect and decord,
so an import of any of them anywhere in the chain fails the test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

BLOCKER = """
import sys
class _Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("ray", "prefect", "decord"):
            raise ImportError(f"{name} is blocked (a machine without it)")
        return None
sys.meta_path.insert(0, _Blocked())
"""

ANALYZE = BLOCKER + """
import importlib, json, pkgutil
import rayflow.config, rayflow.record
for package in ("stages", "ml", "media"):
    found = importlib.import_module("rayflow." + package)
    for module in pkgutil.iter_modules(found.__path__):
        importlib.import_module(f"rayflow.{package}.{module.name}")
from rayflow.config import load_settings
from rayflow.media.decode import decode_frames
from rayflow.stages.analyze import AnalyzeStage
from rayflow.stages.base import ClipInput, run_sequential
from rayflow.record import VideoInfo
clip, home = sys.argv[1], sys.argv[2]
settings = load_settings(env={}, home=home, analysis={"screen_text": False, "speech": False, "threads": 1,
                                                     "thumbnails": False})
frames = decode_frames(clip, timestamps_s=None, count=4, max_side=128, rotation=0, timeout_s=120)
item = ClipInput(path=clip, clip_id="sintel", frames=frames, out_dir=home, timeout_s=120,
                 video=VideoInfo(codec="h264", width=854, height=480, fps=24.0, duration_s=10.0), duration_s=10.0)
((result,),) = run_sequential([AnalyzeStage(settings)], [item])
print(json.dumps({"blocked": sorted(m for m in sys.modules if m.partition(".")[0] in ("ray", "prefect", "decord")),
                  "errors": result.errors, "decoder": frames.decoder,
                  "cuts": [s.start_s for s in result.analysis.shots.shots[1:]],
                  "roles": {k: v.device for k, v in result.analysis.roles.items()}}))
"""

DECODE = BLOCKER + """
import json
from rayflow.media.decode import decode_frames
frames = decode_frames(sys.argv[1], timestamps_s=None, count=6, max_side=128, rotation=0, timeout_s=120)
print(json.dumps({"decoder": frames.decoder, "shape": list(frames.images.shape), "note": frames.note,
                  "stamps": [float(t) for t in frames.timestamps_s]}))
"""


def _run(script: str, *args: str, env: dict[str, str] | None = None) -> dict:
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=300,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _marked(cuts: list[float], tolerance_s: float) -> bool:
    """Sintel's marked transitions (tests/quality/labels.py): out of black to the title card
    (3.75-4.4 s), a fade in after black (6.25-7.0 s), the hard cut at 8.917 s."""
    return (len(cuts) == 3 and 3.75 <= cuts[0] <= 4.4 and 6.25 <= cuts[1] <= 7.0
            and abs(cuts[2] - 8.917) <= tolerance_s)


def test_the_analyze_stage_imports_and_runs_without_ray_prefect_or_decord(shared_media: Path,
                                                                          tmp_path: Path) -> None:
    found = _run(ANALYZE, str(shared_media / "sintel_trailer_10s.mp4"), str(tmp_path))
    assert found["blocked"] == []
    assert found["errors"] == {}, found["errors"]
    assert found["decoder"] == "ffmpeg"  # decord is blocked: the ffmpeg fallback decoded
    assert _marked(found["cuts"], 0.05)  # the trailer's three marked transitions
    assert found["roles"]["shots"] == "cpu"


def test_frames_decode_with_opencv_where_ffmpeg_is_not_installed(shared_media: Path, tmp_path: Path) -> None:
    clip = str(shared_media / "sintel_trailer_10s.mp4")  # 854x480, 24 fps, 240 frames
    reference = _run(DECODE, clip)
    bare = _run(DECODE, clip, env={"PATH": str(tmp_path)})  # no ffmpeg, no ffprobe on PATH
    assert reference["decoder"] == "ffmpeg" and bare["decoder"] == "opencv"
    assert bare["note"] and "ffmpeg" in bare["note"]
    assert bare["shape"] == reference["shape"] == [6, 72, 128, 3]
    # The same frames picked (centres of 6 equal segments): timestamps agree to a frame.
    assert all(abs(a - b) <= 1 / 24 + 1e-6 for a, b in zip(bare["stamps"], reference["stamps"], strict=True))


def test_the_gpu_tests_collect_without_ray_or_prefect() -> None:
    script = BLOCKER + """
import pytest
sys.exit(pytest.main(["--collect-only", "-q", "-m", "gpu", "-p", "no:cacheprovider", "tests/gpu"]))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "test_gpu_roles.py::test_shots_transnetv2_on_cuda_agrees_with_the_cpu" in done.stdout


SHOTS = BLOCKER + """
import json
from rayflow.stages.shots import ShotSettings, ShotStage
stage = ShotStage(ShotSettings(detector="classical"))
stage.setup("cpu")
found = stage.detect(sys.argv[1], fps=None, duration_s=None, timeout_s=120)
print(json.dumps({"cuts": [s.start_s for s in found.shots[1:]], "end": found.shots[-1].end_s}))
"""


def test_shots_decode_with_opencv_where_ffmpeg_is_not_installed(shared_media: Path, tmp_path: Path) -> None:
    found = _run(SHOTS, str(shared_media / "sintel_trailer_10s.mp4"), env={"PATH": str(tmp_path)})
    assert _marked(found["cuts"], 1 / 24 + 1e-6)  # the same cuts as ffmpeg's
    assert abs(found["end"] - 10.0) <= 1 / 24 + 1e-6
