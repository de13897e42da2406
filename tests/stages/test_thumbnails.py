"""Thumbnails: chosen away from black fades, sized, formatted, written atomically."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rayflow.config import ThumbnailSettings
from rayflow.media import tempfiles
from rayflow.media.decode import Frames, decode_frames
from rayflow.stages.thumbnails import choose_frames, write_thumbnails


@pytest.fixture(scope="module")
def fade_in_frames(tmp_path_factory: pytest.TempPathFactory) -> Frames:
    """8 frames of a clip that opens on 0.8 s of black, then 1.2 s of testsrc2."""
    path = tmp_path_factory.mktemp("thumbs") / "fade_in.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
         "color=black:size=160x90:rate=10:duration=0.8[a];"
         "testsrc2=size=160x90:rate=10:duration=1.2[b];[a][b]concat=n=2:v=1:a=0[out0]",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)],
        check=True, timeout=60,
    )
    return decode_frames(path, timestamps_s=None, count=8, max_side=160, rotation=0,
                         timeout_s=60)


def _synthetic(levels: list[int], *, noisy: bool = True) -> Frames:
    """Frames of a given mean grey; ``noisy`` adds texture so they are not 'flat'."""
    rng = np.random.default_rng(0)
    images = []
    for level in levels:
        frame = np.full((36, 64, 3), level, dtype=np.int16)
        if noisy:
            frame = frame + rng.integers(-30, 31, size=frame.shape)
        images.append(np.clip(frame, 0, 255).astype(np.uint8))
    return Frames(images=np.stack(images), timestamps_s=np.arange(len(levels)) * 0.5,
                  decoder="decord")


def _luma_mean(path: Path) -> float:
    return float(np.asarray(Image.open(path).convert("L")).mean())


def test_black_opening_is_skipped(fade_in_frames: Frames, tmp_path: Path) -> None:
    assert fade_in_frames.images[0].max() < 20  # the clip really starts black
    thumbs = write_thumbnails(fade_in_frames, tmp_path, ThumbnailSettings(count=3, max_side=80))
    assert len(thumbs) == 3
    for thumb in thumbs:
        assert thumb.timestamp_s >= 0.8
        assert _luma_mean(Path(thumb.path)) > 40


@pytest.mark.parametrize(("fmt", "pil_name", "suffix"), [("jpeg", "JPEG", ".jpg"),
                                                         ("webp", "WEBP", ".webp")])
def test_size_and_format(
    fade_in_frames: Frames, tmp_path: Path, fmt: str, pil_name: str, suffix: str
) -> None:
    settings = ThumbnailSettings(count=2, max_side=80, format=fmt, quality=80)  # type: ignore[arg-type]
    thumbs = write_thumbnails(fade_in_frames, tmp_path, settings)
    for thumb in thumbs:
        path = Path(thumb.path)
        assert path.parent == tmp_path and path.suffix == suffix
        assert path.name.startswith("thumb_") and "fade_in" not in path.name
        with Image.open(path) as image:
            assert image.format == pil_name
            assert image.size == (thumb.width, thumb.height) == (80, 45)
        assert thumb.format == fmt


def test_never_upscaled(fade_in_frames: Frames, tmp_path: Path) -> None:
    thumbs = write_thumbnails(fade_in_frames, tmp_path, ThumbnailSettings(count=1, max_side=999))
    assert (thumbs[0].width, thumbs[0].height) == (160, 90)


def test_idempotent_and_stale_thumbnails_removed(fade_in_frames: Frames, tmp_path: Path) -> None:
    (tmp_path / "proxy.mp4").write_bytes(b"someone else's file")
    first = write_thumbnails(fade_in_frames, tmp_path, ThumbnailSettings(count=3))
    again = write_thumbnails(fade_in_frames, tmp_path, ThumbnailSettings(count=3))
    assert first == again
    fewer = write_thumbnails(fade_in_frames, tmp_path, ThumbnailSettings(count=1))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted([Path(fewer[0].path).name, "proxy.mp4"])


def test_failed_write_leaves_nothing_behind(
    fade_in_frames: Frames, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def replace_fails(src: str, dst: Path) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(tempfiles.os, "replace", replace_fails)  # the atomic save thumbnails use
    with pytest.raises(OSError, match="disk full"):
        write_thumbnails(fade_in_frames, tmp_path, ThumbnailSettings(count=2))
    assert list(tmp_path.iterdir()) == []  # no temp file, no half-written thumbnail


def test_choice_spreads_over_usable_frames() -> None:
    frames = _synthetic([2, 2, 120, 130, 140, 150, 160, 253, 2])
    assert choose_frames(frames, 3).tolist() == [2, 4, 6]
    assert choose_frames(frames, 9).tolist() == [2, 3, 4, 5, 6]  # no padding with blanks


def test_flat_frames_are_skipped() -> None:
    frames = Frames(
        images=np.concatenate([_synthetic([128], noisy=False).images,
                               _synthetic([128]).images]),
        timestamps_s=np.array([0.0, 1.0]), decoder="decord",
    )
    assert choose_frames(frames, 1).tolist() == [1]


def test_all_black_clip_still_gets_thumbnails(tmp_path: Path) -> None:
    frames = _synthetic([0, 0, 0, 0], noisy=False)
    thumbs = write_thumbnails(frames, tmp_path, ThumbnailSettings(count=2))
    assert len(thumbs) == 2
