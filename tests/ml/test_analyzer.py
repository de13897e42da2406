"""ClipAnalyzer without Ray: roles on/off, a configured captioner, failures as values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rayflow.config import load_settings
from rayflow.media.decode import Frames
from rayflow.ml.analyzer import ClipAnalyzer
from rayflow.record import ClipRecord, FileInfo, VideoInfo
from tests.ml.test_captioner import make_tiny_blip


def _record(path: Path) -> ClipRecord:
    return ClipRecord(clip_id="c1", kind="video",
                      file=FileInfo(path=str(path), name=path.name, size_bytes=1, checksum="x"),
                      video=VideoInfo(codec="h264", width=64, height=48, fps=25.0, duration_s=1.0))


def _frames() -> Frames:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(3, 48, 64, 3), dtype=np.uint8)
    return Frames(images=images, timestamps_s=np.array([0.1, 0.5, 0.9]), decoder="decord")


def test_configured_captioner_adds_a_caption_and_loads_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("RAYFLOW_CAPTION_MODEL", str(make_tiny_blip(tmp_path / "blip")))
    settings = load_settings(env={}, home=tmp_path / "home", analysis={
        "speech": False, "screen_text": False, "shots": False, "faces": False, "thumbnails": False})
    analyzer = ClipAnalyzer(settings)
    analyzer.setup()
    analyzer.setup()
    assert analyzer.loads == 1 and set(analyzer.models) == {"caption"}
    result = analyzer.process(str(tmp_path / "x.mp4"), "c1", _frames(), _record(tmp_path / "x.mp4"))
    assert result.errors == {}
    assert isinstance(result.analysis.caption, str) and result.analysis.caption
    assert result.analysis.description  # the deterministic description is still there


def test_a_failing_role_is_recorded_and_the_others_still_run(tmp_path: Path) -> None:
    settings = load_settings(env={}, home=tmp_path / "home", analysis={
        "speech": False, "screen_text": False, "shots": True, "faces": True, "thumbnails": False})
    analyzer = ClipAnalyzer(settings)
    analyzer.setup()
    missing = tmp_path / "gone.mp4"  # shots decode the file itself: it is not there
    result = analyzer.process(str(missing), "c1", _frames(), _record(missing))
    assert "shots" in result.errors and result.analysis.shots is None
    assert result.analysis.faces is not None  # faces work on the frames already decoded


def test_configured_image_text_model_scores_thumbnails_by_prompt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess

    from tests.ml.test_text_encoder import make_tiny_clip

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("RAYFLOW_IMAGE_MODEL", str(make_tiny_clip(tmp_path / "clip")))
    clip = tmp_path / "x.mp4"  # best thumbnails are extracted from the real file
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i",
                    "testsrc2=size=64x48:rate=10:duration=1", "-c:v", "libx264", "-preset", "ultrafast",
                    str(clip)], check=True, timeout=60)
    settings = load_settings(env={}, home=tmp_path / "home", analysis={
        "speech": False, "screen_text": False, "shots": False, "faces": False, "thumbnails": True})
    analyzer = ClipAnalyzer(settings)
    analyzer.setup()
    assert "thumbnail_prompt" in analyzer.models
    result = analyzer.process(str(clip), "c1", _frames(), _record(clip))
    assert result.errors == {}
    assert result.timings["thumbnail_prompt"] > 0
    assert result.analysis.best_thumbnails and result.analysis.best_thumbnails[0].primary


def test_a_hung_model_call_times_out_marks_the_analyzer_stuck_and_the_others_run(tmp_path: Path) -> None:
    import threading

    settings = load_settings(env={}, home=tmp_path / "home", timeouts={"model_call_s": 1.0}, analysis={
        "speech": False, "screen_text": False, "shots": False, "faces": True, "thumbnails": False})
    analyzer = ClipAnalyzer(settings)
    analyzer.setup()
    release = threading.Event()

    class HungFaces:  # stands in for a native model call that never returns
        def process(self, frames: Frames) -> None:
            release.wait(60)

    analyzer.stages["faces"] = HungFaces()
    try:
        result = analyzer.process(str(tmp_path / "x.mp4"), "c1", _frames(), _record(tmp_path / "x.mp4"))
    finally:
        release.set()
    assert "timed out after 1 s" in result.errors["faces"]
    assert 1.0 <= result.timings["faces"] < 30
    assert analyzer.stuck  # the host must restart the process
    assert result.analysis.faces is None and result.analysis.description  # the rest still ran

    fresh = ClipAnalyzer(settings)  # the real face model, same deadline: well inside it
    ok = fresh.process(str(tmp_path / "x.mp4"), "c1", _frames(), _record(tmp_path / "x.mp4"))
    assert "faces" not in ok.errors and not fresh.stuck
