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

Faces come from a DNN detector (``rayflow.ml.face_detector``: ResNet-10 SSD,
confidence >= 0.8). ``FaceFrame.faces`` is THE face count of a frame: the
description, tags, best-frame reasons and filters all read it, so they cannot
disagree (before, the Sintel trailer's description said "No faces were seen"
while its best frame said "1 face").

The clip's label takes the MEDIAN tallest-face share over the frames that have
faces, once faces are on at least ``min_face_share`` of the frames (default 0:
any frame with a face, so ``shot_scale`` is "no people" exactly when
``max_faces`` is 0). Faces under ~12 px tall in the sampled frame (about 4 % of a
288 px frame) are rarely found, so a crowd in a very wide shot may read "no people".

Example::

    stage = FaceStage()
    stage.setup("cpu")               # loads the net once ("cuda": torch on the GPU)
    stage.detect(frames)             # Faces(method='res10-ssd(conf>=0.8)', shot_scale='medium', ...)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from rayflow.media.decode import Frames
from rayflow.ml.face_detector import DEFAULT_CONFIDENCE, Backend, SsdFaceDetector
from rayflow.record import FaceFrame, Faces, RoleRun, ShotScale, StageName, TextBox
from rayflow.stages.base import ClipInput, Device, Resources, Stage

log = logging.getLogger(__name__)

CLOSE_UP_FACE_HEIGHT = 0.25
"""Tallest face at least this share of the frame height: close-up."""
MEDIUM_FACE_HEIGHT = 0.08
"""At least this (and under CLOSE_UP_FACE_HEIGHT): medium; any smaller face: wide."""


@dataclass(frozen=True)
class FaceSettings:
    confidence: float = DEFAULT_CONFIDENCE
    """Detector score a face needs (0..1)."""
    min_face_height: float = 0.06
    """Smallest face sought, as a share of frame height (sets the detector's input size:
    0.06 feeds 367 rows; 0.05 finds smaller faces for ~1.3x the time)."""
    min_face_share: float = 0.0
    """Share of sampled frames that must show a face before the clip has people
    (0: any frame; then "no people" means no frame has a face)."""
    threads: int = 1
    """OpenCV threads (process-wide)."""
    backend: Backend = "auto"
    """What runs the net: auto = torch on a CUDA device, OpenCV's dnn on the CPU."""


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
    """Faces per sampled frame and the clip's shot scale; the net stays loaded.
    ``resources``: a GPU share, used when the analyzer is set up for CUDA (torch)."""

    name: StageName = "faces"
    resources = Resources(cpus=1, gpus=0.25)

    def __init__(self, settings: FaceSettings | None = None) -> None:
        self.settings = settings or FaceSettings()
        self.asked = "cpu"
        """The device ``setup`` was asked for (``device`` is where the net actually runs)."""
        self.detector = SsdFaceDetector(confidence=self.settings.confidence,
                                        min_face_height=self.settings.min_face_height, threads=self.settings.threads,
                                        backend=self.settings.backend)

    @property
    def method(self) -> str:
        return self.detector.name

    @property
    def device(self) -> str:
        """Where the detector actually runs ("cpu" or "cuda")."""
        return self.detector.device

    def setup(self, device: Device | None = None) -> None:
        """Load the net (once per actor); ``device`` "cuda" runs it on the GPU (torch),
        None or "cpu" on the CPU (cv2.dnn)."""
        self.asked = device or "cpu"
        self.detector.setup(self.asked)

    def observed(self) -> RoleRun:
        fell_back = self.asked.startswith("cuda") and not self.device.startswith("cuda")
        return RoleRun(device=self.device, model=self.method, fell_back=fell_back,
                       reason="neither torch nor OpenCV sees a CUDA device here" if fell_back else None)

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
                largest_face_height=round(max((b.h / height for b in boxes), default=0.0), 4),
                boxes=[TextBox(x0=round(b.x / width, 4), y0=round(b.y / height, 4),
                               x1=round(min(1.0, (b.x + b.w) / width), 4),
                               y1=round(min(1.0, (b.y + b.h) / height), 4))
                       for b in boxes],
            ))
        return Faces(
            method=self.method,
            frames=per_frame,
            max_faces=max((f.faces for f in per_frame), default=0),
            shot_scale=clip_shot_scale(per_frame, min_face_share=self.settings.min_face_share),
        )


def clip_shot_scale(frames: list[FaceFrame], *, min_face_share: float = 0.0) -> ShotScale:
    """The clip's shot scale: the median tallest-face share over frames with faces,
    when at least ``min_face_share`` of the frames (and at least one) have one."""
    heights = [f.largest_face_height for f in frames if f.faces > 0]
    if not heights or len(heights) < min_face_share * len(frames):
        return "no people"
    return shot_scale(float(np.median(heights)))
