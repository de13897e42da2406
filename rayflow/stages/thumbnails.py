"""Thumbnails from the sampled frames: a few representative, non-blank images per clip.

No decoding here: the frames come from the sample stage. Frames that are nearly
black, nearly white or flat (fades, slates, lens cap) are skipped when better ones
exist; the rest are chosen evenly over the clip.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
from PIL import Image

from rayflow.config import ThumbnailSettings
from rayflow.media.decode import Frames, even_indices
from rayflow.media.tempfiles import save_image_atomic, sweep_temp_files
from rayflow.record import StageName, Thumbnail
from rayflow.stages.base import FileItem, Resources, Stage

log = logging.getLogger(__name__)

DARK_MEAN_LUMA = 16.0
"""A frame whose mean Rec.709 luma (0..255) is below this is 'near black'."""
BRIGHT_MEAN_LUMA = 240.0
"""Above this it is 'near white'."""
FLAT_STD_LUMA = 6.0
"""Below this luma standard deviation it is 'flat' (one colour, no detail)."""

_EXTENSIONS = {"jpeg": "jpg", "webp": "webp"}
_OURS = re.compile(r"thumb_\d{2,}_\d+\.\d{3}s\.(jpg|webp)")


def frame_luma_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame (mean, std) of Rec.709 luma, 0..255, on every 4th pixel (plenty for this)."""
    sub = images[:, ::4, ::4, :].astype(np.float32)
    luma = sub @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
    return luma.mean(axis=(1, 2)), luma.std(axis=(1, 2))


def usable_frames(frames: Frames) -> np.ndarray:
    """Indices of frames that are neither near black, near white nor flat."""
    mean, std = frame_luma_stats(frames.images)
    ok = (mean >= DARK_MEAN_LUMA) & (mean <= BRIGHT_MEAN_LUMA) & (std >= FLAT_STD_LUMA)
    return np.flatnonzero(ok)


def choose_frames(frames: Frames, count: int) -> np.ndarray:
    """Up to ``count`` frame indices, evenly spread over the usable frames, ascending.

    When no frame is usable (an all-black clip) the choice is made among all frames,
    so a clip always gets thumbnails; when fewer than ``count`` are usable, fewer are
    returned rather than padding with blank ones.
    """
    pool = usable_frames(frames)
    if pool.size == 0:
        pool = np.arange(frames.count)
    return pool[even_indices(pool.size, count)]


def thumbnail_name(index: int, timestamp_s: float, fmt: str) -> str:
    """e.g. ``thumb_00_12.345s.jpg``: from position and time only, never the source name."""
    return f"thumb_{index:02d}_{max(timestamp_s, 0.0):.3f}s.{_EXTENSIONS[fmt]}"


def write_thumbnails(frames: Frames, out_dir: Path, settings: ThumbnailSettings) -> list[Thumbnail]:
    """Write thumbnails of chosen frames to ``out_dir`` and describe them.

    Longest side ``settings.max_side`` (never upscaled), JPEG or WebP at
    ``settings.quality``. Each file is written to a temp file in ``out_dir`` and
    moved into place with ``os.replace``, so a reader never sees half an image
    (atomic, not fsynced: the record written last is what must be durable).
    Idempotent: a re-run overwrites the same names and removes thumbnails of an
    earlier run that this run did not write (only names matching ``thumb_NN_T.TTTs``).
    """
    if settings.count <= 0 or frames.count == 0:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    sweep_temp_files(out_dir, pattern=".thumb_*.tmp")  # left by a run killed mid-write
    thumbs: list[Thumbnail] = []
    for n, index in enumerate(choose_frames(frames, settings.count)):
        image = Image.fromarray(frames.images[index])
        image.thumbnail((settings.max_side, settings.max_side), Image.Resampling.LANCZOS)
        timestamp_s = float(frames.timestamps_s[index])
        target = out_dir / thumbnail_name(n, timestamp_s, settings.format)
        _save_atomic(image, target, settings)
        thumbs.append(
            Thumbnail(
                path=str(target),
                timestamp_s=round(timestamp_s, 6),
                width=image.width,
                height=image.height,
                format=settings.format,
            )
        )
    written = {Path(t.path).name for t in thumbs}
    for stale in out_dir.iterdir():
        if _OURS.fullmatch(stale.name) and stale.name not in written:
            log.debug("removing stale thumbnail %s", stale)
            stale.unlink(missing_ok=True)
    return thumbs


def _save_atomic(image: Image.Image, target: Path, settings: ThumbnailSettings) -> None:
    match settings.format:
        case "jpeg":
            save_image_atomic(image, target, prefix=".thumb_", format="JPEG", quality=settings.quality,
                              optimize=True)
        case "webp":
            save_image_atomic(image, target, prefix=".thumb_", format="WEBP", quality=settings.quality, method=4)


class ThumbnailStage(Stage[FileItem, list[Thumbnail]]):
    """``write_thumbnails`` as a stage: reads ``item.frames``, writes them to ``item.out_dir``
    and the list to ``item.thumbnails``. No decoding: one CPU for a few resizes and encodes."""

    name: StageName = "thumbnails"
    resources = Resources(cpus=1)

    def __init__(self, settings: ThumbnailSettings) -> None:
        self.settings = settings

    def process(self, item: FileItem) -> list[Thumbnail]:
        if item.frames is None:
            raise ValueError(f"no frames to make thumbnails of: {item.path}")
        item.thumbnails = write_thumbnails(item.frames, item.out_dir, self.settings)
        return item.thumbnails
