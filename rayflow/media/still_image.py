"""Stills that ffmpeg cannot decode (HEIC/HEIF on ffmpeg < 7): read with Pillow and pillow-heif.

ffmpeg 5/6 has no HEIF demuxer: an iPhone photo (``.HEIC``: HEVC tiles in an ISOBMFF grid)
fails to open ("moov atom not found"). The probe already catalogues it from exiftool
(``rayflow.stages.probe.still``); without this module it then got no frames, so no thumbnails,
no best thumbnail and no analysis. Pillow reads it through pillow-heif (a PyPI wheel bundling
libheif and libde265; registered here on first use). pillow-heif applies the HEIF transforms
(rotation, mirror) while decoding and resets the EXIF orientation to 1, so the picture comes
upright, as ffmpeg delivers a JPEG; ``ImageOps.exif_transpose`` covers any other format
Pillow opens. A 12 MP iPhone HEIC decodes in ~0.3 s on one core.

Example::

    frames = read_still(path, max_side=512)        # Frames, one image, decoder "pillow"
    write_full_jpeg(path, out_dir / "best_0.jpg")  # the whole picture, written atomically
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rayflow.media.decode import Frames
from rayflow.media.tempfiles import save_image_atomic

JPEG_QUALITY = 95
"""Pillow's JPEG quality for a full-size still (about ffmpeg's ``-q:v 2`` of the video path)."""

WHOLE_PICTURE_FORMATS = frozenset({"HEIF", "AVIF", "JPEG", "PNG", "WEBP", "BMP", "GIF"})
"""Pillow formats whose first image is the picture itself. Not TIFF: Pillow opens a DNG or a
TIFF-based raw at its first IFD, a small preview (ExifTool's DNG test file gave an 8x8 white
square), which would be catalogued as the photo."""

_registered = False


def _open(path: str | Path) -> Any:
    """The upright RGB picture of ``path`` (raises ``OSError`` when Pillow cannot read it)."""
    global _registered
    from PIL import Image, ImageOps

    if not _registered:
        try:
            import pillow_heif

            pillow_heif.register_heif_opener()
        except ImportError:  # without the plugin Pillow still reads its own formats
            pass
        _registered = True
    with Image.open(path) as image:
        if image.format not in WHOLE_PICTURE_FORMATS:
            raise ValueError(f"Pillow reads a {image.format} file only partly (a preview, not the picture)")
        image.load()
        upright = ImageOps.exif_transpose(image)
    return upright.convert("RGB")


def read_still(path: str | Path, *, max_side: int) -> Frames:
    """The still as one frame at t=0, its longest side at most ``max_side`` (never enlarged).
    Raises ``OSError`` (or ``ValueError``) when Pillow cannot read it."""
    from PIL import Image

    picture = _open(path)
    scale = max_side / max(picture.size)
    if scale < 1:
        size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
        picture = picture.resize(size, Image.Resampling.LANCZOS)
    images = np.asarray(picture, dtype=np.uint8)[np.newaxis]
    return Frames(images=np.ascontiguousarray(images), timestamps_s=np.zeros(1), decoder="pillow")


def write_full_jpeg(path: str | Path, target: Path, *, quality: int = JPEG_QUALITY) -> None:
    """Write the still at full size to ``target`` as a JPEG, atomically (``save_image_atomic``)."""
    save_image_atomic(_open(path), target, prefix=".best_", format="JPEG", quality=quality)


__all__ = ["JPEG_QUALITY", "WHOLE_PICTURE_FORMATS", "read_still", "write_full_jpeg"]
