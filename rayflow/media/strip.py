"""``FrameStrip``: every frame of a clip at 48x27 RGB, from the sampling pass, for shots.

``rayflow.media.decode.decode_frames(strip=True)`` makes one (see its module docstring);
``rayflow.stages.shots.ShotStage.detect(strip=...)`` reads it instead of decoding again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rayflow.media.tools import ToolError

STRIP_WIDTH = 48
STRIP_HEIGHT = 27
"""Size of every frame in a ``FrameStrip`` (TransNetV2's input; aspect not kept)."""
STRIP_MAX_FRAMES = 18_000
"""Longest stream (frames) that gets a strip: 10 min at 30 fps, 70 MB of 48x27 RGB."""

STRIP_SHOWINFO = re.compile(r"\[showinfo@strip @ [^\]]*\]\s*n:\s*\d+\s+pts:\s*-?\d+\s+pts_time:(\S+)")


@dataclass(frozen=True, eq=False, repr=False)
class FrameStrip:
    """Every frame of the video stream at 48x27 RGB, from the sampling pass (for shots)."""

    images: np.ndarray
    """(N, 27, 48, 3) uint8 RGB, display orientation, every decoded frame in order."""
    timestamps_s: np.ndarray
    """(N,) float64 seconds from the first frame of the video stream."""

    def __post_init__(self) -> None:
        images = np.asarray(self.images)
        if images.dtype != np.uint8 or images.shape[1:] != (STRIP_HEIGHT, STRIP_WIDTH, 3):
            raise ValueError(f"strip images must be uint8 (N, 27, 48, 3), got {images.dtype} {images.shape}")
        freeze_frames(self, images, self.timestamps_s)

    @property
    def count(self) -> int:
        return int(self.images.shape[0])

    def __repr__(self) -> str:
        return f"FrameStrip(images=uint8[{self.count}, 27, 48, 3], timestamps_s=float64[{self.count}])"


def read_strip(strip_file: Any, stderr: bytes, start_s: float, path: str | Path) -> FrameStrip:
    """The 48x27 frames ffmpeg wrote to ``strip_file``, with showinfo's timestamps."""
    data = Path(strip_file.name).read_bytes()
    frame_bytes = STRIP_WIDTH * STRIP_HEIGHT * 3
    stamps = [float(m[1]) for m in STRIP_SHOWINFO.finditer(stderr.decode(errors="replace"))]
    if not stamps or len(data) != len(stamps) * frame_bytes:
        raise ToolError("ffmpeg", path, f"shot strip: {len(data)} bytes for {len(stamps)} frames")
    images = np.frombuffer(data, dtype=np.uint8).reshape(len(stamps), STRIP_HEIGHT, STRIP_WIDTH, 3)
    return FrameStrip(images=images.copy(), timestamps_s=np.asarray(stamps) - start_s)


def freeze_frames(holder: object, images: np.ndarray, timestamps_s: object) -> None:
    """Store ``images`` and one timestamp per image on a frozen dataclass, both read-only
    (frames travel between stages and processes; nobody may change them in place)."""
    stamps = np.asarray(timestamps_s, dtype=np.float64)
    if stamps.shape != (images.shape[0],):
        raise ValueError(f"timestamps_s shape {stamps.shape} != ({images.shape[0]},)")
    images.flags.writeable = False
    stamps.flags.writeable = False
    object.__setattr__(holder, "images", images)
    object.__setattr__(holder, "timestamps_s", stamps)
