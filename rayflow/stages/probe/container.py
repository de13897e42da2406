"""Media kind, the primary picture stream and container-level facts."""

from __future__ import annotations

from typing import Any

from rayflow.media.ffprobe import FfprobeOutput
from rayflow.media.mediainfo import MediainfoOutput
from rayflow.media.parse import (
    disposition,
    fraction,
    integer,
    number,
    tag,
)
from rayflow.record import (
    ContainerInfo,
    MediaKind,
    VideoStreamRef,
)

_IMAGE_FORMATS = frozenset({"image2", "gif", "apng", "webp", "jpegxl", "heif"})
_STILL_CODECS = frozenset({
    "mjpeg", "png", "bmp", "tiff", "webp", "gif", "jpeg2000", "jpegls", "jpegxl", "qoi",
    "pam", "ppm", "pgm", "pbm", "exr", "dpx", "sgi", "targa", "apng", "hdr", "phm",
})
DEFAULT_DISPOSITION_BONUS = 5_000_000
"""Pixels a stream's default disposition is worth when picking the primary video stream:
ffmpeg's own automatic stream selection scores width x height + 5,000,000 for default."""


def media_kind(ff: FfprobeOutput) -> tuple[MediaKind, dict[str, Any] | None]:
    """Media kind and the primary picture stream (cover art never counts as video)."""
    pictures = _pictures(ff)
    audio = [s for s in ff.streams if s.get("codec_type") == "audio"]
    if pictures:
        primary = primary_video(ff)
        assert primary is not None
        if not audio and len(pictures) == 1 and _is_still(ff, primary):
            return "image", primary
        return "video", primary
    if audio:
        return "audio", None
    return "unknown", None


def _pictures(ff: FfprobeOutput) -> list[dict[str, Any]]:
    """Video streams that are pictures of the programme (not cover art, not thumbnails)."""
    return [
        s for s in ff.streams
        if s.get("codec_type") == "video"
        and not disposition(s, "attached_pic")
        and not disposition(s, "timed_thumbnails")
    ]


def primary_video(ff: FfprobeOutput) -> dict[str, Any] | None:
    """The video stream ffmpeg selects by default: the highest width x height, the default
    disposition worth ``DEFAULT_DISPOSITION_BONUS`` pixels, the first on a tie; never cover art."""
    pictures = _pictures(ff)
    if not pictures:
        return None

    def score(stream: dict[str, Any]) -> int:
        area = (integer(stream.get("width")) or 0) * (integer(stream.get("height")) or 0)
        return area + DEFAULT_DISPOSITION_BONUS * disposition(stream, "default")

    best = max(score(s) for s in pictures)
    return next(s for s in pictures if score(s) == best)


def other_video_streams(ff: FfprobeOutput, primary: dict[str, Any]) -> list[VideoStreamRef]:
    """Every picture stream besides ``primary`` (preview tracks, other angles), in file order."""
    return [
        VideoStreamRef(index=int(s["index"]), codec=s.get("codec_name"), width=integer(s.get("width")),
                       height=integer(s.get("height")), default=disposition(s, "default"))
        for s in _pictures(ff) if s is not primary
    ]


def packet_duration(ff: FfprobeOutput) -> float | None:
    """Duration from packet timestamps (last pts + duration - first pts, over all streams), when
    the packet window holds the whole file; else ``ff.scanned_duration_s`` (a full demux)."""
    if not ff.window_is_whole_file:
        return ff.scanned_duration_s
    bases = {s.get("index"): fraction(s.get("time_base")) for s in ff.streams}
    first: float | None = None
    end: float | None = None
    for packet in ff.packets:
        base, pts = bases.get(packet.get("stream_index")), packet.get("pts")
        if base is None or not isinstance(pts, int):
            continue
        start = float(pts * base)
        dur = packet.get("duration")
        stop = start + (float(dur * base) if isinstance(dur, int) else 0.0)
        first = start if first is None else min(first, start)
        end = stop if end is None else max(end, stop)
    if first is None or end is None or end <= first:
        return None
    return round(end - first, 6)


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
    duration = number(fmt.get("duration")) or number(general.get("Duration")) or packet_duration(ff)
    if ff.duration_is_estimate:  # packet timestamps, then mediainfo (frame count / Xing), then the guess
        duration = packet_duration(ff) or number(general.get("Duration")) or duration
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

