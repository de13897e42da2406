"""Sample stage: decode a file's frames once; thumbnails and exposure reuse them.

The frames are the large output (12 x 512x288x3 = 5 MB by default) and travel as a
Ray object ref; the small ``SampleInfo`` goes into the record.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from rayflow.config import SampleSettings
from rayflow.media.decode import Frames, decode_frames
from rayflow.media.tools import ToolError, ToolTimeout
from rayflow.record import SampleInfo, StageName
from rayflow.stages.base import FileItem, Resources, Stage

if TYPE_CHECKING:
    from rayflow.stages.probe import ProbeResult

log = logging.getLogger(__name__)


def sample_frames(
    path: str | Path,
    *,
    rotation: int,
    settings: SampleSettings,
    timeout_s: float,
    strip: bool = True,
    still: bool = False,
    duration_s: float | None = None,
    fps: float | None = None,
) -> tuple[Frames, SampleInfo]:
    """Decode ``settings.count`` evenly spaced exact frames (fewer for a file shorter than
    ``count`` x ``settings.min_interval_s``), longest side ``settings.max_side``.

    ``strip`` (default): the same pass also yields every frame at 48x27 (``Frames.strip``)
    for the shot detector, so shots need no second decode; pass False when shots are
    not wanted (sampling alone can then seek instead of decoding the whole stream).
    ``still``: the file is one picture (a photo): decode its first frame only, which needs
    no frame count or duration (a JPEG read by the ``jpeg_pipe`` demuxer has neither); no strip.
    A still ffmpeg cannot decode (HEIC/HEIF on ffmpeg < 7) is read with Pillow and pillow-heif
    (``rayflow.media.still_image``; ``Frames.decoder`` "pillow").

    ``duration_s`` and ``fps``: the probe stage's measures (``VideoInfo``), which place the
    frames of a file whose headers give no length (a browser's MediaRecorder WebM).

    ``rotation`` is ``VideoInfo.rotation`` (clockwise degrees), a cross-check only:
    both decoders apply the file's display matrix. Raises ``ToolError`` (record it)
    or ``ToolTimeout`` (retry) from ``decode_frames``.
    """
    try:
        frames = decode_frames(
            path,
            timestamps_s=[0.0] if still else None,
            count=settings.count,
            max_side=settings.max_side,
            rotation=rotation,
            timeout_s=timeout_s,
            strip=strip and not still,
            min_interval_s=settings.min_interval_s,
            duration_s=duration_s,
            fps=fps,
        )
    except ToolTimeout:
        raise  # transient: retried, not read another way
    except ToolError as failed:
        if not still:
            raise
        frames = _still_by_pillow(path, settings.max_side, failed)
    info = SampleInfo(
        decoder=frames.decoder,
        count=frames.count,
        timestamps_s=[round(float(t), 6) for t in frames.timestamps_s],
        width=frames.width,
        height=frames.height,
    )
    return frames, info


def _still_by_pillow(path: str | Path, max_side: int, failed: ToolError) -> Frames:
    """A still ffmpeg could not decode (HEIC/HEIF on ffmpeg < 7) read by Pillow with pillow-heif (an
    expected route, not an error: the record's ``sample.decoder`` says "pillow", and the probe has
    already warned that ffprobe could not open the file); both errors when Pillow fails too."""
    from rayflow.media.still_image import read_still

    try:
        frames = read_still(path, max_side=max_side)
    except (OSError, ValueError) as exc:
        raise ToolError("pillow", str(path), f"cannot read it ({exc}) after {failed}") from failed
    log.info("%s: ffmpeg could not decode this still (%s); read with Pillow", path, failed)
    return frames


class SampleStage(Stage[FileItem, SampleInfo]):
    """``sample_frames`` as a stage: reads ``item.probe``, writes ``item.frames`` and
    ``item.sample``. One CPU (decord or ffmpeg on the CPU; no NVDEC yet).

    ``strip``: also decode the 48x27 strip for the shot detector (only when shots will run)."""

    name: StageName = "sample"
    resources = Resources(cpus=1)

    def __init__(self, settings: SampleSettings, *, timeout_s: float, strip: bool = True) -> None:
        self.settings = settings
        self.timeout_s = timeout_s
        self.strip = strip

    @staticmethod
    def nothing_to_decode(probed: ProbeResult | None) -> str | None:
        """Why a file is skipped (not failed) here: its probe failed, or it has no picture."""
        if probed is None:
            return "probe failed"
        if probed.kind not in ("video", "image") or probed.video is None:
            return f"no picture to decode ({probed.kind})"
        return None

    def process(self, item: FileItem) -> SampleInfo:
        probed = item.probe
        reason = self.nothing_to_decode(probed)
        if reason is not None or probed is None or probed.video is None:
            raise ValueError(f"cannot sample {item.path}: {reason}")
        item.frames, item.sample = sample_frames(
            Path(item.path), rotation=probed.video.rotation, settings=self.settings, timeout_s=self.timeout_s,
            still=probed.kind == "image", strip=self.strip,
            duration_s=probed.video.duration_s or probed.container.duration_s, fps=probed.video.fps)
        return item.sample
