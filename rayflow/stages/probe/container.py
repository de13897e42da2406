"""Media kind, the primary picture stream and container-level facts."""

from __future__ import annotations

from typing import Any

from rayflow.media.ffprobe import FfprobeOutput
from rayflow.media.mediainfo import MediainfoOutput
from rayflow.media.parse import (
    disposition,
    integer,
    number,
    tag,
)
from rayflow.record import (
    ContainerInfo,
    MediaKind,
)

_IMAGE_FORMATS = frozenset({"image2", "gif", "apng", "webp", "jpegxl", "heif"})
_STILL_CODECS = frozenset({
    "mjpeg", "png", "bmp", "tiff", "webp", "gif", "jpeg2000", "jpegls", "jpegxl", "qoi",
    "pam", "ppm", "pgm", "pbm", "exr", "dpx", "sgi", "targa", "apng", "hdr", "phm",
})
# --------------------------------------------------------------------------- kind, container


def media_kind(ff: FfprobeOutput) -> tuple[MediaKind, dict[str, Any] | None]:
    """Media kind and the primary picture stream (cover art never counts as video)."""
    pictures = [
        s for s in ff.streams
        if s.get("codec_type") == "video"
        and not disposition(s, "attached_pic")
        and not disposition(s, "timed_thumbnails")
    ]
    audio = [s for s in ff.streams if s.get("codec_type") == "audio"]
    if pictures:
        first = pictures[0]
        if not audio and len(pictures) == 1 and _is_still(ff, first):
            return "image", first
        return "video", first
    if audio:
        return "audio", None
    return "unknown", None


def _is_still(ff: FfprobeOutput, stream: dict[str, Any]) -> bool:
    if disposition(stream, "still_image"):
        return True
    fmt = str(ff.format.get("format_name") or "")
    image_container = fmt in _IMAGE_FORMATS or fmt.endswith("_pipe")
    if not image_container or stream.get("codec_name") not in _STILL_CODECS:
        return False
    frames = sum(1 for p in ff.packets if p.get("stream_index") == stream.get("index"))
    nb = integer(stream.get("nb_frames"))
    return frames <= 1 and (nb is None or nb <= 1)


def container_info(ff: FfprobeOutput, mi: MediainfoOutput | None, is_image: bool) -> ContainerInfo:
    fmt = ff.format
    general = mi.general if mi else {}
    tags = {str(k): str(v) for k, v in (fmt.get("tags") or {}).items()}
    duration = number(fmt.get("duration")) or number(general.get("Duration"))
    bitrate = integer(fmt.get("bit_rate")) or integer(general.get("OverallBitRate"))
    return ContainerInfo(
        format=fmt.get("format_name"),
        format_long=fmt.get("format_long_name"),
        # image2 invents 25 fps, so a still's "duration" is 0.04 s; it has none.
        duration_s=None if is_image else duration,
        start_time_s=None if is_image else number(fmt.get("start_time")),
        bitrate_bps=None if is_image else bitrate,
        title=tag(tags, "title"),
        data_tracks=sum(
            1 for s in ff.streams if s.get("codec_type") not in ("video", "audio", "subtitle")
        ),
        tags=tags,
    )
def video_ordinal(ff: FfprobeOutput, stream: dict[str, Any]) -> int:
    """Position of ``stream`` among real video streams (mediainfo lists cover art elsewhere)."""
    real = [s for s in ff.streams if s.get("codec_type") == "video"
            and not disposition(s, "attached_pic")]
    return next((i for i, s in enumerate(real) if s is stream), 0)

