"""Exposure on real clips: black (underexposed), white (clipped), mid-grey (fine)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from rayflow.media.decode import Frames, decode_frames
from rayflow.stages.exposure import measure_exposure, rec709_to_linear


def _solid_clip(tmp_path: Path, colour: str) -> Frames:
    """0.4 s of one colour, 64x48, decoded as the pipeline would."""
    path = tmp_path / f"{colour}.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
         f"color={colour}:size=64x48:rate=10:duration=0.4",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)],
        check=True, timeout=60,
    )
    return decode_frames(path, timestamps_s=None, count=4, max_side=64, rotation=0, timeout_s=60)


def test_black_clip_is_underexposed(tmp_path: Path) -> None:
    info = measure_exposure(_solid_clip(tmp_path, "black"))
    assert info.frames == 4
    assert info.median_luma < 2 and info.crushed_shadows_pct == 100
    assert info.stop_offset_ev < -7
    assert info.warning and info.reason is not None
    assert "underexposed by ~7.7 stops" in info.reason
    assert "100.0% of pixels crushed" in info.reason


def test_white_clip_is_clipped(tmp_path: Path) -> None:
    info = measure_exposure(_solid_clip(tmp_path, "white"))
    assert info.clipped_highlights_pct == 100
    assert info.warning and info.reason is not None
    assert info.reason.startswith("100.0% of pixels clipped")
    assert "overexposed by ~2.5 stops" in info.reason


def test_mid_grey_clip_is_fine(tmp_path: Path) -> None:
    # 0x686868 = 104: 18 % grey through the Rec.709 camera curve.
    info = measure_exposure(_solid_clip(tmp_path, "0x686868"))
    assert 102 <= info.median_luma <= 106
    assert abs(info.stop_offset_ev) < 0.1
    assert info.clipped_highlights_pct == info.crushed_shadows_pct == 0
    assert not info.warning and info.reason is None


def test_small_clipped_area_warns_with_its_share() -> None:
    images = np.full((2, 10, 10, 3), 104, dtype=np.uint8)
    images[:, :2, :, :] = 255  # 20 % of pixels blown out, the rest mid-grey
    info = measure_exposure(Frames(images=images, timestamps_s=np.array([0.0, 1.0]),
                                   decoder="ffmpeg"))
    assert info.reason == "20.0% of pixels clipped"
    assert info.mean_luma == pytest.approx(0.8 * 104 + 0.2 * 255, abs=0.01)


def test_rec709_curve_round_trips_mid_grey() -> None:
    assert rec709_to_linear(0.0) == 0.0
    assert rec709_to_linear(1.0) == pytest.approx(1.0)
    assert rec709_to_linear(104.3 / 255) == pytest.approx(0.18, abs=0.002)


def _grey_frames(levels: list[int], *, bars: int = 0) -> Frames:
    """64x48 frames of textured grey at the given levels, with ``bars`` black rows top and bottom."""
    rng = np.random.default_rng(1)
    images = np.stack([np.full((48, 64, 3), level, dtype=np.int16) for level in levels])
    images = np.clip(images + rng.integers(-8, 9, size=images.shape), 0, 255).astype(np.uint8)
    if bars:
        images[:, :bars] = 0
        images[:, -bars:] = 0
    return Frames(images=images, timestamps_s=np.arange(len(levels), dtype=float),
                  decoder="decord")


def test_letterbox_bars_and_title_cards_are_not_underexposure() -> None:
    # Mid-grey picture in 2.39:1 bars, plus two black title cards among five frames.
    info = measure_exposure(_grey_frames([104, 0, 104, 0, 104], bars=11))
    assert info.frames == 3
    assert abs(info.stop_offset_ev) < 0.1
    assert not info.warning, info.reason


def test_a_dark_clip_is_still_dark_without_bars() -> None:
    # Dark everywhere, no bars: nothing is left out, and it is flagged.
    info = measure_exposure(_grey_frames([20, 22, 24]))
    assert info.frames == 3
    assert info.warning and info.reason is not None and "underexposed" in info.reason
