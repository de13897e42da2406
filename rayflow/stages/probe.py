"""Probe stage: every technical fact of one media file, from ffprobe, mediainfo and exiftool.

Each tool runs exactly once per file. ffprobe and mediainfo start together;
exiftool starts as soon as ffprobe has answered, because whether it reads
embedded telemetry (``-ee``, whose cost grows with duration) depends on the
clip's duration and tracks. On this project's 2-core box a whole probe takes
0.15-0.4 s per file (0.36 s for 10 s of GoPro footage with telemetry).

Precedence (first source that knows wins; unknown stays ``None``):

- **Structure** (streams, codecs, profile, pix_fmt, sizes, SAR/DAR, frame
  rates, durations, bitrates, colour tags, dispositions, languages, titles,
  container tags): ffprobe. mediainfo fills what ffprobe leaves empty
  (Matroska stream durations, frame counts and bitrates, level names for
  codecs without a numeric table, chroma/bit depth when the pixel format does
  not say).
- **Bit depth / chroma**: ffprobe's bits_per_raw_sample, then the pixel
  format, then mediainfo.
- **Scan type / field order**: ffprobe field_order, then mediainfo
  ScanType/ScanOrder (MBAFF and PAFF count as interlaced).
- **Rotation**: ffprobe display matrix (its sign is counter-clockwise; the
  record stores clockwise), then mediainfo Rotation, then exiftool
  Composite:Rotation (both clockwise), then EXIF Orientation (photos).
- **GOP**: the first ``PACKET_WINDOW`` demuxed packets (median spacing of
  keyframe flags), then mediainfo Format_Settings_GOP ``N=``.
- **CFR/VFR**: packet timing in the same window (VFR when more than 2 % of frame
  intervals differ from the median by more than one tick), then mediainfo
  FrameRate_Mode, then r_frame_rate vs avg_frame_rate. A single odd frame (an
  iPhone's last frame) does not make a clip VFR.
- **HDR**: Dolby Vision (DOVI side data, dvh1/dav1 tags, or mediainfo) >
  HDR10+ (mediainfo SMPTE ST 2094 App 4) > HDR10 (PQ transfer) > HLG
  (arib-std-b67). Mastering display and MaxCLL/MaxFALL from container side
  data, then mediainfo (which reads the SEI without decoding).
- **Camera, exposure, GPS, capture time**: exiftool (EXIF > XMP > QuickTime
  Keys > UserData/ItemList > maker groups such as GoPro), then ffprobe's
  container tags (``com.apple.quicktime.*``, ISO 6709 ``location``), then
  exiftool's first embedded telemetry sample (GoPro GPMF).
- **Capture time**: Apple creationdate (has an offset) > EXIF DateTimeOriginal
  (+ OffsetTimeOriginal) > XMP dates > EXIF CreateDate > QuickTime/Matroska
  creation time (UTC by spec; GoPro writes local time there) > mediainfo dates.
  A local time without offset becomes timezone-aware only when a GPS UTC time in
  the same file fixes the offset (within 2 minutes of a 15-minute step).
  1904/1970 zero dates are placeholders and give ``None``.
"""

from __future__ import annotations

import logging
import math
import re
import statistics
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any

from rayflow.config import Timeouts
from rayflow.media.exiftool import ExiftoolOutput, run_exiftool
from rayflow.media.ffprobe import FfprobeOutput, run_ffprobe
from rayflow.media.mediainfo import MediainfoOutput, run_mediainfo
from rayflow.media.tools import ToolError, ToolTimeout
from rayflow.record import (
    AudioTrack,
    CameraInfo,
    CaptureInfo,
    ColorInfo,
    ContainerInfo,
    FocalCategory,
    GpsInfo,
    HdrFormat,
    HdrInfo,
    MasteringDisplay,
    MediaKind,
    SubtitleTrack,
    VideoInfo,
)

log = logging.getLogger(__name__)

EMBEDDED_MAX_DURATION_S = 300.0
"""exiftool reads embedded telemetry (-ee) only for clips up to this long: ~2.7 s of
exiftool time for 5 min of GoPro GPMF, growing linearly beyond."""

VFR_OUTLIER_SHARE = 0.02
"""Share of frame intervals off the median (by more than one tick) that makes a clip VFR."""

# Container formats whose single picture is a still image, not a video.
_IMAGE_FORMATS = frozenset({"image2", "gif", "apng", "webp", "jpegxl", "heif"})
_STILL_CODECS = frozenset({
    "mjpeg", "png", "bmp", "tiff", "webp", "gif", "jpeg2000", "jpegls", "jpegxl", "qoi",
    "pam", "ppm", "pgm", "pbm", "exr", "dpx", "sgi", "targa", "apng", "hdr", "phm",
})
_DOVI_TAGS = frozenset({"dvh1", "dvhe", "dav1", "dva1", "dvav"})
_EXIF_ORIENTATION_CW = {1: 0.0, 3: 180.0, 6: 90.0, 8: 270.0}
_PLACEHOLDER_DATES = (datetime(1904, 1, 1).date(), datetime(1970, 1, 1).date())


@dataclass(frozen=True)
class ProbeResult:
    """What the probe stage knows about one file; the parts map 1:1 onto ClipRecord fields."""

    kind: MediaKind
    container: ContainerInfo
    video: VideoInfo | None
    audio_tracks: list[AudioTrack] = field(default_factory=list)
    subtitle_tracks: list[SubtitleTrack] = field(default_factory=list)
    camera: CameraInfo = field(default_factory=CameraInfo)
    capture: CaptureInfo = field(default_factory=CaptureInfo)
    tools: dict[str, str] = field(default_factory=dict)
    """Tool -> version that produced these facts."""
    warnings: list[str] = field(default_factory=list)
    """Facts that could not be read (a tool failed, telemetry skipped, odd rotation)."""

    def record_fields(self) -> dict[str, Any]:
        """Keyword arguments for ``ClipRecord(...)`` (everything but warnings)."""
        return {
            "kind": self.kind,
            "container": self.container,
            "video": self.video,
            "audio_tracks": list(self.audio_tracks),
            "subtitle_tracks": list(self.subtitle_tracks),
            "camera": self.camera,
            "capture": self.capture,
            "tools": dict(self.tools),
        }


def probe(path: Path, *, timeouts: Timeouts = Timeouts()) -> ProbeResult:
    """Probe ``path`` with ffprobe, mediainfo and exiftool (each once) and consolidate.

    Raises ``ToolError`` when the file is not usable media (missing, a directory,
    empty, text, truncated, no streams) — deterministic, so record it and move on —
    and ``ToolTimeout`` when any tool runs past ``timeouts.probe_s`` (transient).
    A mediainfo or exiftool failure that is not a timeout only costs their facts
    and adds a warning.
    """
    path = Path(path)
    _check_regular_file(path)
    timeout_s = timeouts.probe_s
    warnings: list[str] = []
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="probe") as pool:
        mi_future = pool.submit(run_mediainfo, path, timeout_s=timeout_s)
        try:
            ff = run_ffprobe(path, timeout_s=timeout_s)
        except BaseException:
            mi_future.cancel()
            raise
        embedded = _wants_embedded(ff, warnings)
        ex_future = pool.submit(run_exiftool, path, timeout_s=timeout_s, embedded=embedded)
        mi = _optional(mi_future, warnings)
        ex = _optional(ex_future, warnings)
    return consolidate(path, ff, mi, ex, warnings=warnings)


def consolidate(
    path: Path,
    ff: FfprobeOutput,
    mi: MediainfoOutput | None,
    ex: ExiftoolOutput | None,
    *,
    warnings: list[str] | None = None,
) -> ProbeResult:
    """Merge the three tools' outputs into a ``ProbeResult`` (pure; no tools run).

    Raises ``ToolError`` for a file with no streams or with evidence of truncation.
    """
    warnings = list(warnings or [])
    _raise_if_truncated(path, ff, mi, ex)
    if not ff.streams:
        raise ToolError("ffprobe", path, "no streams at all (format "
                        f"{ff.format.get('format_name')!r}): nothing to catalogue")
    kind, video_stream = _kind(ff)
    is_image = kind == "image"

    container = _container(ff, mi, is_image)
    video = None
    if video_stream is not None:
        mi_video = _nth(mi.video if mi else [], _video_ordinal(ff, video_stream))
        if mi_video is None and mi and is_image:
            mi_video = _nth(mi.image, 0)
        video = _video(ff, video_stream, mi_video, ex, is_image, warnings)
    audio = _audio_tracks(ff, mi)
    subtitles = _subtitle_tracks(ff, mi)
    tags = _Tags(ex, ff)
    camera = _camera(tags)
    capture = _capture(tags, mi, warnings)

    tools = {}
    if ff.version:
        tools["ffprobe"] = ff.version
    if mi and mi.version:
        tools["mediainfo"] = mi.version
    if ex and ex.version:
        tools["exiftool"] = ex.version
    for message in warnings:
        log.info("probe %s: %s", path, message)
    return ProbeResult(kind, container, video, audio, subtitles, camera, capture, tools, warnings)


# --------------------------------------------------------------------------- running


def _check_regular_file(path: Path) -> None:
    """Refuse what no tool should be pointed at (mediainfo would recurse into a directory)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ToolError("probe", path, "file not found (vanished since it was listed?)") from None
    except OSError as exc:
        raise ToolError("probe", path, f"cannot stat ({exc.strerror})") from exc
    if path.is_dir():
        raise ToolError("probe", path, "is a directory, not a media file")
    if not path.is_file():
        raise ToolError("probe", path, "not a regular file")
    if st.st_size == 0:
        raise ToolError("probe", path, "empty file (0 bytes)")


def _wants_embedded(ff: FfprobeOutput, warnings: list[str]) -> bool:
    """Read embedded telemetry only when there is a track that may hold it and it is cheap."""
    has_timed = any(s.get("codec_type") in ("data", "subtitle") for s in ff.streams)
    if not has_timed:
        return False
    duration = _float(ff.format.get("duration"))
    if duration is None or duration > EMBEDDED_MAX_DURATION_S:
        warnings.append(
            f"embedded telemetry not read: duration {duration} s exceeds "
            f"{EMBEDDED_MAX_DURATION_S:g} s (exiftool -ee cost grows with duration)"
        )
        return False
    return True


def _optional(future: Future[Any], warnings: list[str]) -> Any:
    """A secondary tool's result; its deterministic failure becomes a warning, a timeout is raised."""
    try:
        return future.result()
    except ToolTimeout:
        raise
    except ToolError as exc:
        warnings.append(str(exc))
        return None


def _raise_if_truncated(
    path: Path, ff: FfprobeOutput, mi: MediainfoOutput | None, ex: ExiftoolOutput | None
) -> None:
    evidence: list[tuple[str, str]] = []
    for line in ff.stderr.splitlines():
        if "partial file" in line:
            evidence.append(("ffprobe", line.split("] ", 1)[-1].strip()))
            break
    if mi is not None and mi.is_truncated:
        evidence.append(("mediainfo", "IsTruncated"))
    if ex is not None:
        # "[minor]" warnings (e.g. a cut maker-note preview) do not mean the media is cut.
        evidence.extend(("exiftool", w) for w in ex.warnings
                        if "truncated" in w.lower() and not w.startswith("[minor]"))
    if evidence:
        detail = "; ".join(f"{tool}: {what}" for tool, what in evidence)
        raise ToolError(evidence[0][0], path, f"truncated or corrupt file ({detail})")


# --------------------------------------------------------------------------- kind, container


def _kind(ff: FfprobeOutput) -> tuple[MediaKind, dict[str, Any] | None]:
    """Media kind and the primary picture stream (cover art never counts as video)."""
    pictures = [
        s for s in ff.streams
        if s.get("codec_type") == "video"
        and not _disposition(s, "attached_pic")
        and not _disposition(s, "timed_thumbnails")
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
    if _disposition(stream, "still_image"):
        return True
    fmt = str(ff.format.get("format_name") or "")
    image_container = fmt in _IMAGE_FORMATS or fmt.endswith("_pipe")
    if not image_container or stream.get("codec_name") not in _STILL_CODECS:
        return False
    frames = sum(1 for p in ff.packets if p.get("stream_index") == stream.get("index"))
    nb = _int(stream.get("nb_frames"))
    return frames <= 1 and (nb is None or nb <= 1)


def _container(ff: FfprobeOutput, mi: MediainfoOutput | None, is_image: bool) -> ContainerInfo:
    fmt = ff.format
    general = mi.general if mi else {}
    tags = {str(k): str(v) for k, v in (fmt.get("tags") or {}).items()}
    duration = _float(fmt.get("duration")) or _float(general.get("Duration"))
    bitrate = _int(fmt.get("bit_rate")) or _int(general.get("OverallBitRate"))
    return ContainerInfo(
        format=fmt.get("format_name"),
        format_long=fmt.get("format_long_name"),
        # image2 invents 25 fps, so a still's "duration" is 0.04 s; it has none.
        duration_s=None if is_image else duration,
        start_time_s=None if is_image else _float(fmt.get("start_time")),
        bitrate_bps=None if is_image else bitrate,
        title=_tag(tags, "title"),
        data_tracks=sum(
            1 for s in ff.streams if s.get("codec_type") not in ("video", "audio", "subtitle")
        ),
        tags=tags,
    )


# --------------------------------------------------------------------------- video


def _video(
    ff: FfprobeOutput,
    st: dict[str, Any],
    mi: dict[str, Any] | None,
    ex: ExiftoolOutput | None,
    is_image: bool,
    warnings: list[str],
) -> VideoInfo:
    mi = mi or {}
    codec = st.get("codec_name")
    pix_fmt = st.get("pix_fmt")
    width, height = _int(st.get("width")), _int(st.get("height"))
    sar = _aspect(st.get("sample_aspect_ratio"))
    rotation = _rotation(st, mi, ex, warnings)
    display_w, display_h = width, height
    if width and height and sar and sar != 1:
        display_w = round(width * sar)
    if rotation in (90, 270):
        display_w, display_h = display_h, display_w
    dar = st.get("display_aspect_ratio")
    if not dar or dar in ("0:1", "N/A"):
        dar = _ratio_text(Fraction(width * (sar or 1)) / height) if width and height else None

    tags = st.get("tags") or {}
    packets = [p for p in ff.packets if p.get("stream_index") == st.get("index")]
    time_base = _fraction(st.get("time_base"))
    avg = _fraction(st.get("avg_frame_rate"))
    base = _fraction(st.get("r_frame_rate"))
    fps = float(avg) if avg else (float(base) if base else None)
    gop, key_s = _gop(packets, time_base)
    if gop is None:
        gop = _mi_gop(mi.get("Format_Settings_GOP"))
    scan_type, field_order = _scan(st.get("field_order"), mi)
    color = _color(st, mi)
    return VideoInfo(
        index=_int(st.get("index")),
        codec=codec,
        codec_long=st.get("codec_long_name"),
        profile=_clean(st.get("profile")),
        level=_level(codec, _int(st.get("level"))) or _clean(mi.get("Format_Level")),
        pix_fmt=pix_fmt,
        bit_depth=(_int(st.get("bits_per_raw_sample")) or _pix_fmt_depth(pix_fmt)
                   or _int(mi.get("BitDepth"))),
        chroma_subsampling=_pix_fmt_chroma(pix_fmt) or _mi_chroma(mi.get("ChromaSubsampling")),
        scan_type=scan_type,
        field_order=field_order,
        width=width,
        height=height,
        display_width=display_w,
        display_height=display_h,
        display_aspect_ratio=dar,
        sample_aspect_ratio=st.get("sample_aspect_ratio") if sar else None,
        rotation=rotation,
        fps=None if is_image else fps,
        r_frame_rate=None if is_image or not base else st.get("r_frame_rate"),
        is_vfr=None if is_image else _is_vfr(packets, time_base, mi, avg, base),
        frame_count=1 if is_image else (_int(st.get("nb_frames")) or _int(mi.get("FrameCount"))),
        duration_s=None if is_image else _stream_duration(st, tags, mi),
        bitrate_bps=None if is_image else (
            _int(st.get("bit_rate")) or _int(_tag(tags, "BPS")) or _int(mi.get("BitRate"))
        ),
        gop_size=None if is_image else gop,
        keyframe_interval_s=None if is_image else key_s,
        color=color,
        hdr=_hdr(st, mi, color),
    )


def _rotation(
    st: dict[str, Any], mi: dict[str, Any], ex: ExiftoolOutput | None, warnings: list[str]
) -> int:
    """Clockwise display rotation, one of 0/90/180/270."""
    cw: float | None = None
    for sd in st.get("side_data_list") or []:
        if sd.get("side_data_type") == "Display Matrix" and sd.get("rotation") is not None:
            cw = -float(sd["rotation"])  # ffprobe reports counter-clockwise degrees
            break
    if cw is None:
        legacy = (st.get("tags") or {}).get("rotate")  # pre-5.0 ffprobe: clockwise
        cw = _float(legacy)
    if cw is None:
        cw = _float(mi.get("Rotation"))
    if cw is None and ex is not None:
        cw = _float(ex.main.get("Composite:Rotation"))
        orientation = _int(ex.main.get("IFD0:Orientation"))  # still photos
        if cw is None and orientation in _EXIF_ORIENTATION_CW:
            cw = _EXIF_ORIENTATION_CW[orientation]
        elif cw is None and orientation in (2, 4, 5, 7):
            warnings.append(f"EXIF orientation {orientation} is mirrored; mirroring not recorded")
            cw = {2: 0.0, 4: 180.0, 5: 90.0, 7: 270.0}[orientation]
    if cw is None:
        return 0
    cw %= 360.0
    snapped = int(round(cw / 90.0)) * 90 % 360
    if abs((cw - snapped + 180) % 360 - 180) > 1.0:
        warnings.append(f"rotation {cw:g} degrees is not a multiple of 90; recorded as {snapped}")
    return snapped


def _gop(packets: list[dict[str, Any]], time_base: Fraction | None) -> tuple[int | None, float | None]:
    """Frames between keyframes and seconds between them (median over the packet window)."""
    keys = [(i, p.get("pts")) for i, p in enumerate(packets) if "K" in str(p.get("flags", ""))]
    if len(keys) < 2:
        return None, None
    gaps = [b[0] - a[0] for a, b in zip(keys, keys[1:], strict=False)]
    gop = int(statistics.median_low(gaps))
    seconds = None
    pts_gaps = [b[1] - a[1] for a, b in zip(keys, keys[1:], strict=False)
                if isinstance(a[1], int) and isinstance(b[1], int) and b[1] > a[1]]
    if pts_gaps and time_base:
        seconds = round(float(statistics.median(pts_gaps) * time_base), 6)
    return gop, seconds


def _is_vfr(
    packets: list[dict[str, Any]],
    time_base: Fraction | None,
    mi: dict[str, Any],
    avg: Fraction | None,
    base: Fraction | None,
) -> bool | None:
    pts = sorted(p["pts"] for p in packets if isinstance(p.get("pts"), int))
    deltas = [b - a for a, b in zip(pts, pts[1:], strict=False) if b > a]
    if len(deltas) >= 8 and time_base:
        median = statistics.median(deltas)
        tolerance = 1 + 0.005 * median  # one tick of rounding, plus 0.5 %
        outliers = sum(1 for d in deltas if abs(d - median) > tolerance)
        return outliers > VFR_OUTLIER_SHARE * len(deltas)
    mode = str(mi.get("FrameRate_Mode") or "").upper()
    if mode in ("VFR", "CFR"):
        return mode == "VFR"
    if avg and base:
        return abs(float(avg) - float(base)) > 0.01 * float(base)
    return None


def _scan(field_order: str | None, mi: dict[str, Any]) -> tuple[Any, str | None]:
    order = {"progressive": None, "tt": "tff", "bt": "tff", "bb": "bff", "tb": "bff"}
    if field_order in order:
        fo = order[field_order]
        return ("progressive", None) if fo is None else ("interlaced", fo)
    scan = str(mi.get("ScanType") or "").lower()
    if scan == "progressive":
        return "progressive", None
    if scan in ("interlaced", "mbaff", "paff"):
        mi_order = str(mi.get("ScanOrder") or "").upper()
        return "interlaced", {"TFF": "tff", "BFF": "bff"}.get(mi_order)
    return None, None


def _stream_duration(st: dict[str, Any], tags: dict[str, Any], mi: dict[str, Any]) -> float | None:
    duration = _float(st.get("duration"))
    if duration is None:
        duration = _hms(_tag(tags, "DURATION"))  # Matroska statistics tag
    if duration is None:
        duration = _float(mi.get("Duration"))
    return duration


# --------------------------------------------------------------------------- colour, HDR

_MI_PRIMARIES = {
    "BT.709": "bt709", "BT.2020": "bt2020", "BT.601 NTSC": "smpte170m", "BT.601 PAL": "bt470bg",
    "BT.470 System M": "bt470m", "SMPTE 240M": "smpte240m", "Generic film": "film",
    "DCI P3": "smpte431", "Display P3": "smpte432", "XYZ": "smpte428", "EBU Tech 3213": "jedec-p22",
}
_MI_TRANSFER = {
    "BT.709": "bt709", "PQ": "smpte2084", "HLG": "arib-std-b67", "BT.601": "smpte170m",
    "BT.2020 (10-bit)": "bt2020-10", "BT.2020 (12-bit)": "bt2020-12", "sRGB/sYCC": "iec61966-2-1",
    "Linear": "linear", "SMPTE 240M": "smpte240m", "BT.470 System M": "gamma22",
    "BT.470 System B/G": "gamma28", "xvYCC": "iec61966-2-4", "SMPTE 428M": "smpte428",
}
_MI_MATRIX = {
    "BT.709": "bt709", "BT.2020 non-constant": "bt2020nc", "BT.2020 constant": "bt2020c",
    "BT.601": "smpte170m", "BT.470 System B/G": "bt470bg", "SMPTE 240M": "smpte240m",
    "YCgCo": "ycgco", "Identity": "gbr", "FCC 73.682": "fcc", "ICtCp": "ictcp",
}
# Mastering primaries mediainfo prints by name (exact ST 2086 values for those names).
_NAMED_PRIMARIES: dict[str, tuple[tuple[float, float], ...]] = {
    "Display P3": ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060), (0.3127, 0.3290)),
    "DCI P3": ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060), (0.314, 0.351)),
    "BT.2020": ((0.708, 0.292), (0.170, 0.797), (0.131, 0.046), (0.3127, 0.3290)),
    "BT.709": ((0.640, 0.330), (0.300, 0.600), (0.150, 0.060), (0.3127, 0.3290)),
}


def _color(st: dict[str, Any], mi: dict[str, Any]) -> ColorInfo:
    def known(value: Any) -> str | None:
        text = _clean(value)
        return None if text in ("unknown", "reserved", "unspecified") else text

    space = known(st.get("color_space")) or _MI_MATRIX.get(str(mi.get("matrix_coefficients")))
    primaries = known(st.get("color_primaries")) or _MI_PRIMARIES.get(str(mi.get("colour_primaries")))
    transfer = (known(st.get("color_transfer"))
                or _MI_TRANSFER.get(str(mi.get("transfer_characteristics"))))
    range_: Any = {"tv": "limited", "pc": "full"}.get(str(st.get("color_range")))
    if range_ is None and str(st.get("pix_fmt") or "").startswith("yuvj"):
        range_ = "full"
    if range_ is None:
        range_ = {"Limited": "limited", "Full": "full"}.get(str(mi.get("colour_range")))
    return ColorInfo(space=space, primaries=primaries, transfer=transfer, matrix=space, range=range_)


def _hdr(st: dict[str, Any], mi: dict[str, Any], color: ColorInfo) -> HdrInfo:
    side = st.get("side_data_list") or []
    mi_format = str(mi.get("HDR_Format") or "")
    mi_compat = str(mi.get("HDR_Format_Compatibility") or "")
    dovi = (
        any(str(sd.get("side_data_type", "")).startswith("DOVI configuration") for sd in side)
        or st.get("codec_tag_string") in _DOVI_TAGS
        or "Dolby Vision" in mi_format
    )
    hdr10plus = "SMPTE ST 2094 App 4" in mi_format or "HDR10+" in mi_compat
    fmt: HdrFormat | None = None
    if dovi:
        fmt = "Dolby Vision"
    elif hdr10plus:
        fmt = "HDR10+"
    elif color.transfer == "smpte2084":
        fmt = "HDR10"
    elif color.transfer == "arib-std-b67":
        fmt = "HLG"

    mastering = None
    max_cll = max_fall = None
    for sd in side:
        kind = sd.get("side_data_type")
        if kind == "Mastering display metadata":
            mastering = _side_mastering(sd)
        elif kind == "Content light level metadata":
            max_cll, max_fall = _int(sd.get("max_content")), _int(sd.get("max_average"))
    if mastering is None:
        mastering = _mi_mastering(mi)
    if max_cll is None:
        max_cll = _int(_first_number(mi.get("MaxCLL")))
    if max_fall is None:
        max_fall = _int(_first_number(mi.get("MaxFALL")))
    return HdrInfo(
        is_hdr=fmt is not None, format=fmt, mastering_display=mastering,
        max_cll_nits=max_cll, max_fall_nits=max_fall,
    )


def _side_mastering(sd: dict[str, Any]) -> MasteringDisplay | None:
    def xy(name: str) -> tuple[float, float] | None:
        x, y = _fraction(sd.get(f"{name}_x")), _fraction(sd.get(f"{name}_y"))
        return (round(float(x), 5), round(float(y), 5)) if x is not None and y is not None else None

    lo, hi = _fraction(sd.get("min_luminance")), _fraction(sd.get("max_luminance"))
    md = MasteringDisplay(
        red_xy=xy("red"), green_xy=xy("green"), blue_xy=xy("blue"), white_point_xy=xy("white_point"),
        min_luminance_nits=float(lo) if lo is not None else None,
        max_luminance_nits=float(hi) if hi is not None else None,
    )
    return md if any(v is not None for v in md.model_dump().values()) else None


def _mi_mastering(mi: dict[str, Any]) -> MasteringDisplay | None:
    prim_text = str(mi.get("MasteringDisplay_ColorPrimaries") or "").split(" / ")[0].strip()
    lum_text = str(mi.get("MasteringDisplay_Luminance") or "").split(" / ")[0]
    primaries: tuple[tuple[float, float], ...] | None = _NAMED_PRIMARIES.get(prim_text)
    if primaries is None and prim_text:
        pairs = re.findall(r"x=([\d.]+)\s+y=([\d.]+)", prim_text)
        if len(pairs) == 4:
            primaries = tuple((float(x), float(y)) for x, y in pairs)
    lo = re.search(r"min:\s*([\d.]+)", lum_text)
    hi = re.search(r"max:\s*([\d.]+)", lum_text)
    if primaries is None and lo is None and hi is None:
        return None
    r, g, b, w = primaries if primaries else (None, None, None, None)
    return MasteringDisplay(
        red_xy=r, green_xy=g, blue_xy=b, white_point_xy=w,
        min_luminance_nits=float(lo.group(1)) if lo else None,
        max_luminance_nits=float(hi.group(1)) if hi else None,
    )


# --------------------------------------------------------------------------- audio, subtitles


def _audio_tracks(ff: FfprobeOutput, mi: MediainfoOutput | None) -> list[AudioTrack]:
    tracks = []
    streams = [s for s in ff.streams if s.get("codec_type") == "audio"]
    for ordinal, st in enumerate(streams):
        info = _nth(mi.audio if mi else [], ordinal) or {}
        tags = st.get("tags") or {}
        bits = _int(st.get("bits_per_raw_sample")) or _int(st.get("bits_per_sample"))
        tracks.append(AudioTrack(
            index=int(st["index"]),
            codec=st.get("codec_name"),
            profile=_clean(st.get("profile")),
            channels=_int(st.get("channels")) or _int(info.get("Channels")),
            channel_layout=_clean(st.get("channel_layout")),
            sample_rate=_int(st.get("sample_rate")) or _int(info.get("SamplingRate")),
            bit_depth=bits or _int(info.get("BitDepth")),
            bitrate_bps=_int(st.get("bit_rate")) or _int(_tag(tags, "BPS")) or _int(info.get("BitRate")),
            language=_language(tags, info),
            title=_tag(tags, "title"),
            default=_disposition(st, "default"),
            duration_s=_stream_duration(st, tags, info),
        ))
    return tracks


def _subtitle_tracks(ff: FfprobeOutput, mi: MediainfoOutput | None) -> list[SubtitleTrack]:
    tracks = []
    streams = [s for s in ff.streams if s.get("codec_type") == "subtitle"]
    for ordinal, st in enumerate(streams):
        info = _nth(mi.text if mi else [], ordinal) or {}
        tags = st.get("tags") or {}
        tracks.append(SubtitleTrack(
            index=int(st["index"]),
            codec=st.get("codec_name"),
            language=_language(tags, info),
            title=_tag(tags, "title"),
            forced=_disposition(st, "forced"),
            default=_disposition(st, "default"),
        ))
    return tracks


def _language(tags: dict[str, Any], mi: dict[str, Any]) -> str | None:
    """ISO 639 code as tagged; 'und' (undetermined) is None. mediainfo only when ffprobe has no tag."""
    lang = _tag(tags, "language")
    if lang is None:
        lang = _clean(mi.get("Language"))
    return None if lang is None or lang.lower() in ("und", "unknown", "zxx") else lang


# --------------------------------------------------------------------------- camera, capture


class _Tags:
    """Lookups over exiftool's main-document tags, ffprobe container tags and telemetry."""

    _SKIP_GROUPS = ("System", "File", "ExifTool", "Track")

    def __init__(self, ex: ExiftoolOutput | None, ff: FfprobeOutput) -> None:
        self.main = ex.main if ex else {}
        self.docs = ex.embedded if ex else {}
        self.ff = {str(k).lower(): v for k, v in (ff.format.get("tags") or {}).items()}
        self.groups = {k.split(":", 1)[0] for k in self.main if ":" in k}

    def ex(self, *keys: str) -> Any:
        """First present value for "Group:Tag" keys; "*:Tag" matches any camera-ish group."""
        for key in keys:
            group, _, name = key.partition(":")
            if group != "*":
                value = self.main.get(key)
                if _present(value):
                    return value
                continue
            for full, value in self.main.items():
                g, _, n = full.partition(":")
                if n == name and not g.startswith(self._SKIP_GROUPS) and _present(value):
                    return value
        return None

    def ffprobe(self, *names: str) -> str | None:
        for name in names:
            value = self.ff.get(name.lower())
            if _present(value):
                return str(value).strip()
        return None

    def telemetry(self, name: str) -> Any:
        """The first embedded sample's value of ``name`` (any group), e.g. GoPro GPMF."""
        for doc in self.docs.values():
            for full, value in doc.items():
                if full.partition(":")[2] == name and _present(value):
                    return value
        return None


def _camera(t: _Tags) -> CameraInfo:
    make = _text(t.ex("IFD0:Make", "XMP-tiff:Make", "Keys:Make", "UserData:Make", "*:Make")
                 or t.ffprobe("com.apple.quicktime.make", "make"))
    if make is None and "GoPro" in t.groups:
        make = "GoPro"  # GoPro's own metadata block (GPMF/udta) names only the model
    model = _text(t.ex("IFD0:Model", "XMP-tiff:Model", "Keys:Model", "UserData:Model",
                       "GoPro:Model", "*:Model")
                  or t.ffprobe("com.apple.quicktime.model", "model"))
    lens = _text(_str_only(t.ex("ExifIFD:LensModel", "XMP-exifEX:LensModel", "XMP-aux:Lens",
                                "Keys:LensModel", "Composite:LensID", "*:LensModel", "*:Lens"))
                 or t.ffprobe("com.apple.quicktime.camera.lens_model"))
    serial = _text(t.ex("ExifIFD:SerialNumber", "XMP-exifEX:BodySerialNumber", "XMP-aux:SerialNumber",
                        "GoPro:CameraSerialNumber", "*:SerialNumber", "*:CameraSerialNumber",
                        "*:InternalSerialNumber"))
    # Apple Keys software is "12.3": exiftool -n turns it into a number, ffprobe keeps the text.
    software = _text(t.ex("IFD0:Software", "XMP-tiff:Software")
                     or t.ffprobe("com.apple.quicktime.software")
                     or t.ex("Keys:Software", "GoPro:FirmwareVersion", "UserData:FirmwareVersion",
                             "*:FirmwareVersion", "*:Software"))
    focal = _positive(t.ex("ExifIFD:FocalLength", "XMP-exif:FocalLength", "*:FocalLength"))
    focal_35 = _positive(t.ex("ExifIFD:FocalLengthIn35mmFormat", "XMP-exif:FocalLengthIn35mmFormat",
                              "*:FocalLengthIn35mmFormat")
                         or t.ffprobe("com.apple.quicktime.camera.focal_length.35mm_equivalent"))
    scale = _positive(t.ex("Composite:ScaleFactor35efl"))
    if focal_35 is None and focal is not None and scale is not None:
        # Composite:FocalLength35efl alone is NOT used: without a known scale factor
        # exiftool assumes 1.0 and reports the real focal length (3.3 mm on a phone).
        focal_35 = round(focal * scale, 1)
    iso = _positive(t.ex("ExifIFD:ISO", "XMP-exif:ISOSpeedRatings", "XMP-exif:ISO", "*:ISO"))
    if iso is None:
        iso = _median(t.telemetry("ISOSpeeds"))
    shutter = _positive(t.ex("ExifIFD:ExposureTime", "XMP-exif:ExposureTime", "*:ExposureTime",
                             "Composite:ShutterSpeed"))
    if shutter is None:
        shutter = _median(t.telemetry("ExposureTimes"))
    aperture = _positive(t.ex("ExifIFD:FNumber", "XMP-exif:FNumber", "*:FNumber", "Composite:Aperture"))
    return CameraInfo(
        make=make, model=model, lens=lens, serial=serial, software=software,
        focal_length_mm=focal,
        focal_length_35mm=focal_35,
        focal_category=focal_category(focal_35),
        iso=int(round(iso)) if iso is not None else None,
        shutter_s=shutter,
        aperture_f=aperture,
        white_balance=_white_balance(t.ex("ExifIFD:WhiteBalance", "XMP-exif:WhiteBalance",
                                          "*:WhiteBalance")),
    )


def focal_category(focal_35mm: float | None) -> FocalCategory | None:
    """Lens class by 35 mm-equivalent focal length: <21 ultra-wide, <35 wide, <70 medium, <135 long."""
    if focal_35mm is None:
        return None
    if focal_35mm < 21:
        return "ultra-wide"
    if focal_35mm < 35:
        return "wide"
    if focal_35mm < 70:
        return "medium"
    if focal_35mm < 135:
        return "long"
    return "telephoto"


def _white_balance(value: Any) -> str | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {0: "Auto", 1: "Manual"}.get(int(value))  # EXIF/XMP WhiteBalance codes
    return _text(value)


def _capture(t: _Tags, mi: MediainfoOutput | None, warnings: list[str]) -> CaptureInfo:
    gopro = "GoPro" in t.groups
    general = mi.general if mi else {}
    # (source name, raw value, UTC when it carries no offset)
    candidates: list[tuple[str, Any, bool]] = [
        ("Keys:CreationDate", t.ex("Keys:CreationDate"), False),
        ("com.apple.quicktime.creationdate", t.ffprobe("com.apple.quicktime.creationdate"), False),
        ("ExifIFD:DateTimeOriginal",
         _with_offset(t.ex("ExifIFD:DateTimeOriginal"), t.ex("ExifIFD:OffsetTimeOriginal")), False),
        ("XMP-exif:DateTimeOriginal", t.ex("XMP-exif:DateTimeOriginal"), False),
        ("XMP-photoshop:DateCreated", t.ex("XMP-photoshop:DateCreated"), False),
        ("XMP-xmp:CreateDate", t.ex("XMP-xmp:CreateDate"), False),
        ("ExifIFD:CreateDate",
         _with_offset(t.ex("ExifIFD:CreateDate"), t.ex("ExifIFD:OffsetTimeDigitized")), False),
        ("UserData:DateTimeOriginal", t.ex("UserData:DateTimeOriginal"), False),
        ("RIFF:DateTimeOriginal", t.ex("RIFF:DateTimeOriginal"), False),
        ("Matroska:DateTimeOriginal", t.ex("Matroska:DateTimeOriginal"), True),
        # mvhd creation time: UTC by the QuickTime spec, but GoPro writes local time.
        ("QuickTime:CreateDate", t.ex("QuickTime:CreateDate"), not gopro),
        ("creation_time", t.ffprobe("creation_time"), not gopro),
        ("mediainfo:Recorded_Date", general.get("Recorded_Date"), False),
        ("RIFF:DateCreated", t.ex("RIFF:DateCreated"), False),
    ]
    created = source = None
    for name, raw, utc in candidates:
        if not _present(raw):
            continue
        value = _parse_datetime(raw)
        if value is None:
            if re.fullmatch(r"\d{4}[:-]\d\d[:-]\d\d", str(raw).strip()):
                warnings.append(f"capture date without a time ignored ({name}={raw})")
            continue
        if value.date() in _PLACEHOLDER_DATES or value.year < 1900:
            continue  # zero date (1904) or Unix epoch placeholder
        if value.tzinfo is None and utc:
            value = value.replace(tzinfo=UTC)
        created, source = value, name
        break
    if created is not None and created.tzinfo is None:
        created, source = _offset_from_gps(created, source, t)
    return CaptureInfo(created_at=created, created_at_source=source, gps=_gps(t))


def _offset_from_gps(local: datetime, source: str | None, t: _Tags) -> tuple[datetime, str | None]:
    """Attach the UTC offset implied by a GPS UTC time in the same file, when unambiguous."""
    gps_raw = t.ex("Composite:GPSDateTime") or t.telemetry("GPSDateTime")
    gps = _parse_datetime(gps_raw) if gps_raw else None
    if gps is None:
        return local, source
    gps = gps.replace(tzinfo=None) if gps.tzinfo is None else gps.astimezone(UTC).replace(tzinfo=None)
    delta = (local - gps).total_seconds()
    step = round(delta / 900.0) * 900  # offsets are whole quarter hours
    if abs(delta - step) > 120 or abs(step) > 14 * 3600:
        return local, source
    return local.replace(tzinfo=timezone(timedelta(seconds=step))), f"{source} (offset from GPS time)"


def _gps(t: _Tags) -> GpsInfo | None:
    candidates: list[tuple[float | None, float | None, float | None]] = [
        (_float(t.ex("Composite:GPSLatitude")), _float(t.ex("Composite:GPSLongitude")),
         _float(t.ex("Composite:GPSAltitude"))),
    ]
    coords = t.ex("Keys:GPSCoordinates", "UserData:GPSCoordinates", "ItemList:GPSCoordinates",
                  "*:GPSCoordinates")
    if coords is not None:
        parts = [_float(p) for p in str(coords).replace(",", " ").split()]
        if len(parts) >= 2:
            candidates.append((parts[0], parts[1], parts[2] if len(parts) > 2 else None))
    candidates.append((_float(t.ex("XMP-exif:GPSLatitude")), _float(t.ex("XMP-exif:GPSLongitude")),
                       _float(t.ex("XMP-exif:GPSAltitude"))))
    for tag in ("com.apple.quicktime.location.iso6709", "location", "location-eng"):
        parsed = parse_iso6709(t.ffprobe(tag) or "")
        if parsed:
            candidates.append(parsed)
    fix = (_float(t.telemetry("GPSLatitude")), _float(t.telemetry("GPSLongitude")),
           _float(t.telemetry("GPSAltitude")))
    candidates.append(fix)
    for lat, lon, alt in candidates:
        if lat is None or lon is None or not _valid_position(lat, lon):
            continue
        fix_lat, fix_lon, fix_alt = fix
        if (alt is None and fix_alt is not None and fix_lat is not None and fix_lon is not None
                and abs(fix_lat - lat) < 0.01 and abs(fix_lon - lon) < 0.01):
            alt = fix_alt  # e.g. GoPro: the udta location has no altitude, the first GPMF fix has
        return GpsInfo(lat=lat, lon=lon, alt=alt)
    return None


def _valid_position(lat: float, lon: float) -> bool:
    if lat == 0.0 and lon == 0.0:
        return False  # "no fix" placeholder
    return abs(lat) <= 90.0 and abs(lon) <= 180.0


_ISO6709 = re.compile(
    r"^\s*(?P<lat>[+-]\d+(?:\.\d*)?)(?P<lon>[+-]\d+(?:\.\d*)?)(?P<alt>[+-]\d+(?:\.\d*)?)?"
    r"(?:CRS[^/]*)?/?\s*$"
)


def parse_iso6709(text: str) -> tuple[float, float, float | None] | None:
    """Parse an ISO 6709 point such as '+33.1268-117.3273/' or '+32.0929+034.8620+028.516/'.

    Degrees may be written as ±DD.D, ±DDMM.M or ±DDMMSS.S (longitude one more digit).
    Returns (lat, lon, alt metres or None), or None when ``text`` is not such a point.
    """
    m = _ISO6709.match(text or "")
    if not m:
        return None
    lat = _iso6709_angle(m.group("lat"), 2)
    lon = _iso6709_angle(m.group("lon"), 3)
    if lat is None or lon is None:
        return None
    alt = float(m.group("alt")) if m.group("alt") else None
    return lat, lon, alt


def _iso6709_angle(text: str, degree_digits: int) -> float | None:
    sign = -1.0 if text[0] == "-" else 1.0
    body = text[1:]
    whole, _, frac = body.partition(".")
    frac_value = float("0." + frac) if frac else 0.0
    n = len(whole)
    if n == degree_digits:
        value = int(whole) + frac_value
    elif n == degree_digits + 2:
        value = int(whole[:degree_digits]) + (int(whole[degree_digits:]) + frac_value) / 60.0
    elif n == degree_digits + 4:
        value = (int(whole[:degree_digits]) + int(whole[degree_digits:degree_digits + 2]) / 60.0
                 + (int(whole[degree_digits + 2:]) + frac_value) / 3600.0)
    else:
        return None
    return sign * value


# --------------------------------------------------------------------------- small parsers


def _present(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        text = value.strip()
        return bool(text) and text not in ("0000:00:00 00:00:00", "0000:00:00", "N/A")
    return True


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float):
        text = f"{value:g}"
    elif isinstance(value, list):
        text = ", ".join(str(v) for v in value)
    else:
        text = str(value)
    text = text.strip().strip("\x00").strip()
    return text or None


def _str_only(value: Any) -> str | None:
    """Lens names only: with -n exiftool gives maker lens-type codes as numbers."""
    return value if isinstance(value, str) else None


def _clean(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return None if not text or text.lower() in ("unknown", "n/a") else text


def _tag(tags: dict[str, Any], name: str) -> str | None:
    """A tag by name, case-insensitively, also matching Matroska's "NAME-eng" variants."""
    lowered = {str(k).lower(): v for k, v in tags.items()}
    value = lowered.get(name.lower())
    if value is None:
        value = next((v for k, v in lowered.items() if k.startswith(name.lower() + "-")), None)
    return _clean(value)


def _disposition(stream: dict[str, Any], name: str) -> bool:
    return bool((stream.get("disposition") or {}).get(name))


def _nth(items: Sequence[dict[str, Any]], n: int) -> dict[str, Any] | None:
    return items[n] if 0 <= n < len(items) else None


def _video_ordinal(ff: FfprobeOutput, stream: dict[str, Any]) -> int:
    """Position of ``stream`` among real video streams (mediainfo lists cover art elsewhere)."""
    real = [s for s in ff.streams if s.get("codec_type") == "video"
            and not _disposition(s, "attached_pic")]
    return next((i for i, s in enumerate(real) if s is stream), 0)


def _float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(str(value).split(" / ")[0].strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _int(value: Any) -> int | None:
    number = _float(value)
    return int(round(number)) if number is not None else None


def _positive(value: Any) -> float | None:
    if isinstance(value, list):
        value = value[0] if value else None
    number = _float(value)
    return number if number is not None and number > 0 else None


def _median(value: Any) -> float | None:
    """Median of a space-separated telemetry series such as GoPro ISOSpeeds."""
    if value is None:
        return None
    numbers = [n for n in (_float(p) for p in str(value).split()) if n is not None and n > 0]
    return float(statistics.median(numbers)) if numbers else None


def _first_number(value: Any) -> float | None:
    m = re.search(r"[\d.]+", str(value or ""))
    return float(m.group(0)) if m else None


def _fraction(value: Any) -> Fraction | None:
    """'30000/1001' or '24' as a Fraction; 0/0 and 0 are None."""
    if value is None:
        return None
    try:
        text = str(value)
        if "/" in text:
            num, den = text.split("/", 1)
            if int(den) == 0:
                return None
            result = Fraction(int(num), int(den))
        else:
            result = Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None
    return result if result > 0 else None


def _aspect(value: Any) -> Fraction | None:
    """Sample aspect ratio '4:3' as a Fraction; '0:1' (unknown) is None."""
    if not value or ":" not in str(value):
        return None
    return _fraction(str(value).replace(":", "/"))


def _ratio_text(ratio: Fraction) -> str:
    return f"{ratio.numerator}:{ratio.denominator}"


def _hms(value: str | None) -> float | None:
    """'00:00:01.023000000' -> 1.023."""
    if not value:
        return None
    m = re.fullmatch(r"(\d+):(\d\d):(\d\d(?:\.\d+)?)", value.strip())
    if not m:
        return None
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))


def _level(codec: str | None, level: int | None) -> str | None:
    """ffprobe's numeric level as the label people use ('4.2', '5.1', 'High')."""
    if level is None or level < 0:
        return None
    if codec == "h264":
        return "1b" if level == 9 else (f"{level // 10}" if level % 10 == 0 else f"{level / 10:.1f}")
    if codec == "hevc":
        major, minor = divmod(level, 30)
        return f"{major}" if minor == 0 else f"{major}.{minor // 3}"
    if codec == "vp9" and level >= 10:
        return f"{level // 10}" if level % 10 == 0 else f"{level / 10:.1f}"
    if codec == "av1":
        return f"{2 + (level >> 2)}.{level & 3}"
    if codec == "mpeg2video":
        return {4: "High", 6: "High 1440", 8: "Main", 10: "Low"}.get(level)
    return None


def _pix_fmt_depth(pix_fmt: str | None) -> int | None:
    if not pix_fmt:
        return None
    m = re.fullmatch(r"(?:yuva?j?\d+p|gbra?p|gray|ya)(\d+)?(?:le|be)?", pix_fmt)
    if m:
        return int(m.group(1)) if m.group(1) else 8
    m = re.fullmatch(r"p[024](\d\d)(?:le|be)", pix_fmt)  # p010le, p210le, p416le
    if m:
        return int(m.group(1))
    if pix_fmt in ("nv12", "nv21", "nv16", "nv24", "yuyv422", "uyvy422", "rgb24", "bgr24",
                   "rgba", "bgra", "argb", "abgr", "rgb0", "bgr0"):
        return 8
    return None


def _pix_fmt_chroma(pix_fmt: str | None) -> str | None:
    if not pix_fmt:
        return None
    m = re.match(r"(?:yuva?j?)(420|422|444|440|411|410)p", pix_fmt)
    if m:
        digits = m.group(1)
        return f"{digits[0]}:{digits[1]}:{digits[2]}"
    if re.match(r"(?:nv12|nv21|p0\d\d)", pix_fmt):
        return "4:2:0"
    if re.match(r"(?:nv16|p2\d\d|yuyv422|uyvy422)", pix_fmt):
        return "4:2:2"
    if re.match(r"(?:nv24|p4\d\d|gbr)", pix_fmt):
        return "4:4:4"
    return None


def _mi_chroma(value: Any) -> str | None:
    text = _clean(value)
    return text if text in ("4:2:0", "4:2:2", "4:4:4") else None


def _mi_gop(value: Any) -> int | None:
    m = re.search(r"N=(\d+)", str(value or ""))
    return int(m.group(1)) if m else None


def _with_offset(value: Any, offset: Any) -> Any:
    if not _present(value) or not _present(offset):
        return value
    text = str(value).strip()
    return text if re.search(r"([+-]\d\d:?\d\d|Z)$", text) else f"{text}{str(offset).strip()}"


def _parse_datetime(raw: Any) -> datetime | None:
    """exiftool ('2019:07:24 11:25:40+03:00'), ffprobe ('2019-07-24T11:25:40+0300',
    '...Z') and mediainfo ('2019-07-24 08:25:57 UTC') date-times; None for date-only or junk."""
    text = str(raw).strip()
    m = re.fullmatch(
        r"(\d{4})[:-](\d\d)[:-](\d\d)[T ](\d\d):(\d\d)(?::(\d\d)(\.\d+)?)?\s*"
        r"(Z|UTC|[+-]\d\d:?\d\d)?",
        text,
    )
    if not m:
        return None
    year, month, day, hour, minute = (int(m.group(i)) for i in range(1, 6))
    second = int(m.group(6) or 0)
    micro = int(round(float(m.group(7)) * 1_000_000)) if m.group(7) else 0
    zone = m.group(8)
    tz: timezone | None = None
    if zone in ("Z", "UTC"):
        tz = UTC
    elif zone:
        digits = zone.replace(":", "")
        minutes = int(digits[1:3]) * 60 + int(digits[3:5])
        tz = timezone(timedelta(minutes=-minutes if digits[0] == "-" else minutes))
    try:
        return datetime(year, month, day, hour, minute, second, min(micro, 999_999), tzinfo=tz)
    except ValueError:
        return None

