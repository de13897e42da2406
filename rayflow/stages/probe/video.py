"""Video stream facts: geometry, rotation, frame rate, GOP, CFR/VFR, scan, duration."""

from __future__ import annotations

import statistics
from fractions import Fraction
from typing import Any

from rayflow.media.exiftool import ExiftoolOutput
from rayflow.media.ffprobe import FfprobeOutput
from rayflow.media.parse import (
    aspect,
    clean,
    fraction,
    hms,
    integer,
    level_label,
    mi_chroma,
    mi_gop,
    number,
    pix_fmt_chroma,
    pix_fmt_depth,
    ratio_text,
    tag,
)
from rayflow.record import (
    VideoInfo,
)
from rayflow.stages.probe.colour import color_info, hdr_info

VFR_OUTLIER_SHARE = 0.02
"""Share of frame intervals off the median (by more than one tick) that makes a clip VFR."""
MAX_PLAUSIBLE_FPS = 300.0
"""Rate fields above this are container artefacts, not frame rates (Matroska/WebM writers
leave 1000/1, the 1 ms timebase; phones' slow motion tops out at 240 fps)."""
STANDARD_RATES = tuple(Fraction(n, d) for n, d in (
    (24000, 1001), (24, 1), (25, 1), (30000, 1001), (30, 1), (48, 1), (50, 1), (60000, 1001),
    (60, 1), (100, 1), (120000, 1001), (120, 1), (240, 1)))
"""A rate measured from timestamps within 0.2 % of one of these is that rate (1 ms Matroska
ticks make 29.97 fps measure as 29.96-29.98)."""
_EXIF_ORIENTATION_CW = {1: 0.0, 3: 180.0, 6: 90.0, 8: 270.0}


def video_info(
    ff: FfprobeOutput,
    st: dict[str, Any],
    mi: dict[str, Any] | None,
    ex: ExiftoolOutput | None,
    is_image: bool,
    warnings: list[str],
    *,
    container_duration_s: float | None = None,
) -> VideoInfo:
    """Facts of the primary video stream ``st``; ``container_duration_s`` stands in for a
    stream duration no tool gives (VP9 WebM has only the Segment's)."""
    mi = mi or {}
    codec = st.get("codec_name")
    pix_fmt = st.get("pix_fmt")
    width, height = integer(st.get("width")), integer(st.get("height"))
    sar = aspect(st.get("sample_aspect_ratio"))
    rotation = _rotation(st, mi, ex, warnings)
    display_w, display_h = width, height
    if width and height and sar and sar != 1:
        display_w = round(width * sar)
    if rotation in (90, 270):
        display_w, display_h = display_h, display_w
    dar = st.get("display_aspect_ratio")
    if not dar or dar in ("0:1", "N/A"):
        dar = ratio_text(Fraction(width * (sar or 1)) / height) if width and height else None

    tags = st.get("tags") or {}
    packets = [p for p in ff.packets if p.get("stream_index") == st.get("index")]
    time_base = fraction(st.get("time_base"))
    avg = _plausible(fraction(st.get("avg_frame_rate")))
    base = _plausible(fraction(st.get("r_frame_rate")))
    fps = frame_rate(avg, base, measure_rate(packets, time_base))
    gop, key_s = _gop(packets, time_base)
    if gop is None:
        gop = mi_gop(mi.get("Format_Settings_GOP"))
    scan_type, field_order = _scan(st.get("field_order"), mi)
    color = color_info(st, mi)
    duration = stream_duration(st, tags, mi) or container_duration_s
    frame_count, mi_bitrate = (1, None) if is_image else _counts(st, mi, duration, fps, warnings)
    return VideoInfo(
        index=integer(st.get("index")),
        codec=codec,
        codec_long=st.get("codec_long_name"),
        profile=clean(st.get("profile")),
        level=level_label(codec, integer(st.get("level"))) or clean(mi.get("Format_Level")),
        pix_fmt=pix_fmt,
        bit_depth=(integer(st.get("bits_per_raw_sample")) or pix_fmt_depth(pix_fmt)
                   or integer(mi.get("BitDepth"))),
        chroma_subsampling=pix_fmt_chroma(pix_fmt) or mi_chroma(mi.get("ChromaSubsampling")),
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
        frame_count=frame_count,
        duration_s=None if is_image else duration,
        bitrate_bps=None if is_image else integer(st.get("bit_rate")) or integer(tag(tags, "BPS")) or mi_bitrate,
        gop_size=None if is_image else gop,
        keyframe_interval_s=None if is_image else key_s,
        color=color,
        hdr=hdr_info(st, mi, color),
    )


def _counts(
    st: dict[str, Any], mi: dict[str, Any], duration: float | None, fps: float | None, warnings: list[str]
) -> tuple[int | None, int | None]:
    """Frame count (ffprobe's ``nb_frames``, else mediainfo's) and mediainfo's stream bitrate.

    mediainfo takes both from the header when it states a duration (MXF). A cut or truncated
    file keeps a header that promises more than it holds (an Avid OP-Atom whose header says
    30 s around one frame): when mediainfo's duration disagrees with the stream's by more than
    a frame and 1 %, its count becomes duration x fps and its bitrate the stream's bytes over
    the duration, with a warning."""
    count = integer(st.get("nb_frames")) or integer(mi.get("FrameCount"))
    bitrate = integer(mi.get("BitRate"))
    mi_duration = number(mi.get("Duration"))
    if integer(st.get("nb_frames")) or not (mi_duration and duration and fps):
        return count, bitrate
    if abs(mi_duration - duration) <= max(1.0 / fps, 0.01 * duration):
        return count, bitrate
    warnings.append(f"mediainfo: the header says {mi_duration:g} s of video, the stream holds {duration:g} s "
                    "(a cut or truncated file); frame count and bitrate follow the stream")
    size = integer(mi.get("StreamSize"))
    return max(1, round(duration * fps)), (round(size * 8 / duration) if size else None)


def _plausible(rate: Fraction | None) -> Fraction | None:
    """``rate`` unless it is a container artefact above ``MAX_PLAUSIBLE_FPS`` (one frame per
    tick of a 1/1000 or 1/90000 timebase). A rate equal to 1/timebase is not one by itself:
    AVI's timebase is the frame period."""
    return None if rate is None or rate > MAX_PLAUSIBLE_FPS else rate


def measure_rate(packets: list[dict[str, Any]], time_base: Fraction | None) -> float | None:
    """Frames per second from the packet timestamps of one stream: (n - 1) / (last - first pts),
    snapped to a ``STANDARD_RATES`` entry within 0.2 %; None under 8 packets."""
    pts = sorted(p["pts"] for p in packets if isinstance(p.get("pts"), int))
    if len(pts) < 8 or not time_base or pts[-1] <= pts[0]:
        return None
    measured = (len(pts) - 1) / float((pts[-1] - pts[0]) * time_base)
    for rate in STANDARD_RATES:
        if abs(measured - float(rate)) <= 0.002 * float(rate):
            return float(rate)
    return round(measured, 3)


def frame_rate(avg: Fraction | None, base: Fraction | None, measured: float | None) -> float | None:
    """The average frame rate: ``avg_frame_rate`` when plausible; else the rate measured from
    frame timestamps (a browser WebM has avg 0/0 and r 1000/1 or 50/3 while its frames come
    at 24-28 fps); else the base rate. ``r_frame_rate`` alone is never preferred to a
    plausible ``avg``: it is twice the frame rate for interlaced video (the field rate)."""
    if avg is not None:
        return float(avg)
    if measured is not None:
        return measured
    return float(base) if base is not None else None


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
        cw = number(legacy)
    if cw is None:
        cw = number(mi.get("Rotation"))
    if cw is None and ex is not None:
        cw = number(ex.main.get("Composite:Rotation"))
        orientation = integer(ex.main.get("IFD0:Orientation"))  # still photos
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


def stream_duration(st: dict[str, Any], tags: dict[str, Any], mi: dict[str, Any]) -> float | None:
    duration = number(st.get("duration"))
    if duration is None:
        duration = hms(tag(tags, "DURATION"))  # Matroska statistics tag
    if duration is None:
        duration = number(mi.get("Duration"))
    return duration
