"""Focal length class: EXIF first, the model hook only when metadata is silent."""

from __future__ import annotations

import numpy as np

from rayflow.media.decode import Frames
from rayflow.record import CameraInfo, FocalCategory
from rayflow.stages.focal import focal_estimate


class _FakeModel:
    """Stands in for a visual estimator (none ships); records whether it was asked."""

    name = "fake-fov"

    def __init__(self) -> None:
        self.calls = 0

    def estimate(self, frames: Frames) -> tuple[FocalCategory | None, float | None]:
        self.calls += 1
        return "wide", 28.0


def _frames() -> Frames:
    return Frames(images=np.zeros((2, 8, 8, 3), dtype=np.uint8), timestamps_s=np.array([0.0, 1.0]),
                  decoder="ffmpeg")


def test_exif_35mm_equivalent_gives_the_class() -> None:
    # camera.mov fixture: 50 mm real, 80 mm equivalent -> long.
    camera = CameraInfo(focal_length_mm=50.0, focal_length_35mm=80.0, focal_category="long")
    estimate = focal_estimate(camera)
    assert (estimate.category, estimate.focal_length_35mm, estimate.source) == ("long", 80.0, "exif")


def test_equivalent_without_category_is_classed() -> None:
    estimate = focal_estimate(CameraInfo(focal_length_35mm=16.0))
    assert (estimate.category, estimate.source) == ("ultra-wide", "exif")
    assert focal_estimate(CameraInfo(focal_length_35mm=200.0)).category == "telephoto"


def test_real_focal_length_alone_is_not_classed() -> None:
    # 4.2 mm means nothing without the sensor size: unknown, not guessed.
    estimate = focal_estimate(CameraInfo(focal_length_mm=4.2))
    assert estimate.category is None and estimate.source is None and estimate.focal_length_35mm is None


def test_model_hook_only_when_metadata_is_silent() -> None:
    model = _FakeModel()
    assert focal_estimate(CameraInfo(), frames=_frames(), model=model).source == "model"
    assert model.calls == 1
    known = focal_estimate(CameraInfo(focal_length_35mm=50.0), frames=_frames(), model=model)
    assert known.source == "exif" and known.category == "medium"
    assert model.calls == 1
    assert focal_estimate(CameraInfo(), frames=None, model=model).source is None
