"""Camera log/gamma curve (S-Log2/3, V-Log, C-Log, LogC, Apple Log, D-Log, F-Log, N-Log, HLG).

Read from what the camera wrote, never guessed from the picture:

1. exiftool tags whose name speaks of a gamma, log, curve, profile or look (Sony's
   ``CaptureGammaEquation`` in MXF and in the XML inside XAVC MP4s, maker notes), printed
   values; a value counts only when it names a known curve.
2. ffprobe container and stream tags with such names (some drones write them there).
3. Camera sidecars beside the clip: Sony's ``<clip>M01.XML`` (NonRealTimeMeta,
   ``<Item name="CaptureGammaEquation" value="s-log3-cine"/>``). They are read here and
   are not media: discovery must not catalogue them.

HLG counts only when a camera tag or sidecar says so (Sony ``rec2100-hlg``); an HLG
transfer characteristic alone is ``video.hdr.format``, not a log profile.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rayflow.media.exiftool import ExiftoolOutput
from rayflow.media.ffprobe import FfprobeOutput
from rayflow.record import LogProfile

SIDECAR_MAX_BYTES = 1 << 20
"""A camera XML sidecar is a few KB; anything over 1 MiB beside a clip is not one."""

SIDECAR_SUFFIXES = ("M01.XML", "M01.xml")
"""Sony XAVC/XDCAM clip sidecars: C0001.MP4 -> C0001M01.XML."""

_CURVES: tuple[tuple[str, str], ...] = (
    (r"s-?log\s*3", "S-Log3"), (r"s-?log\s*2", "S-Log2"), (r"s-?log(?![\w])", "S-Log"),
    (r"v-?log", "V-Log"), (r"(?:c-?|canon\s*)log\s*v?3", "C-Log3"),
    (r"(?:c-?|canon\s*)log\s*v?2", "C-Log2"), (r"(?:c-?|canon\s*)log(?![\w])", "C-Log"),
    (r"log\s*c\s*4", "LogC4"), (r"log\s*c(?:\s*3)?(?![\w])", "LogC3"),
    (r"apple\s*log", "Apple Log"), (r"d-?log(?:\s*m)?", "D-Log"), (r"f-?log\s*2", "F-Log2"),
    (r"f-?log", "F-Log"), (r"n-?log", "N-Log"),
    (r"hlg|hybrid[\s-]*log|rec\.?\s*2100[\s-]*hlg", "HLG"),
)
_NAME_HINT = re.compile(r"gamma|log|curve|profile|look|transfer", re.IGNORECASE)
_GAMUT_HINT = re.compile(r"gamut|primaries|colou?rspace", re.IGNORECASE)
_SONY_ITEM = re.compile(r'<Item\s+name="(?P<name>[^"]+)"\s+value="(?P<value>[^"]*)"', re.IGNORECASE)
_SKIP_GROUPS = ("System", "File", "ExifTool", "Composite", "ICC")


def curve_name(value: Any) -> str | None:
    """'s-log3-cine' -> 'S-Log3', 'CLogV3' -> 'C-Log3', 'Normal' -> None."""
    text = str(value or "").strip().lower().replace("_", "-")
    if not text or len(text) > 80:
        return None
    for pattern, name in _CURVES:
        if re.search(pattern, text):
            return name
    return None


def read_sidecars(path: Path) -> dict[str, str]:
    """Camera sidecars beside ``path`` (file name -> text); unreadable ones are skipped."""
    found: dict[str, str] = {}
    for suffix in SIDECAR_SUFFIXES:
        candidate = path.with_name(path.stem + suffix)
        try:
            if candidate.is_file() and candidate.stat().st_size <= SIDECAR_MAX_BYTES:
                found[candidate.name] = candidate.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
    return found


def log_profile(
    ex: ExiftoolOutput | None, ff: FfprobeOutput, sidecars: dict[str, str] | None = None
) -> LogProfile | None:
    """The first curve named by exiftool tags, then ffprobe tags, then sidecars; else None."""
    if ex is not None:
        found = _from_pairs(
            [(k, ex.printed.get(k, v)) for k, v in ex.main.items()
             if not k.startswith(_SKIP_GROUPS) and isinstance(ex.printed.get(k, v), str)])
        if found:
            return found
    ff_tags = [(f"ffprobe:{k}", v) for k, v in (ff.format.get("tags") or {}).items()]
    for st in ff.streams:
        ff_tags += [(f"ffprobe:{k}", v) for k, v in (st.get("tags") or {}).items()]
    found = _from_pairs(ff_tags)
    if found:
        return found
    for name, text in sorted((sidecars or {}).items()):
        items = [(m.group("name"), m.group("value")) for m in _SONY_ITEM.finditer(text)]
        found = _from_pairs(items, source=name)
        if found:
            return found
    return None


def _from_pairs(pairs: list[tuple[str, Any]], source: str | None = None) -> LogProfile | None:
    gamut = next((str(v) for k, v in pairs if _GAMUT_HINT.search(k.rpartition(":")[2]) and v), None)
    for key, value in pairs:
        if not _NAME_HINT.search(key.rpartition(":")[2]):
            continue
        name = curve_name(value)
        if name:
            return LogProfile(name=name, raw=str(value).strip(), gamut=gamut,
                              source=source or key)
    return None
