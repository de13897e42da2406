"""Face detection with OpenCV's haar cascades (the XML files inside opencv-python 4.x).

Cheap, CPU-only and offline; good at frontal faces and poor at profiles, small
faces and unusual angles, so it under-counts rather than invents. The default
cascade is ``frontalface_alt2`` (on this project's fixtures it found the same
faces as ``frontalface_default`` with no detections on testsrc2, smptebars or
mandelbrot patterns). ``profileface`` can be added (left profiles; the image is
mirrored for right ones); it roughly triples the cost.

Textures fool the frontal cascade (a plaid blanket in ``100_0306.AVI`` read as a
face on 6 of 12 frames), so a face at least ``verify_min_px`` (40) pixels tall in
the frame must also show an eye (``eye`` or ``eye_tree_eyeglasses`` cascade) in
its upper 60 %; that rejected every blanket "face" and kept the real ones of
``sample_av1.mp4`` and the astronaut, at the cost of faces with hidden eyes
(sunglasses, a scarf over the eyes). Smaller faces are too small to verify and are
kept as found.

The cascades' smallest window is 20-24 px, so a frame is enlarged before
detection until a face of ``min_face_height`` x the frame height spans 24 px:
on 512x288 sampled frames the default 0.05 means x1.67 (faces from 14 px up are
found). Cost on one core grows with that area: per 512x288 frame, ~100 ms at
x1 and 180-250 ms at x1.67 on a busy 2-core x86 box (the eye check adds little).
``min_face_height`` 0.06 or ``scale_factor`` 1.15 each save about a third and
find fewer small faces.

Example::

    detector = HaarFaceDetector()
    detector.setup()
    detector.detect(rgb)        # [(x, y, w, h), ...] in pixels of ``rgb``
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

HAAR_WINDOW_PX = 24
"""Smallest face the cascades can see, in pixels of the image they scan."""
EYE_CHECK_ENLARGE_BELOW_PX = 67
"""Faces shorter than this (frame pixels) are enlarged x2 for the eye check (eyes under ~12 px)."""


def cascade_dir() -> Path:
    """Folder of the haar cascade XML files shipped in the opencv-python wheel."""
    return Path(cv2.data.haarcascades)


class HaarFaceDetector:
    """Warm haar cascades. Defaults are OpenCV's usual ones for video frames.

    ``scale_factor`` 1.1: image pyramid step (1.2 halves the time and misses some
    faces). ``min_neighbors`` 5: overlapping hits needed to accept a face (lower
    finds more and invents more). ``threads``: OpenCV's worker threads for the whole
    process (``cv2.setNumThreads``); 1 suits an actor that shares its node.
    """

    def __init__(self, *, frontal: str = "frontalface_alt2", profile: bool = False,
                 min_face_height: float = 0.05, scale_factor: float = 1.1, min_neighbors: int = 5,
                 verify_min_px: float | None = 40.0, threads: int = 1) -> None:
        self.frontal = frontal
        self.profile = profile
        self.verify_min_px = verify_min_px
        self.min_face_height = min_face_height
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.threads = threads
        self._frontal: cv2.CascadeClassifier | None = None
        self._profile: cv2.CascadeClassifier | None = None
        self._eyes: list[cv2.CascadeClassifier] = []

    @property
    def name(self) -> str:
        """e.g. 'opencv-haar(frontalface_alt2)'; recorded as ``Faces.method``."""
        parts = [self.frontal] + (["profileface"] if self.profile else [])
        return f"opencv-haar({'+'.join(parts)})"

    def setup(self) -> None:
        """Load the cascades (once; idempotent). Raises FileNotFoundError when the
        OpenCV build has none (opencv 5.x wheels dropped them)."""
        if self._frontal is not None:
            return
        cv2.setNumThreads(self.threads)
        self._frontal = _load(self.frontal)
        self._profile = _load("profileface") if self.profile else None
        self._eyes = [_load("eye"), _load("eye_tree_eyeglasses")] if self.verify_min_px is not None else []
        log.info("face detector %s loaded from %s", self.name, cascade_dir())

    def detect(self, rgb: np.ndarray) -> list[tuple[float, float, float, float]]:
        """Faces in one (H, W, 3) uint8 RGB image as (x, y, w, h) pixel boxes of that image,
        overlapping hits merged."""
        if self._frontal is None:
            raise RuntimeError("HaarFaceDetector.setup() was not called")
        scale = upscale_for(rgb.shape[0], self.min_face_height)
        native = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
        gray = native
        if scale > 1.0:
            gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        gray = cv2.equalizeHist(gray)
        boxes = [*self._scan(self._frontal, gray)]
        if self._profile is not None:
            boxes += self._scan(self._profile, gray)
            flipped = cv2.flip(gray, 1)
            boxes += [(gray.shape[1] - x - w, y, w, h) for x, y, w, h in self._scan(self._profile, flipped)]
        faces = [(x / scale, y / scale, w / scale, h / scale) for x, y, w, h in _merge(boxes)]
        if self.verify_min_px is not None and faces:
            equalized = cv2.equalizeHist(native)
            faces = [face for face in faces if face[3] < self.verify_min_px or self._has_eye(equalized, face)]
        return faces

    def _has_eye(self, gray: np.ndarray, box: tuple[float, float, float, float]) -> bool:
        """Whether an eye cascade finds an eye in the upper 60 % of ``box``, looked at in
        the frame's own pixels (enlarged x2 under ``EYE_CHECK_ENLARGE_BELOW_PX``).

        The frame's own pixels, not the enlarged scan image: enlarged, the blanket's
        texture grew "eyes" (3 of 6 false faces passed); at native size none did."""
        x, y, w, h = (int(round(v)) for v in box)
        roi = gray[max(0, y):max(0, y) + int(h * 0.6), max(0, x):max(0, x) + w]
        if roi.size == 0:
            return False
        if h < EYE_CHECK_ENLARGE_BELOW_PX:
            roi = cv2.resize(roi, None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR)
        return any(len(eye.detectMultiScale(roi, scaleFactor=1.1, minNeighbors=3, minSize=(8, 8))) > 0
                   for eye in self._eyes)

    def _scan(self, cascade: cv2.CascadeClassifier, gray: np.ndarray) -> list[tuple[float, float, float, float]]:
        found = cascade.detectMultiScale(gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
                                         minSize=(HAAR_WINDOW_PX, HAAR_WINDOW_PX))
        return [tuple(float(v) for v in box) for box in np.asarray(found).reshape(-1, 4)]  # type: ignore[misc]


def _load(name: str) -> cv2.CascadeClassifier:
    path = cascade_dir() / f"haarcascade_{name}.xml"
    if not path.is_file():
        raise FileNotFoundError(f"haar cascade {path} is missing (opencv-python 4.x ships it; 5.x does not)")
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise FileNotFoundError(f"haar cascade {path} did not load")
    return cascade


def _merge(boxes: list[tuple[float, float, float, float]], iou: float = 0.3
           ) -> list[tuple[float, float, float, float]]:
    """Greedy non-maximum suppression, larger boxes first (frontal and profile hits of one face)."""
    kept: list[tuple[float, float, float, float]] = []
    for box in sorted(boxes, key=lambda b: -b[2] * b[3]):
        if all(_iou(box, other) < iou for other in kept):
            kept.append(box)
    return kept


def _iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def upscale_for(height_px: int, min_face_height: float) -> float:
    """The enlargement ``detect`` applies to a frame ``height_px`` tall (>= 1)."""
    return max(1.0, math.ceil(HAAR_WINDOW_PX / (min_face_height * height_px) * 100) / 100)
