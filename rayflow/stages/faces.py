"""Faces and shot scale from the sampled frames (no decoding here).

Each sampled frame gets its faces (boxes normalised 0..1 of the frame) and the
height of its tallest face as a share of the frame height. That share names the
frame's shot scale, the way an editor would:

====================  ===========  ======================================
tallest face height   shot scale   typical framing
====================  ===========  ======================================
>= 0.25 of frame      close-up     head and shoulders or tighter
>= 0.08               medium       waist up to a few people at a table
> 0                   wide         whole bodies, people in a place
no face               no people    (or faces the detector cannot see)
====================  ===========  ======================================

The clip's label takes the MEDIAN tallest-face share over the frames that have
faces, once faces are on at least ``min_face_share`` of the frames (default
0.2: a single stray detection among 12 frames does not make a clip "people").
The haar detector misses profiles and faces smaller than ~5 % of the frame
height, so "no people" means "no frontal face seen", and a crowd in a very
wide shot may read "no people".

Example::

    stage = FaceStage()
    stage.setup("cpu")               # loads the cascades once (CPU only)
    stage.detect(frames)             # Faces(method='opencv-haar(frontalface_alt2)', shot_scale='medium', ...)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from rayflow.media.decode import Frames
from rayflow.ml.faces import HaarFaceDetector
from rayflow.record import FaceFrame, Faces, RoleRun, ShotScale, StageName, TextBox
from rayflow.stages.base import ClipInput, Device, Resources, Stage

log = logging.getLogger(__name__)

CLOSE_UP_FACE_HEIGHT = 0.25
"""Tallest face at least this share of the frame height: close-up."""
MEDIUM_FACE_HEIGHT = 0.08
"""At least this (and under CLOSE_UP_FACE_HEIGHT): medium; any smaller face: wide."""


@dataclass(frozen=True)
class FaceSettings:
    profile: bool = False
    """Also run the profile cascade (both sides): finds turned heads, ~3x the time."""
    min_face_height: float = 0.05
    """Smallest face sought, as a share of frame height (frames are enlarged to reach it)."""
    min_face_share: float = 0.2
    """Share of sampled frames that must show a face before the clip has people."""
    threads: int = 1
    """OpenCV threads (process-wide)."""


def shot_scale(face_height: float) -> ShotScale:
    """Shot scale for a tallest-face share of frame height (0 = no face); thresholds above."""
    if face_height >= CLOSE_UP_FACE_HEIGHT:
        return "close-up"
    if face_height >= MEDIUM_FACE_HEIGHT:
        return "medium"
    if face_height > 0:
        return "wide"
    return "no people"


class FaceStage(Stage[ClipInput, Faces | None]):
    """Faces per sampled frame and the clip's shot scale; the cascades stay loaded."""

    name: StageName = "faces"
    resources = Resources(cpus=1)

    def __init__(self, settings: FaceSettings | None = None) -> None:
        self.settings = settings or FaceSettings()
        self.detector = HaarFaceDetector(profile=self.settings.profile,
                                         min_face_height=self.settings.min_face_height,
                                         threads=self.settings.threads)

    @property
    def method(self) -> str:
        return self.detector.name

    def setup(self, device: Device | None = None) -> None:
        """Load the cascades (once per actor). They run on the CPU whatever ``device`` is."""
        self.detector.setup()

    def observed(self) -> RoleRun:
        return RoleRun(device="cpu", model=self.method)

    def process(self, item: ClipInput) -> Faces | None:
        """Faces on the clip's sampled frames (None without frames)."""
        return self.detect(item.frames) if item.frames is not None else None

    def detect(self, frames: Frames) -> Faces:
        """Detect faces on every sampled frame; label the clip's shot scale."""
        per_frame: list[FaceFrame] = []
        for image, timestamp_s in zip(frames.images, frames.timestamps_s, strict=True):
            height, width = image.shape[:2]
            boxes = self.detector.detect(image)
            per_frame.append(FaceFrame(
                timestamp_s=round(float(timestamp_s), 6),
                faces=len(boxes),
                largest_face_height=round(max((h / height for _, _, _, h in boxes), default=0.0), 4),
                boxes=[TextBox(x0=round(x / width, 4), y0=round(y / height, 4),
                               x1=round(min(1.0, (x + w) / width), 4), y1=round(min(1.0, (y + h) / height), 4))
                       for x, y, w, h in boxes],
            ))
        return Faces(
            method=self.method,
            frames=per_frame,
            max_faces=max((f.faces for f in per_frame), default=0),
            shot_scale=clip_shot_scale(per_frame, min_face_share=self.settings.min_face_share),
        )


def clip_shot_scale(frames: list[FaceFrame], *, min_face_share: float = 0.2) -> ShotScale:
    """The clip's shot scale: the median tallest-face share over frames with faces,
    when at least ``min_face_share`` of the frames (and at least one) have one."""
    heights = [f.largest_face_height for f in frames if f.faces > 0]
    if not heights or len(heights) < min_face_share * len(frames):
        return "no people"
    return shot_scale(float(np.median(heights)))
