"""Focal length class of the lens: from the camera's metadata, else (only when a
model is configured) estimated from the picture.

Metadata first: the probe stage reads the 35 mm-equivalent focal length (EXIF
``FocalLengthIn35mmFormat``, Apple's ``focal_length.35mm_equivalent``, or the real
focal length x a known crop factor) and classes it (<21 ultra-wide, <35 wide,
<70 medium, <135 long, else telephoto: ``rayflow.stages.probe.focal_category``).
A real focal length WITHOUT a crop factor says nothing about the field of view
(4.2 mm is wide on a phone and long on a 1/2.3" zoom), so it is not classed.

The visual hook: an object with ``estimate(frames) -> (category, focal_35mm | None)``
(``FocalModel``) may be passed; it is asked only when the metadata is silent and
its answer is recorded with source "model". No such model ships offline (a
field-of-view regressor would be loaded from models/), so by default an unknown
lens stays unknown: every field None.

Example::

    focal_estimate(record.camera)   # FocalEstimate(category='long', focal_length_35mm=80.0, source='exif')
"""

from __future__ import annotations

from typing import Protocol

from rayflow.media.decode import Frames
from rayflow.record import CameraInfo, FocalCategory, FocalEstimate, RoleRun, StageName
from rayflow.stages.base import ClipInput, Resources, Stage
from rayflow.stages.probe import focal_category


class FocalModel(Protocol):
    """A visual focal-length estimator (none ships; see the module docstring)."""

    name: str

    def estimate(self, frames: Frames) -> tuple[FocalCategory | None, float | None]:
        """(category, 35 mm-equivalent focal length or None) for the clip's frames."""
        ...


class FocalStage(Stage[ClipInput, FocalEstimate]):
    """The lens class of a clip: camera metadata, else ``model`` (None ships) on its frames."""

    name: StageName = "focal"
    resources = Resources(cpus=0)

    def __init__(self, model: FocalModel | None = None) -> None:
        self.model = model

    def observed(self) -> RoleRun:
        return RoleRun(device="cpu", model=self.model.name if self.model else "camera metadata")

    def process(self, item: ClipInput) -> FocalEstimate:
        return focal_estimate(item.camera, frames=item.frames, model=self.model)


def focal_estimate(camera: CameraInfo, *, frames: Frames | None = None,
                   model: FocalModel | None = None) -> FocalEstimate:
    """The lens class from ``camera`` (source "exif"); else from ``model`` on ``frames``
    (source "model"); else an estimate with every field None."""
    category = camera.focal_category or focal_category(camera.focal_length_35mm)
    if category is not None:
        return FocalEstimate(category=category, focal_length_35mm=camera.focal_length_35mm, source="exif")
    if model is not None and frames is not None and frames.count:
        guessed, focal_35mm = model.estimate(frames)
        if guessed is not None:
            return FocalEstimate(category=guessed, focal_length_35mm=focal_35mm, source="model")
    return FocalEstimate()
