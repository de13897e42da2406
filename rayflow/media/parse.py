"""Value parsers shared by the probe and proxy stages: ffprobe/mediainfo/exiftool strings
("30000/1001", "4:3", "00:00:01.023", "2019:07:24 11:25:40+03:00") to typed values.

Pure functions, no tools run. Unknown, empty, zero or non-finite inputs give ``None``
(never a guessed value), so callers can chain sources with ``or``.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction
from typing import Any


def present(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        text = value.strip()
        return bool(text) and text not in ("0000:00:00 00:00:00", "0000:00:00", "N/A")
    return True


def text(value: Any) -> str | None:
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


def str_only(value: Any) -> str | None:
    """Lens names only: with -n exiftool gives maker lens-type codes as numbers."""
    return value if isinstance(value, str) else None


def clean(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return None if not text or text.lower() in ("unknown", "n/a") else text


def tag(tags: dict[str, Any], name: str) -> str | None:
    """A tag by name, case-insensitively, also matching Matroska's "NAME-eng" variants."""
    lowered = {str(k).lower(): v for k, v in tags.items()}
    value = lowered.get(name.lower())
    if value is None:
        value = next((v for k, v in lowered.items() if k.startswith(name.lower() + "-")), None)
    return clean(value)


def disposition(stream: dict[str, Any], name: str) -> bool:
    return bool((stream.get("disposition") or {}).get(name))


def nth(items: Sequence[dict[str, Any]], n: int) -> dict[str, Any] | None:
    return items[n] if 0 <= n < len(items) else None

def number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(str(value).split(" / ")[0].strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def integer(value: Any) -> int | None:
    value_f = number(value)
    return int(round(value_f)) if value_f is not None else None


def positive(value: Any) -> float | None:
    if isinstance(value, list):
        value = value[0] if value else None
    value_f = number(value)
    return value_f if value_f is not None and value_f > 0 else None


def median(value: Any) -> float | None:
    """Median of a space-separated telemetry series such as GoPro ISOSpeeds."""
    if value is None:
        return None
    numbers = [n for n in (number(p) for p in str(value).split()) if n is not None and n > 0]
    return float(statistics.median(numbers)) if numbers else None


def first_number(value: Any) -> float | None:
    m = re.search(r"[\d.]+", str(value or ""))
    return float(m.group(0)) if m else None


def fraction(value: Any) -> Fraction | None:
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


def aspect(value: Any) -> Fraction | None:
    """Sample aspect ratio '4:3' as a Fraction; '0:1' (unknown) is None."""
    if not value or ":" not in str(value):
        return None
    return fraction(str(value).replace(":", "/"))


def aspect_or_square(value: Any) -> float:
    """A sample aspect ratio as a float; 1.0 (square pixels) when unknown ('0:1', 'N/A', None)."""
    ratio = aspect(value)
    return float(ratio) if ratio is not None else 1.0


def rate(value: Any) -> float | None:
    """A frame rate such as '30000/1001' as frames per second; None for '0/0' or junk."""
    ratio = fraction(value)
    return float(ratio) if ratio is not None else None


def ratio_text(ratio: Fraction) -> str:
    return f"{ratio.numerator}:{ratio.denominator}"


def hms(value: str | None) -> float | None:
    """'00:00:01.023000000' -> 1.023."""
    if not value:
        return None
    m = re.fullmatch(r"(\d+):(\d\d):(\d\d(?:\.\d+)?)", value.strip())
    if not m:
        return None
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))


def level_label(codec: str | None, level: int | None) -> str | None:
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


def pix_fmt_depth(pix_fmt: str | None) -> int | None:
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


def pix_fmt_chroma(pix_fmt: str | None) -> str | None:
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


def mi_chroma(value: Any) -> str | None:
    text = clean(value)
    return text if text in ("4:2:0", "4:2:2", "4:4:4") else None


def mi_gop(value: Any) -> int | None:
    m = re.search(r"N=(\d+)", str(value or ""))
    return int(m.group(1)) if m else None

def with_offset(value: Any, offset: Any) -> Any:
    if not present(value) or not present(offset):
        return value
    text = str(value).strip()
    return text if re.search(r"([+-]\d\d:?\d\d|Z)$", text) else f"{text}{str(offset).strip()}"


def parse_datetime(raw: Any) -> datetime | None:
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

