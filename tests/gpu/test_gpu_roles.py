"""On a CUDA GPU, each role with a CUDA path runs there (as its stage observes it) and agrees
with its CPU result. Skipped without a GPU; fails when FAIL_WITHOUT_CUDA=1 (tests/conftest.py).

Plain Python: no ray or prefect is needed to collect or run these (a GPU box without them).
The speedups and the GPU busy share are benchmarks/gpu.py's job; here only truth and parity."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from rayflow.record import RoleRun

pytestmark = pytest.mark.gpu

SINTEL_CUT_S = 8.917
"""The trailer's one hard cut (854x480, 24 fps; MANIFEST.md)."""


def _on_cuda(run: RoleRun) -> None:
    assert run.device.startswith("cuda") and not run.fell_back, run


def _item(path: Path, tmp_path: Path, **facts: object) -> object:
    from rayflow.stages.base import ClipInput

    return ClipInput(path=str(path), clip_id=path.stem, frames=None, out_dir=tmp_path, timeout_s=300,
                     **facts)  # type: ignore[arg-type]


def test_shots_transnetv2_on_cuda_agrees_with_the_cpu(gpu_media: Path, tmp_path: Path) -> None:
    from rayflow.record import VideoInfo
    from rayflow.stages.shots import ShotSettings, ShotStage

    item = _item(gpu_media / "sintel_trailer_10s.mp4", tmp_path, video=VideoInfo(fps=24.0), duration_s=10.0)
    found = {}
    for device in ("cpu", "cuda"):
        stage = ShotStage(ShotSettings(detector="transnetv2"))
        stage.setup(device)
        if device == "cuda":
            _on_cuda(stage.observed())
        found[device] = [s.start_s for s in stage.process(item).shots[1:]]  # type: ignore[arg-type]
    assert len(found["cuda"]) == len(found["cpu"]) >= 1
    assert all(abs(a - b) <= 1 / 24 + 1e-6 for a, b in zip(found["cpu"], found["cuda"], strict=True))
    assert any(abs(c - SINTEL_CUT_S) <= 1 / 24 + 1e-6 for c in found["cuda"])


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="the speech stage extracts audio with ffmpeg")
def test_speech_on_cuda_hears_the_same_words_or_says_why_not(gpu_media: Path, tmp_path: Path) -> None:
    from rayflow.ml.speech import locate_speech_model
    from rayflow.stages.speech import SpeechStage

    pytest.importorskip("faster_whisper", reason="faster-whisper was not carried (docs/gpu.md: --with-speech)")
    if not locate_speech_model().present:
        pytest.skip(f"no speech weights here: {locate_speech_model().detail}")
    item = _item(gpu_media / "jfk.flac", tmp_path, audio_track=0, duration_s=11.0)
    cpu, gpu = SpeechStage(threads=4), SpeechStage(threads=4)
    cpu.setup("cpu")
    gpu.setup("cuda")
    _on_cuda(gpu.observed())  # fails with the recorded reason (e.g. libcublas.so.12) when it fell back
    words = [re.findall(r"[a-z']+", s.process(item).text.casefold()) for s in (cpu, gpu)]  # type: ignore[arg-type,union-attr]
    assert words[0] == words[1] and "americans" in words[1]


def test_text_encoder_on_cuda_agrees_with_the_cpu() -> None:
    from rayflow.config import EmbedSettings
    from rayflow.record import Analysis, ClipRecord, FileInfo, Speech
    from rayflow.stages.embed import EmbedStage

    records = [ClipRecord(clip_id=f"c{i}", kind="video",
                          file=FileInfo(path=f"/m/clip{i}.mp4", name=f"clip{i}.mp4", size_bytes=1, checksum="-"),
                          analysis=Analysis(speech=Speech(model="x", text=text)))
               for i, text in enumerate(["ask not what your country can do for you", "a dragon over snow",
                                         "the mayor speaks at the harbour"])]
    vectors = {}
    for device in ("cpu", "cuda"):
        stage = EmbedStage(EmbedSettings())
        stage.setup(device)  # type: ignore[arg-type]
        if device == "cuda":
            _on_cuda(stage.observed())
        vectors[device] = np.stack([v.summary for v in stage.process(records)])
    cosine = np.sum(vectors["cpu"] * vectors["cuda"], axis=1)  # both L2-normalised
    assert cosine.min() > 0.99, cosine


def test_analyze_on_cuda_records_every_role_where_it_ran(gpu_media: Path, tmp_path: Path) -> None:
    """No role claims CUDA without running there: each role's record is its stage's observation,
    and a role that fell back says so with a reason."""
    from rayflow.config import load_settings
    from rayflow.media.decode import decode_frames
    from rayflow.record import VideoInfo
    from rayflow.stages.analyze import AnalyzeStage
    from rayflow.stages.base import ClipInput

    clip = gpu_media / "sintel_trailer_10s.mp4"
    frames = decode_frames(clip, timestamps_s=None, count=4, max_side=256, rotation=0, timeout_s=120)
    settings = load_settings(env={}, home=tmp_path / "home", analysis={"thumbnails": False, "threads": 2})
    stage = AnalyzeStage(settings)
    stage.setup("cuda")
    result = stage.process(ClipInput(path=str(clip), clip_id="sintel", frames=frames, out_dir=tmp_path,
                                     timeout_s=300, video=VideoInfo(fps=24.0), duration_s=10.0))
    for name, run in result.analysis.roles.items():
        assert run.device == "cpu" or run.device.startswith("cuda"), (name, run)
        assert not run.fell_back or run.reason, (name, run)
    _on_cuda(result.analysis.roles["shots"])  # auto = TransNetV2 on the GPU (OpenCV decodes without ffmpeg)
    assert result.analysis.device.startswith("cuda")
