"""The analyze table run as plain Python (no Ray) over real clips, with the sequential runner."""

from __future__ import annotations

from pathlib import Path

from rayflow.config import load_settings
from rayflow.media.decode import decode_frames
from rayflow.record import ROLE_NAMES, ClipRecord, FileInfo, VideoInfo
from rayflow.stages.analyze import ROLES, AnalyzeStage
from rayflow.stages.base import ClipInput, run_sequential


def test_the_analyze_table_runs_sequentially_over_a_real_clip_and_an_audio_file(
        shared_media: Path, tmp_path: Path) -> None:
    settings = load_settings(env={}, home=tmp_path / "home", analysis={"screen_text": False, "threads": 1})
    clip = shared_media / "sintel_trailer_10s.mp4"  # 854x480, 24 fps, 10 s, no audio; marked transitions:
    # out of black to the title card (3.75-4.4 s), fade in after black (6.25-7.0 s), hard cut at 8.917 s
    frames = decode_frames(clip, timestamps_s=None, count=6, max_side=256, rotation=0, timeout_s=120)
    record = ClipRecord(clip_id="sintel", kind="video",
                        file=FileInfo(path=str(clip), name=clip.name, size_bytes=clip.stat().st_size, checksum="x"),
                        video=VideoInfo(codec="h264", width=854, height=480, fps=24.0, duration_s=10.0))
    video = ClipInput.from_record(str(clip), frames, record, clip_id="sintel", out_dir=tmp_path / "sintel",
                                  timeout_s=120)
    speech = shared_media / "jfk.flac"  # audio only: no frames; its one audio track is stream 0
    audio = ClipInput(path=str(speech), clip_id="jfk", frames=None, out_dir=tmp_path / "jfk", timeout_s=120,
                      duration_s=11.0, audio_track=0)
    stage = AnalyzeStage(settings)

    (on_video,), (on_audio,) = run_sequential([stage], [video, audio], device="cpu")

    assert tuple(r.name for r in ROLES) == ROLE_NAMES
    assert on_video.errors == {}, on_video.errors
    found = on_video.analysis
    cuts = [s.start_s for s in found.shots.shots[1:]]
    assert len(cuts) == 3 and 3.75 <= cuts[0] <= 4.4 and 6.25 <= cuts[1] <= 7.0 and abs(cuts[2] - 8.917) < 0.05
    assert found.speech is None  # the trailer has no audio: not an error
    assert found.faces is not None and found.best_thumbnails and found.best_thumbnails[0].primary
    assert Path(found.best_thumbnails[0].path).is_file()
    assert found.description and "4 shots" in found.description
    # What each role observed, recorded per role: all CPU here, nothing fell back.
    # The trailer has no audio track: speech did not run, so the record does not list it.
    assert set(found.roles) == {"shots", "faces", "focal", "best_thumbnails", "describe"}
    assert all(run.device == "cpu" and not run.fell_back for run in found.roles.values())
    assert found.device == "cpu" and found.roles["shots"].model == found.shots.method

    assert on_audio.errors == {}, on_audio.errors
    heard = on_audio.analysis
    assert heard.speech is not None and "fellow americans" in heard.speech.text.lower()
    assert heard.shots is None and heard.faces is None and not heard.best_thumbnails  # skipped: no pictures
    assert set(heard.roles) == {"speech", "describe"}
    assert stage.stages == {}  # run_sequential tore the stage down


def test_set_up_for_cuda_on_a_machine_without_one_no_role_claims_cuda(tmp_path: Path) -> None:
    import pytest

    from rayflow.ml.device import cuda_visible

    if cuda_visible():
        pytest.skip("this checks the CPU-only answer; the GPU benchmark checks the CUDA one")
    settings = load_settings(env={}, home=tmp_path / "home", analysis={"threads": 1, "thumbnails": False})
    stage = AnalyzeStage(settings)
    stage.setup("cuda")  # as an actor that was told it has a GPU, on a box that has none
    assert set(stage.runs) == {"shots", "speech", "screen_text", "faces", "focal", "describe"}
    assert all(run.device == "cpu" for run in stage.runs.values()), stage.runs
    for name in ("shots", "speech", "screen_text", "faces"):  # the roles that would use a GPU say they fell back
        assert stage.runs[name].fell_back and stage.runs[name].reason, (name, stage.runs[name])
    assert not stage.runs["focal"].fell_back  # CPU-only roles never asked for a GPU
