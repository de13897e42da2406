"""Start timecode and reel/tape name: QuickTime tmcd, MXF, MTS (mediainfo), BWF time_reference.

Precedence (first that knows wins):

1. ffprobe's ``timecode`` tag on a ``tmcd`` data stream (QuickTime/MP4), then on any
   stream, then on the container (MXF material package, MOV). ffprobe reads the tmcd
   sample with its drop-frame flag; mediainfo misreads GoPro's (16:17:09:19 where the
   tmcd sample and the mvhd time both say 15:44:35).
2. exiftool: XMP ``xmpDM:startTimecode`` (value and its time format), QuickTime
   ``UserData:StartTimecode``, and AVCHD/MTS ``H264:TimeCode`` from the MDPM SEI (the
   smallest of the first samples: the SEI comes in decode order, the first frame shown
   has the lowest timecode), which ffprobe only sees when decoding.
3. mediainfo ``TimeCode_FirstFrame`` of its "Time code" tracks. Its video-track value
   for MPEG-2 is the GOP header's, which encoders leave at 00:00:00:00: not used.
4. BWF ``time_reference`` (samples since midnight) at the audio sample rate, as a
   timecode at the iXML ``SPEED`` rate and drop-frame flag (exiftool
   ``XML:BwfxmlSpeedTimecodeRate``/``...Flag``, or the Sound Devices ``sSPEED=`` note in
   the bext description). Without a rate only ``start_s`` is known.

A timecode whose frames field follows ``;`` (or ``,``) is drop-frame (SMPTE 12M).
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Any

from rayflow.media.exiftool import ExiftoolOutput
from rayflow.media.ffprobe import FfprobeOutput
from rayflow.media.mediainfo import MediainfoOutput
from rayflow.media.parse import clean, integer, number, present
from rayflow.record import TimecodeInfo

_TIMECODE = re.compile(r"^\s*(\d{1,2}):(\d\d):(\d\d)([:;.,])(\d{1,3})\s*$")
_SPEED_NOTE = re.compile(r"(?:^|[\r\n])s?SPEED=0*([\d.]+)-?(ND|DF|NDF|D)?", re.IGNORECASE)
_REEL_TAGS = ("reel_name", "tape_name", "reel", "tape")
_REEL_EXIFTOOL = ("XML:BwfxmlTape", "*:ReelName", "*:TapeName", "*:Reel", "*:TapeID")


def timecode_info(
    ff: FfprobeOutput, mi: MediainfoOutput | None, ex: ExiftoolOutput | None, fps: float | None
) -> TimecodeInfo | None:
    """The file's start timecode, or None when it carries none. ``fps`` (the video's frame
    rate) is the timecode rate when the timecode track does not state its own."""
    for source, text, rate in _candidates(ff, mi, ex, fps):
        parsed = from_text(text, rate, source)
        if parsed is not None:
            return parsed
    return _bwf(ff, ex)


def reel_name(ff: FfprobeOutput, ex: ExiftoolOutput | None) -> str | None:
    """Reel or tape name (QuickTime tmcd ``reel_name``, MXF, iXML ``TAPE``, bext ``sTAPE=``)."""
    for tags in [s.get("tags") or {} for s in ff.streams] + [ff.format.get("tags") or {}]:
        lowered = {str(k).lower(): v for k, v in tags.items()}
        for name in _REEL_TAGS:
            value = clean(lowered.get(name))
            if value:
                return value
    main = ex.main if ex else {}
    for key in _REEL_EXIFTOOL:
        group, _, name = key.partition(":")
        for full, value in main.items():
            if (full == key or (group == "*" and full.partition(":")[2] == name)) and present(value):
                return str(value).strip()
    note = str((ff.format.get("tags") or {}).get("comment") or "")
    m = re.search(r"(?:^|[\r\n])s?TAPE=([^\r\n]+)", note)
    return clean(m.group(1)) if m else None


def from_text(text: Any, rate: float | None, source: str) -> TimecodeInfo | None:
    """'01:00:00;00' at 29.97 -> drop-frame timecode with its start in seconds."""
    m = _TIMECODE.match(str(text or ""))
    if not m:
        return None
    h, mi, s, sep, f = m.groups()
    drop = sep in ";,"
    nominal = round(rate) if rate else None
    start_s = None
    if rate and nominal:
        frames = frame_number(int(h), int(mi), int(s), int(f), nominal, drop)
        start_s = round(frames / rate, 6)
    sep_out = ";" if drop else ":"
    return TimecodeInfo(start=f"{int(h):02d}:{mi}:{s}{sep_out}{int(f):02d}", start_s=start_s,
                        rate=_rate_label(rate), drop_frame=drop if rate else (True if drop else None),
                        source=source)


def frame_number(h: int, m: int, s: int, f: int, nominal: int, drop: bool) -> int:
    """Frames since 00:00:00:00 (SMPTE 12M: drop-frame skips 2 frame numbers per 30 (4 per 60)
    each minute except every tenth)."""
    frames = ((h * 60 + m) * 60 + s) * nominal + f
    if drop:
        skipped = 2 * nominal // 30
        minutes = h * 60 + m
        frames -= skipped * (minutes - minutes // 10)
    return frames


def timecode_text(frames: int, nominal: int, drop: bool) -> str:
    """Frame count -> 'HH:MM:SS:FF' (';FF' for drop-frame), the inverse of ``frame_number``."""
    if drop:
        skipped = 2 * nominal // 30
        per_10min = nominal * 600 - skipped * 9
        per_min = nominal * 60 - skipped
        tens, rest = divmod(frames, per_10min)
        extra = 0 if rest < skipped else skipped * ((rest - skipped) // per_min)
        frames += skipped * 9 * tens + extra
    f = frames % nominal
    total_s = frames // nominal
    sep = ";" if drop else ":"
    return f"{total_s // 3600 % 24:02d}:{total_s // 60 % 60:02d}:{total_s % 60:02d}{sep}{f:02d}"


def _candidates(
    ff: FfprobeOutput, mi: MediainfoOutput | None, ex: ExiftoolOutput | None, fps: float | None
) -> list[tuple[str, Any, float | None]]:
    out: list[tuple[str, Any, float | None]] = []
    tc_tracks = [t for t in mi.other if str(t.get("Type")) == "Time code"] if mi is not None else []
    # An audio-only MXF has no video rate; its timecode track states one (59.94).
    fps = fps or next((r for r in (number(t.get("FrameRate")) for t in tc_tracks) if r and r > 1), None)
    streams = sorted(ff.streams, key=lambda s: s.get("codec_tag_string") != "tmcd")
    for st in streams:
        value = (st.get("tags") or {}).get("timecode")
        if value:
            own = _stream_rate(st) if st.get("codec_tag_string") == "tmcd" else None
            name = "ffprobe:tmcd" if st.get("codec_tag_string") == "tmcd" else "ffprobe:stream timecode"
            out.append((name, value, own or fps))
    value = (ff.format.get("tags") or {}).get("timecode")
    if value:
        out.append(("ffprobe:timecode", value, fps))
    out += _exiftool_candidates(ex, fps)
    for track in tc_tracks:
        value = track.get("TimeCode_FirstFrame")
        if value:
            rate = number(track.get("FrameRate"))
            out.append(("mediainfo:TimeCode_FirstFrame", value, rate if rate and rate > 1 else fps))
    return out


def _exiftool_candidates(ex: ExiftoolOutput | None, fps: float | None) -> list[tuple[str, Any, float | None]]:
    if ex is None:
        return []
    out: list[tuple[str, Any, float | None]] = []
    xmp = ex.main.get("XMP-xmpDM:StartTimecodeTimeValue")
    if present(xmp):
        fmt = str(ex.printed.get("XMP-xmpDM:StartTimecodeTimeFormat", ""))  # "29.97 fps (drop)"
        rate = number(fmt.split(" fps", 1)[0]) if " fps" in fmt else None
        if "(drop" in fmt and ";" not in str(xmp):
            xmp = str(xmp)[:-3] + ";" + str(xmp)[-2:]
        out.append(("exiftool:XMP-xmpDM:StartTimecode", xmp, rate or fps))
    userdata = ex.main.get("UserData:StartTimecode")
    if present(userdata):
        out.append(("exiftool:UserData:StartTimecode", userdata, fps))
    sei = [v for v in [ex.main.get("H264:TimeCode")] + [d.get("H264:TimeCode") for d in ex.embedded.values()]
           if _TIMECODE.match(str(v or ""))]
    if sei:
        out.append(("exiftool:H264:TimeCode", min(sei, key=_sortable), fps))
    return out


def _sortable(text: Any) -> tuple[int, ...]:
    m = _TIMECODE.match(str(text))
    return tuple(int(g) for g in m.group(1, 2, 3, 5)) if m else (1 << 30,)


def _stream_rate(st: dict[str, Any]) -> float | None:
    for key in ("avg_frame_rate", "r_frame_rate"):
        text = str(st.get(key) or "")
        num, _, den = text.partition("/")
        if num.isdigit() and den.isdigit() and int(num) and int(den):
            return float(Fraction(int(num), int(den)))
    return None


def _bwf(ff: FfprobeOutput, ex: ExiftoolOutput | None) -> TimecodeInfo | None:
    tags = ff.format.get("tags") or {}
    samples = integer(tags.get("time_reference"))
    audio = next((s for s in ff.streams if s.get("codec_type") == "audio"), None)
    sample_rate = integer(audio.get("sample_rate")) if audio else None
    if samples is None or not sample_rate:
        return None
    seconds = samples / sample_rate
    rate, drop = _bwf_rate(tags, ex)
    start = "00:00:00:00" if samples == 0 else None  # frame 0 at any rate
    if rate:
        nominal = round(rate)
        start = timecode_text(math.floor(seconds * rate + 1e-6), nominal, bool(drop))
    return TimecodeInfo(start=start, start_s=round(seconds, 6), rate=_rate_label(rate),
                        drop_frame=drop if rate else None, source="bwf:time_reference")


def _bwf_rate(tags: dict[str, Any], ex: ExiftoolOutput | None) -> tuple[float | None, bool | None]:
    """Timecode rate and drop-frame flag of a BWF: iXML SPEED first, then the bext note."""
    main = ex.main if ex else {}
    rate = number(main.get("XML:BwfxmlSpeedTimecodeRate"))
    flag = str(main.get("XML:BwfxmlSpeedTimecodeFlag") or "").upper()
    if rate:
        return rate, flag == "DF" if flag in ("DF", "NDF") else None
    m = _SPEED_NOTE.search(str(tags.get("comment") or ""))
    if m:
        value = number(m.group(1))
        mark = (m.group(2) or "").upper()
        if value:
            return value, (mark in ("DF", "D")) if mark else None
    return None, None


def _rate_label(rate: float | None) -> float | None:
    """29.97002997 -> 29.97; 23.976023976 -> 23.976; 25.0 -> 25.0."""
    return round(rate, 3) if rate else None
