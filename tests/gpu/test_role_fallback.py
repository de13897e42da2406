"""A role set up for CUDA whose GPU load fails runs on the CPU and its record says so.

The CUDA failure is injected into the model LOADER only (TransNetV2's and faster-whisper's),
so the checks hold the same on a machine with or without a GPU; everything after the
loader (the CPU model, the clip, the record) is real."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rayflow.config import load_settings
from rayflow.media.decode import decode_frames
from rayflow.ml.shots import TransNetV2Cuts
from rayflow.ml.speech import SpeechModel
from rayflow.record import VideoInfo
from rayflow.stages.analyze import AnalyzeStage
from rayflow.stages.base import ClipInput
from rayflow.stages.shots import ShotSettings, ShotStage

CUBLAS = "Library libcublas.so.12 is not found or cannot be loaded"
NO_KERNEL = "CUDA error: no kernel image is available for execution on the device"


@pytest.fixture
def failing_cuda_loaders(monkeypatch: pytest.MonkeyPatch) -> None:
    real_transnet, real_whisper = TransNetV2Cuts.setup, SpeechModel._load

    def transnet_setup(self: TransNetV2Cuts) -> None:
        if self.device.startswith("cuda"):
            raise RuntimeError(NO_KERNEL)
        real_transnet(self)

    def whisper_load(self: SpeechModel, whisper_model: Any, kind: str, index: int) -> Any:
        if kind == "cuda":
            raise RuntimeError(CUBLAS)
        return real_whisper(self, whisper_model, kind, index)

    monkeypatch.setattr(TransNetV2Cuts, "setup", transnet_setup)
    monkeypatch.setattr(SpeechModel, "_load", whisper_load)


def test_analyze_set_up_for_cuda_records_each_fallback_and_still_analyses(
        failing_cuda_loaders: None, shared_media: Path, tmp_path: Path) -> None:
    settings = load_settings(env={}, home=tmp_path / "home", analysis={
        "screen_text": False, "faces": False, "thumbnails": False, "threads": 1})
    stage = AnalyzeStage(settings)
    stage.setup("cuda")
    clip = shared_media / "sintel_trailer_10s.mp4"  # cuts after black at 4.33 and 6.92 s, hard cut at 8.917 s
    frames = decode_frames(clip, timestamps_s=None, count=2, max_side=64, rotation=0, timeout_s=120)
    video = ClipInput(path=str(clip), clip_id="sintel", frames=frames, out_dir=tmp_path, timeout_s=120,
                      video=VideoInfo(codec="h264", width=854, height=480, fps=24.0, duration_s=10.0),
                      duration_s=10.0)
    audio = ClipInput(path=str(shared_media / "jfk.flac"), clip_id="jfk", frames=None, out_dir=tmp_path,
                      timeout_s=120, duration_s=11.0, audio_track=0)
    on_video, on_audio = stage.process(video), stage.process(audio)

    assert on_video.errors == {} and on_audio.errors == {}, (on_video.errors, on_audio.errors)
    shots = on_video.analysis.roles["shots"]
    assert shots.device == "cpu" and shots.fell_back and NO_KERNEL in (shots.reason or "")
    assert [round(s.start_s, 2) for s in on_video.analysis.shots.shots[1:]] == [4.33, 6.92, 8.92]  # the CPU found them
    speech = on_audio.analysis.roles["speech"]
    assert speech.device == "cpu" and speech.fell_back and "libcublas.so.12" in (speech.reason or "")
    assert "fellow americans" in on_audio.analysis.speech.text.lower()
    assert on_video.analysis.device == on_audio.analysis.device == "cpu"  # no record claims CUDA


def test_forced_transnetv2_falls_back_to_transnetv2_on_the_cpu(failing_cuda_loaders: None) -> None:
    stage = ShotStage(ShotSettings(detector="transnetv2", threads=1))
    stage.setup("cuda")
    run = stage.observed()
    assert (run.device, run.model, run.fell_back) == ("cpu", "transnetv2", True)
    assert stage._transnet is not None and stage._transnet.device == "cpu"


def test_a_cpu_setup_never_claims_a_fallback() -> None:
    stage = ShotStage(ShotSettings(detector="auto"))
    stage.setup("cpu")
    assert stage.observed().fell_back is False and stage.observed().reason is None
