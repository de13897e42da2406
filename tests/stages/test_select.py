"""Best thumbnails: never a black frame, variety across shots, and the EXACT source
frame extracted at full size for each chosen timestamp."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from rayflow.media.decode import Frames, decode_frames
from rayflow.record import FaceFrame, Faces, Shot, ShotDetection
from rayflow.stages.select import SelectSettings, ThumbnailSelector, score_frames
from rayflow.stages.shots import ShotStage

FADE_ARGV = [
    "ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
    "color=black:size=320x240:rate=25:duration=2[a];testsrc2=size=320x240:rate=25:duration=3[b];"
    "[a][b]concat=n=2:v=1:a=0[out0]",
    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
]
"""5 s at 25 fps: 2 s of black (40 %), then 3 s of testsrc2 (a cut at 2.0 s)."""


@pytest.fixture(scope="module")
def fade_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("select") / "fade.mp4"
    subprocess.run([*FADE_ARGV, str(path)], check=True, timeout=60)
    return path


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float32) @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)


def test_black_opening_never_chosen_and_frames_are_exact(fade_clip: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    frames = decode_frames(fade_clip, timestamps_s=None, count=10, max_side=160, rotation=0, timeout_s=60)
    assert frames.stream is not None and frames.stream.fps == 25.0 and frames.stream.width == 320

    def probed_again(*args: object, **kwargs: object) -> None:
        raise AssertionError("probed again: the sampling pass's probe travels with its frames")

    monkeypatch.setattr("rayflow.stages.select.probe_video_stream", probed_again)
    monkeypatch.setattr("rayflow.stages.shots.probe_video_stream", probed_again)
    shot_stage = ShotStage()
    shot_stage.setup(device="cpu")
    shots = shot_stage.detect(fade_clip, fps=25.0, duration_s=5.0, timeout_s=60, stream=frames.stream)
    assert [s.start_s for s in shots.shots] == [0.0, 2.0]
    out_dir = tmp_path / "clip"
    out_dir.mkdir()
    (out_dir / "best_5.jpg").write_bytes(b"stale")  # from an earlier run with more thumbnails

    best = ThumbnailSelector().select(fade_clip, frames, shots=shots, faces=None, out_dir=out_dir,
                                       timeout_s=60)

    assert len(best) == 3
    assert [b.primary for b in best] == [True, False, False]
    assert [Path(b.path).name for b in best] == ["best_0.jpg", "best_1.jpg", "best_2.jpg"]
    assert sorted(p.name for p in out_dir.iterdir()) == ["best_0.jpg", "best_1.jpg", "best_2.jpg"]
    scores = [b.score for b in best]
    assert scores[0] == max(scores)
    sampled = [round(float(t), 6) for t in frames.timestamps_s]
    for thumb in best:
        assert thumb.timestamp_s >= 2.0  # never the black opening
        assert thumb.timestamp_s in sampled
        assert abs(thumb.timestamp_s - 2.0) >= 0.25  # nor a frame at the cut
        assert thumb.reason
        image = np.asarray(Image.open(thumb.path).convert("RGB"))
        assert image.shape == (240, 320, 3) and (thumb.width, thumb.height) == (320, 240)  # full size
        assert _luma(image).mean() > 40
        # The exact frame: closest to the decoder's frame at that time, not to its neighbours.
        near = decode_frames(fade_clip, timestamps_s=[thumb.timestamp_s - 0.04, thumb.timestamp_s,
                                                      thumb.timestamp_s + 0.04],
                             count=3, max_side=320, rotation=0, timeout_s=60)
        diffs = [float(np.abs(_luma(image) - _luma(ref)).mean()) for ref in near.images]
        assert diffs[1] < 2.0, diffs  # JPEG q=2 noise only
        assert diffs[1] < min(diffs[0], diffs[2]) / 2, diffs
    # Three picks spread over the testsrc2 part, not three neighbours.
    times = sorted(b.timestamp_s for b in best)
    assert min(np.diff(times)) >= 0.3


@pytest.mark.parametrize("container", ["mp4", "mpegts"])
def test_every_frame_asked_for_is_extracted_exactly_in_one_ffmpeg(fade_clip: Path, tmp_path: Path,
                                                                   container: str) -> None:
    """Seeked inputs (mp4) or one decode in order (as for MPEG-TS: no trusted index), out of
    time order: each JPEG is its own target's frame."""
    from dataclasses import replace

    from rayflow.stages.select import extract_frames

    frames = decode_frames(fade_clip, timestamps_s=None, count=8, max_side=320, rotation=0, timeout_s=60)
    assert frames.stream is not None
    stream = frames.stream if container == "mp4" else replace(frames.stream, format_name="mpegts")
    assert stream.seekable == (container == "mp4")
    picks = [7, 4, 6]  # testsrc2 frames (the first 2 s are black: alike), not in time order
    targets = [tmp_path / f"best_{rank}.jpg" for rank in range(len(picks))]
    extract_frames(fade_clip, stream, [float(frames.timestamps_s[i]) for i in picks], targets, timeout_s=60)
    assert sorted(p.name for p in tmp_path.iterdir()) == [t.name for t in targets]  # no temp file left
    for index, target in zip(picks, targets, strict=True):
        image = _luma(np.asarray(Image.open(target).convert("RGB")))
        diffs = [float(np.abs(image - _luma(ref)).mean()) for ref in frames.images]
        assert int(np.argmin(diffs)) == index and diffs[index] < 2.0, (index, diffs)


def _texture(seed: int, blur: int = 0, level: int = 120) -> np.ndarray:
    """Random 8x8-pixel blocks around ``level`` plus fine noise; ``blur`` softens it (sigma, px)."""
    rng = np.random.default_rng(seed)
    blocks = np.repeat(np.repeat(rng.normal(0, 40, size=(9, 16, 3)), 8, axis=0), 8, axis=1)
    image = np.clip(level + blocks + rng.normal(0, 8, size=(72, 128, 3)), 0, 255).astype(np.uint8)
    if blur:
        image = cv2.GaussianBlur(image, (0, 0), blur)
    return image


def _frames(images: list[np.ndarray]) -> Frames:
    return Frames(images=np.stack(images), timestamps_s=np.arange(len(images), dtype=np.float64),
                  decoder="ffmpeg")


def test_sharp_beats_blurred_and_faces_win() -> None:
    frames = _frames([_texture(0, blur=3), _texture(1), _texture(2, blur=1)])
    ranked = ThumbnailSelector().rank(frames, shots=None, faces=None)
    assert [c.index for c in ranked] == [1, 2, 0] and "sharpest" in ranked[0].reason
    faces = Faces(method="haar", max_faces=1, shot_scale="medium", frames=[
        FaceFrame(timestamp_s=0.0, faces=0), FaceFrame(timestamp_s=1.0, faces=0),
        FaceFrame(timestamp_s=2.0, faces=1, largest_face_height=0.3)])
    ranked = ThumbnailSelector().rank(frames, shots=None, faces=faces)
    assert ranked[0].index == 2 and "1 face" in ranked[0].reason  # a slightly softer face wins


def test_one_per_shot_first() -> None:
    # Shot 0 has the three best frames; shot 1's best still comes second.
    frames = _frames([_texture(0), _texture(1), _texture(2), _texture(3, blur=2)])
    shots = ShotDetection(method="test", shots=[Shot(index=0, start_s=0.0, end_s=2.5),
                                                Shot(index=1, start_s=2.5, end_s=4.0)])
    ranked = ThumbnailSelector(SelectSettings(boundary_guard_s=0.1)).rank(frames, shots=shots, faces=None)
    assert ranked[1].index == 3 and ranked[1].reason.endswith("shot 2/2")


def test_blank_and_flash_frames_are_penalised() -> None:
    white = np.full((72, 128, 3), 250, dtype=np.uint8)
    frames = _frames([_texture(0), white, _texture(1), _texture(2, level=230), _texture(3)])
    candidates = score_frames(frames, shots=None, faces=None)
    assert candidates[1].blank and "blank frame" in candidates[1].reason
    ranked = ThumbnailSelector().rank(frames, shots=None, faces=None)
    assert ranked[-1].index == 1  # the blank frame comes last


def test_sintel_best_frame_is_the_close_up_not_fog(shared_media: Path) -> None:
    """The Sintel trailer's #1 was a washed-out fog frame (0.42 s) and its closing close-up
    (9.58 s, inside 2.39:1 bars) was called blank; ranked by contrast, colour, exposure inside
    the bars, faces and sharpness for the content, the close-up leads and fog scores below
    every clear picture."""
    from rayflow.stages.faces import FaceStage

    path = shared_media / "sintel_trailer_10s.mp4"
    frames = decode_frames(path, timestamps_s=None, count=12, max_side=512, rotation=0, timeout_s=60, strip=True)
    shot_stage = ShotStage()
    shot_stage.setup(device="cpu")
    shots = shot_stage.detect(path, fps=None, duration_s=10.0, timeout_s=60, strip=frames.strip)
    face_stage = FaceStage()
    face_stage.setup()
    faces = face_stage.detect(frames)
    ranked = ThumbnailSelector().rank(frames, shots=shots, faces=faces)
    assert round(ranked[0].timestamp_s, 2) == 9.58 and "1 face" in ranked[0].reason
    clear = [c for c in ranked if not c.blank and "near a cut" not in c.reason]
    assert min(clear, key=lambda c: c.score).timestamp_s == pytest.approx(0.42, abs=0.01)  # the fog frame
    assert all(not c.blank for c in ranked[:3])


def test_hdr_best_frame_is_tone_mapped(shared_media: Path, tmp_path: Path) -> None:
    """The full-size still of an HLG clip goes through the same tone map as the sampled frames
    (and the proxy): it matches the sampled frame, not the flat, hue-shifted decode."""
    from rayflow.media.hdr import can_tonemap

    if not can_tonemap():
        pytest.skip("this ffmpeg has no zscale/tonemap")
    path = shared_media / "hlg10-color-test.mp4"
    frames = decode_frames(path, timestamps_s=None, count=3, max_side=512, rotation=0, timeout_s=60)
    assert frames.tone_mapped == "arib-std-b67"
    best = ThumbnailSelector(SelectSettings(count=1)).select(path, frames, shots=None, faces=None,
                                                              out_dir=tmp_path, timeout_s=60)
    with Image.open(best[0].path) as still:
        small = np.asarray(still.convert("RGB").resize((frames.width, frames.height), Image.Resampling.BOX))
    index = [round(float(t), 6) for t in frames.timestamps_s].index(best[0].timestamp_s)
    assert np.abs(small.astype(int) - frames.images[index]).mean() < 3


def test_a_best_frame_killed_before_its_rename_leaves_only_a_swept_temp_file(
        fade_clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker killed between writing a best frame and renaming it leaves the house temp name
    (hidden, ``.tmp``), which verify lists as a temp file and the next run sweeps: never a stray
    output (the soak's kill-every-3-s run left a ``.best_*.jpg`` verify had to call stray)."""
    from rayflow.media.tempfiles import sweep_temp_files, temp_files
    from rayflow.stages import select

    frames = decode_frames(fade_clip, timestamps_s=None, count=4, max_side=160, rotation=0, timeout_s=60)
    left: list[Path] = []

    def copy_and_keep(src: str, dst: Path) -> None:  # as if killed right after the rename's copy
        left.append(Path(src))
        shutil.copyfile(src, dst)

    monkeypatch.setattr(select.os, "replace", copy_and_keep)
    ThumbnailSelector(SelectSettings(count=1)).select(fade_clip, frames, shots=None, faces=None,
                                                      out_dir=tmp_path, timeout_s=60)
    monkeypatch.undo()
    assert left and temp_files(tmp_path) == left
    with Image.open(left[0]) as still:  # the temp file holds a whole JPEG (the codec is named)
        assert still.format == "JPEG"
    assert sweep_temp_files(tmp_path) == left
    assert [p.name for p in tmp_path.iterdir()] == ["best_0.jpg"]
