"""Face detection with OpenCV's haar cascades (the XML files inside opencv-python 4.x).

Cheap, CPU-only and offline; good at frontal faces and poor at profiles, small
faces and unusual angles, so it under-counts rather than invents. The default
cascade is ``frontalface_alt2`` (on this project's fixtures it found the same
faces as ``frontalface_default`` with no detections on testsrc2, smptebars or
mandelbrot patterns). ``profileface`` can be added (left profiles; the image is
mirrored for right ones); it roughly triples the cost.

The cascades' smallest window is 20-24 px, so a frame is enlarged before
detection until a face of ``min_face_height`` x the frame height spans 24 px:
on 512x288 sampled frames the default 0.05 means x1.67 (faces from 14 px up are
found). Cost on one core grows with that area: ~70 ms for a 512x288 frame
at x1, ~150 ms at x1.67 (2-core x86 box).

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
                 threads: int = 1) -> None:
        self.frontal = frontal
        self.profile = profile
        self.min_face_height = min_face_height
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.threads = threads
        self._frontal: cv2.CascadeClassifier | None = None
        self._profile: cv2.CascadeClassifier | None = None

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
        log.info("face detector %s loaded from %s", self.name, cascade_dir())

    def detect(self, rgb: np.ndarray) -> list[tuple[float, float, float, float]]:
        """Faces in one (H, W, 3) uint8 RGB image as (x, y, w, h) pixel boxes of that image,
        overlapping hits merged."""
        if self._frontal is None:
            raise RuntimeError("HaarFaceDetector.setup() was not called")
        scale = upscale_for(rgb.shape[0], self.min_face_height)
        gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
        if scale > 1.0:
            gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        gray = cv2.equalizeHist(gray)
        boxes = [*self._scan(self._frontal, gray)]
        if self._profile is not None:
            boxes += self._scan(self._profile, gray)
            flipped = cv2.flip(gray, 1)
            boxes += [(gray.shape[1] - x - w, y, w, h) for x, y, w, h in self._scan(self._profile, flipped)]
        return [(x / scale, y / scale, w / scale, h / scale) for x, y, w, h in _merge(boxes)]

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
