"""Frame decoding with OpenCV alone, for machines without ffmpeg/ffprobe.

``decode_frames`` (``rayflow.media.decode``) uses it only when ffprobe or ffmpeg is not
installed: a GPU box that has Python, torch and opencv-python but no ffmpeg can still
sample frames (OpenCV's wheels carry their own FFmpeg libraries). It decodes in order
(no seeking), so it is slower than decord on long files, and it knows less: timestamps
are ``index / fps`` (no per-frame timestamps, no container start offset), and the
display rotation is what OpenCV applies itself (``CAP_PROP_ORIENTATION_AUTO``, on by
default since OpenCV 4.5), with square pixels assumed.

``OpenCvSmallFrames`` is the same fallback for the shot stage's every-frame 48x27 stream
(``rayflow.stages.shots.SmallFrames`` runs ffmpeg): same interface, bicubic scaling as
ffmpeg's default, timestamps ``index / fps``.

Example::

    images, stamps = decode_frames_opencv("clip.mp4", timestamps_s=None, count=6, max_side=256, timeout_s=60)
    with OpenCvSmallFrames("clip.mp4", timeout_s=60) as reader:
        frames = np.concatenate(list(reader.chunks())); reader.timestamps_s
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rayflow.media.tools import ToolError, ToolTimeout


def decode_frames_opencv(path: str | Path, *, timestamps_s: list[float] | None, count: int, max_side: int,
                         timeout_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, H, W, 3) RGB, timestamps_s (N,)) picked as ``decode_frames`` picks them:
    ``count`` frames at the centres of equal segments, or the frame nearest each timestamp.
    Raises ``ToolError`` when OpenCV cannot open or decode the file, ``ToolTimeout`` past the deadline."""
    import cv2

    deadline = time.monotonic() + timeout_s
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise ToolError("opencv", path, "cannot open the file (no video stream OpenCV can decode)")
        fps = float(capture.get(cv2.CAP_PROP_FPS)) or 25.0
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        wanted = _wanted(total, fps, timestamps_s=timestamps_s, count=count)
        images: list[np.ndarray] = []
        picked: list[int] = []
        index = 0
        while wanted and index <= max(wanted):
            if time.monotonic() > deadline:
                raise ToolTimeout("opencv", path, f"decode timed out after {timeout_s:g} s")
            ok, frame = capture.read()
            if not ok:
                break
            if index in wanted:
                images.append(_resize(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), max_side))
                picked.append(index)
            index += 1
    finally:
        capture.release()
    if not images:
        raise ToolError("opencv", path, "no frames decoded")
    return np.stack(images), np.asarray(picked, dtype=np.float64) / fps


def _wanted(total: int, fps: float, *, timestamps_s: list[float] | None, count: int) -> set[int]:
    from rayflow.media.decode import even_indices

    if timestamps_s is None:
        return {int(i) for i in even_indices(max(total, 1), count)}
    last = max(total - 1, 0)
    return {min(last, max(0, round(t * fps))) for t in timestamps_s}


def _resize(image: np.ndarray, max_side: int) -> np.ndarray:
    import cv2

    height, width = image.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    if scale >= 1.0:
        return np.ascontiguousarray(image)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


class OpenCvSmallFrames:
    """Every frame of a clip at ``width`` x ``height`` RGB, in chunks, decoded by OpenCV.

    The interface of the shot stage's ffmpeg reader: a context manager whose ``chunks()``
    yields (n, height, width, 3) uint8 arrays, then ``timestamps_s``. ``fps`` is OpenCV's
    frame rate (None when it does not know). Raises ``ToolError`` when nothing decodes,
    ``ToolTimeout`` past ``timeout_s``."""

    def __init__(self, path: str | Path, *, timeout_s: float, chunk_frames: int = 500, width: int = 48,
                 height: int = 27) -> None:
        import cv2

        self.path = Path(path)
        self.timeout_s = timeout_s
        self.chunk_frames = chunk_frames
        self.width, self.height = width, height
        self._capture: Any = cv2.VideoCapture(str(self.path))
        self.fps: float | None = float(self._capture.get(cv2.CAP_PROP_FPS)) or None
        self._timestamps: np.ndarray | None = None

    def __enter__(self) -> OpenCvSmallFrames:
        if not self._capture.isOpened():
            raise ToolError("opencv", self.path, "cannot open the file (no video stream OpenCV can decode)")
        return self

    def __exit__(self, *exc: object) -> None:
        self._capture.release()

    def chunks(self) -> Iterator[np.ndarray]:
        import cv2

        deadline = time.monotonic() + self.timeout_s
        count = 0
        chunk: list[np.ndarray] = []
        while True:
            if time.monotonic() > deadline:
                raise ToolTimeout("opencv", self.path, f"timed out after {self.timeout_s:g} s")
            ok, frame = self._capture.read()
            if not ok:
                break
            # Area averaging, like the ffmpeg reader's ``flags=area``: cubic sampling at 854 -> 48
            # skips thin lines, so Sintel's title card read as black (peak 0 instead of 25) and the
            # cut into it after black was lost.
            small = cv2.resize(frame, (self.width, self.height), interpolation=cv2.INTER_AREA)
            chunk.append(cv2.cvtColor(small, cv2.COLOR_BGR2RGB))
            count += 1
            if len(chunk) == self.chunk_frames:
                yield np.stack(chunk)
                chunk = []
        if chunk:
            yield np.stack(chunk)
        if count == 0:
            raise ToolError("opencv", self.path, "no video frames decoded")
        self._timestamps = np.arange(count, dtype=np.float64) / (self.fps or 25.0)

    @property
    def timestamps_s(self) -> np.ndarray:
        if self._timestamps is None:
            raise RuntimeError("timestamps are known once chunks() is exhausted")
        return self._timestamps


__all__ = ["OpenCvSmallFrames", "decode_frames_opencv"]
