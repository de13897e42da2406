"""Frames lost with their inspect worker are decoded again by a plain Ray task whose options come
from the probe and sample stages' declared resources, through the same per-worker stages."""

from __future__ import annotations

from pathlib import Path

import pytest
import ray

from rayflow.config import load_settings
from rayflow.engine.tasks import REDECODE_OPTIONS, decode_again


def test_decode_again_returns_the_frames_by_value(engine, tmp_path: Path, shared_media: Path) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings(env={}, home=tmp_path / "home", prefect_api_url=engine.prefect_url)
    assert REDECODE_OPTIONS == {"num_cpus": 1}  # probe then sample, in turn: one CPU
    clip = shared_media / "sintel_trailer_10s.mp4"  # 854x480 -> sampled at 512x288
    frames = ray.get(decode_again.options(**REDECODE_OPTIONS).remote(str(clip), settings), timeout=300)
    assert frames.count == settings.sample.count and (frames.width, frames.height) == (512, 288)
    assert frames.strip is not None  # shots are on by default: the strip for the shot detector too
    audio = shared_media / "jfk.flac"  # no picture: fails with the reason, never empty frames
    with pytest.raises(ray.exceptions.RayTaskError, match="cannot decode the frames again: no picture"):
        ray.get(decode_again.options(**REDECODE_OPTIONS).remote(str(audio), settings), timeout=300)
