"""Sample stage: decode a file's frames once; thumbnails and exposure reuse them.

The frames are the large output (12 x 512x288x3 = 5 MB by default) and travel as a
Ray object ref; the small ``SampleInfo`` goes into the record.
"""

from __future__ import annotations

from pathlib import Path

from rayflow.config import SampleSettings
from rayflow.media.decode import Frames, decode_frames
from rayflow.record import SampleInfo


def sample_frames(
    path: str | Path,
    *,
    rotation: int,
    settings: SampleSettings,
    timeout_s: float,
    strip: bool = True,
    still: bool = False,
) -> tuple[Frames, SampleInfo]:
    """Decode ``settings.count`` evenly spaced exact frames, longest side ``settings.max_side``.

    ``strip`` (default): the same pass also yields every frame at 48x27 (``Frames.strip``)
    for the shot detector, so shots need no second decode; pass False when shots are
    not wanted (sampling alone can then seek instead of decoding the whole stream).
    ``still``: the file is one picture (a photo): decode its first frame only, which needs
    no frame count or duration (a JPEG read by the ``jpeg_pipe`` demuxer has neither); no strip.

    ``rotation`` is ``VideoInfo.rotation`` (clockwise degrees), a cross-check only:
    both decoders apply the file's display matrix. Raises ``ToolError`` (record it)
    or ``ToolTimeout`` (retry) from ``decode_frames``.
    """
    frames = decode_frames(
        path,
        timestamps_s=[0.0] if still else None,
        count=settings.count,
        max_side=settings.max_side,
        rotation=rotation,
        timeout_s=timeout_s,
        strip=strip and not still,
    )
    info = SampleInfo(
        decoder=frames.decoder,
        count=frames.count,
        timestamps_s=[round(float(t), 6) for t in frames.timestamps_s],
        width=frames.width,
        height=frames.height,
    )
    return frames, info
