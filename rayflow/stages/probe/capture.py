"""Capture time (timezone-aware where the file proves the offset) and GPS position."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from rayflow.media.mediainfo import MediainfoOutput
from rayflow.media.parse import (
    number,
    parse_datetime,
    present,
    with_offset,
)
from rayflow.record import (
    CaptureInfo,
    GpsInfo,
)
from rayflow.stages.probe.camera import Tags

_PLACEHOLDER_DATES = (datetime(1904, 1, 1).date(), datetime(1970, 1, 1).date())
def capture_info(t: Tags, mi: MediainfoOutput | None, warnings: list[str]) -> CaptureInfo:
    gopro = "GoPro" in t.groups
    general = mi.general if mi else {}
    # (source name, raw value, UTC when it carries no offset)
    candidates: list[tuple[str, Any, bool]] = [
        ("Keys:CreationDate", t.ex("Keys:CreationDate"), False),
        ("com.apple.quicktime.creationdate", t.ffprobe("com.apple.quicktime.creationdate"), False),
        ("ExifIFD:DateTimeOriginal",
         with_offset(t.ex("ExifIFD:DateTimeOriginal"), t.ex("ExifIFD:OffsetTimeOriginal")), False),
        ("XMP-exif:DateTimeOriginal", t.ex("XMP-exif:DateTimeOriginal"), False),
        ("XMP-photoshop:DateCreated", t.ex("XMP-photoshop:DateCreated"), False),
        ("XMP-xmp:CreateDate", t.ex("XMP-xmp:CreateDate"), False),
        ("ExifIFD:CreateDate",
         with_offset(t.ex("ExifIFD:CreateDate"), t.ex("ExifIFD:OffsetTimeDigitized")), False),
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
        if not present(raw):
            continue
        value = parse_datetime(raw)
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


def _offset_from_gps(local: datetime, source: str | None, t: Tags) -> tuple[datetime, str | None]:
    """Attach the UTC offset implied by a GPS UTC time in the same file, when unambiguous."""
    gps_raw = t.ex("Composite:GPSDateTime") or t.telemetry("GPSDateTime")
    gps = parse_datetime(gps_raw) if gps_raw else None
    if gps is None:
        return local, source
    gps = gps.replace(tzinfo=None) if gps.tzinfo is None else gps.astimezone(UTC).replace(tzinfo=None)
    delta = (local - gps).total_seconds()
    step = round(delta / 900.0) * 900  # offsets are whole quarter hours
    if abs(delta - step) > 120 or abs(step) > 14 * 3600:
        return local, source
    return local.replace(tzinfo=timezone(timedelta(seconds=step))), f"{source} (offset from GPS time)"


def _gps(t: Tags) -> GpsInfo | None:
    candidates: list[tuple[float | None, float | None, float | None]] = [
        (number(t.ex("Composite:GPSLatitude")), number(t.ex("Composite:GPSLongitude")),
         number(t.ex("Composite:GPSAltitude"))),
    ]
    coords = t.ex("Keys:GPSCoordinates", "UserData:GPSCoordinates", "ItemList:GPSCoordinates",
                  "*:GPSCoordinates")
    if coords is not None:
        parts = [number(p) for p in str(coords).replace(",", " ").split()]
        if len(parts) >= 2:
            candidates.append((parts[0], parts[1], parts[2] if len(parts) > 2 else None))
    candidates.append((number(t.ex("XMP-exif:GPSLatitude")), number(t.ex("XMP-exif:GPSLongitude")),
                       number(t.ex("XMP-exif:GPSAltitude"))))
    for tag in ("com.apple.quicktime.location.iso6709", "location", "location-eng"):
        parsed = parse_iso6709(t.ffprobe(tag) or "")
        if parsed:
            candidates.append(parsed)
    fix = (number(t.telemetry("GPSLatitude")), number(t.telemetry("GPSLongitude")),
           number(t.telemetry("GPSAltitude")))
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
