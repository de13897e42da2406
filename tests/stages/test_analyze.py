"""The analyze stage without Ray: roles on/off, a configured captioner, failures as values."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from rayflow.config import Settings, load_settings
from rayflow.media.decode import Frames
from rayflow.record import ClipRecord, FileInfo, VideoInfo
from rayflow.stages.analyze import AnalyzeResult, AnalyzeStage
from rayflow.stages.base import ClipInput
from rayflow.stages.faces import FaceStage
from tests.ml.test_captioner import make_tiny_blip


def _record(path: Path) -> ClipRecord:
    return ClipRecord(clip_id="c1", kind="video",
                      file=FileInfo(path=str(path), name=path.name, size_bytes=1, checksum="x"),
                      video=VideoInfo(codec="h264", width=64, height=48, fps=25.0, duration_s=1.0))


def _analyze(stage: AnalyzeStage, settings: Settings, path: Path, frames: Frames | None = None) -> AnalyzeResult:
    item = ClipInput.from_record(str(path), _frames() if frames is None else frames, _record(path), clip_id="c1",
                                 out_dir=settings.clip_dir("c1"), timeout_s=60)
    return stage.process(item)


def _frames() -> Frames:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(3, 48, 64, 3), dtype=np.uint8)
    return Frames(images=images, timestamps_s=np.array([0.1, 0.5, 0.9]), decoder="decord")


def test_configured_captioner_adds_a_caption_and_loads_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    settings = load_settings(env={"RAYFLOW_CAPTION_MODEL": str(make_tiny_blip(tmp_path / "blip"))},
                             home=tmp_path / "home", analysis={
        "speech": False, "screen_text": False, "shots": False, "faces": False, "thumbnails": False})
    analyzer = AnalyzeStage(settings)
    analyzer.setup("cpu")
    analyzer.setup("cpu")
    assert analyzer.loads == 1 and set(analyzer.models) == {"caption", "focal", "describe"}
    result = _analyze(analyzer, settings, tmp_path / "x.mp4")
    assert result.errors == {}
    assert isinstance(result.analysis.caption, str) and result.analysis.caption
    assert result.analysis.description  # the deterministic description is still there


def test_a_failing_role_is_recorded_and_the_others_still_run(tmp_path: Path) -> None:
    settings = load_settings(env={}, home=tmp_path / "home", analysis={
        "speech": False, "screen_text": False, "shots": True, "faces": True, "thumbnails": False})
    analyzer = AnalyzeStage(settings)
    analyzer.setup("cpu")
    missing = tmp_path / "gone.mp4"  # shots decode the file itself: it is not there
    result = _analyze(analyzer, settings, missing)
    assert "shots" in result.errors and result.analysis.shots is None
    assert result.analysis.faces is not None  # faces work on the frames already decoded


def test_configured_image_text_model_scores_thumbnails_by_prompt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess

    from tests.ml.test_text_encoder import make_tiny_clip

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    clip = tmp_path / "x.mp4"  # best thumbnails are extracted from the real file
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i",
                    "testsrc2=size=64x48:rate=10:duration=1", "-c:v", "libx264", "-preset", "ultrafast",
                    str(clip)], check=True, timeout=60)
    image_model = str(make_tiny_clip(tmp_path / "clip"))
    settings = load_settings(env={}, home=tmp_path / "home", embed={"image_model": image_model},
                             analysis={"speech": False, "screen_text": False, "shots": False, "faces": False,
                                       "thumbnails": True})
    analyzer = AnalyzeStage(settings)
    analyzer.setup("cpu")
    assert "thumbnail_prompt" in analyzer.models
    result = _analyze(analyzer, settings, clip)
    assert result.errors == {}
    assert result.timings["thumbnail_prompt"] > 0
    assert result.analysis.best_thumbnails and result.analysis.best_thumbnails[0].primary


def test_a_hung_model_call_times_out_marks_the_analyzer_stuck_and_the_others_run(tmp_path: Path) -> None:
    import threading

    settings = load_settings(env={}, home=tmp_path / "home", timeouts={"model_call_s": 1.0}, analysis={
        "speech": False, "screen_text": False, "shots": False, "faces": True, "thumbnails": False})
    analyzer = AnalyzeStage(settings)
    analyzer.setup("cpu")
    release = threading.Event()

    class HungFaces(FaceStage):  # stands in for a native model call that never returns
        def process(self, item: ClipInput) -> None:
            release.wait(60)

    analyzer.stages["faces"] = HungFaces()
    try:
        result = _analyze(analyzer, settings, tmp_path / "x.mp4")
    finally:
        release.set()
    assert "timed out after 1 s" in result.errors["faces"]
    assert 1.0 <= result.timings["faces"] < 30
    assert analyzer.stuck  # the host must restart the process
    assert result.analysis.faces is None and result.analysis.description  # the rest still ran

    # A fresh stage with the real face model is not stuck (a roomier deadline: haar on noise
    # takes ~0.3 s on an idle 2-core box, ~3 s when it is loaded).
    roomy = replace(settings, timeouts=replace(settings.timeouts, model_call_s=60.0))
    fresh = AnalyzeStage(roomy)
    ok = _analyze(fresh, roomy, tmp_path / "x.mp4")
    assert "faces" not in ok.errors and not fresh.stuck


def test_roles_overlap_and_a_role_that_reads_others_waits_for_them(tmp_path: Path) -> None:
    """Independent roles run side by side (each waits at a barrier only both can pass together);
    best_thumbnails and describe start only after the roles they read have finished; by default
    (``overlap`` None) an analyzer on the CPU runs the same table one role after another."""
    import threading
    import time

    from rayflow.record import Faces
    from rayflow.stages.screen_text import ScreenTextStage

    settings = load_settings(env={}, home=tmp_path / "home", analysis={
        "speech": False, "screen_text": True, "shots": False, "faces": True, "thumbnails": True, "overlap": True})
    analyzer = AnalyzeStage(settings)
    analyzer.setup("cpu")
    together = threading.Barrier(2, timeout=10)
    order: list[str] = []

    class SlowFaces(FaceStage):
        def process(self, item: ClipInput) -> Faces:
            together.wait()
            time.sleep(0.3)
            order.append("faces")
            return Faces(method="stand-in", max_faces=2, shot_scale="wide")

    class Text(ScreenTextStage):
        def process(self, item: ClipInput) -> list:
            together.wait()
            order.append("screen_text")
            return []

    thumbs = analyzer.stages["best_thumbnails"]

    class Thumbs(type(thumbs)):  # type: ignore[misc]
        def process(self, item: ClipInput) -> list:
            order.append(f"best_thumbnails saw {item.analysis.faces.max_faces if item.analysis.faces else None}")
            return []

    analyzer.stages.update(faces=SlowFaces(), screen_text=Text(), best_thumbnails=Thumbs())
    result = _analyze(analyzer, settings, tmp_path / "x.mp4")
    assert result.errors == {}, result.errors
    assert order == ["screen_text", "faces", "best_thumbnails saw 2"]
    assert "2 people" in result.analysis.description  # describe read the faces role's output

    serial = replace(settings, analysis=replace(settings.analysis, overlap=None))  # the default: in turn on a CPU
    analyzer.settings = serial
    together = threading.Barrier(2, timeout=1)  # the stand-ins read this name when they run
    result = _analyze(analyzer, serial, tmp_path / "x.mp4")
    assert result.errors["screen_text"].startswith("BrokenBarrierError")  # faces had not started
