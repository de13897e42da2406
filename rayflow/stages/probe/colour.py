"""Colour description and HDR: ffprobe tags first, mediainfo names and SEI second."""

from __future__ import annotations

import re
from typing import Any

from rayflow.media.parse import (
    clean,
    first_number,
    fraction,
    integer,
)
from rayflow.record import (
    ColorInfo,
    HdrFormat,
    HdrInfo,
    MasteringDisplay,
)

_DOVI_TAGS = frozenset({"dvh1", "dvhe", "dav1", "dva1", "dvav"})
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


def color_info(st: dict[str, Any], mi: dict[str, Any]) -> ColorInfo:
    def known(value: Any) -> str | None:
        text = clean(value)
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


def hdr_info(st: dict[str, Any], mi: dict[str, Any], color: ColorInfo) -> HdrInfo:
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
            max_cll, max_fall = integer(sd.get("max_content")), integer(sd.get("max_average"))
    if mastering is None:
        mastering = _mi_mastering(mi)
    if max_cll is None:
        max_cll = integer(first_number(mi.get("MaxCLL")))
    if max_fall is None:
        max_fall = integer(first_number(mi.get("MaxFALL")))
    return HdrInfo(
        is_hdr=fmt is not None, format=fmt, mastering_display=mastering,
        max_cll_nits=max_cll, max_fall_nits=max_fall,
    )


def _side_mastering(sd: dict[str, Any]) -> MasteringDisplay | None:
    def xy(name: str) -> tuple[float, float] | None:
        x, y = fraction(sd.get(f"{name}_x")), fraction(sd.get(f"{name}_y"))
        return (round(float(x), 5), round(float(y), 5)) if x is not None and y is not None else None

    lo, hi = fraction(sd.get("min_luminance")), fraction(sd.get("max_luminance"))
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
