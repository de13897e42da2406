"""mediainfo, run once per file: the bitstream facts ffprobe leaves out.

``mediainfo --Output=JSON -- /abs/path`` parses headers and the first frames'
SEI without decoding pictures. The probe stage reads from it what ffprobe is
silent about: HDR format names (Dolby Vision, HDR10+ = 'SMPTE ST 2094 App 4'),
mastering display and MaxCLL/MaxFALL carried in-band, scan type (MBAFF/PAFF),
the frame-rate mode over the whole sample table, and whether the file is
truncated (``IsTruncated``).

All values come back as mediainfo's strings; the caller converts what it uses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rayflow.media.tools import ToolError, run_tool

TOOL = "mediainfo"


@dataclass(frozen=True)
class MediainfoOutput:
    """mediainfo's tracks, split by ``@type`` in file order."""

    general: dict[str, Any]
    video: list[dict[str, Any]] = field(default_factory=list)
    audio: list[dict[str, Any]] = field(default_factory=list)
    text: list[dict[str, Any]] = field(default_factory=list)
    other: list[dict[str, Any]] = field(default_factory=list)
    image: list[dict[str, Any]] = field(default_factory=list)
    version: str | None = None

    @property
    def is_truncated(self) -> bool:
        """mediainfo found less data than the container declares."""
        extra = self.general.get("extra") or {}
        return str(extra.get("IsTruncated", "")).lower() == "yes"


def mediainfo_argv(path: Path) -> list[str]:
    """The exact argv used for ``path``."""
    return [TOOL, "--Output=JSON", "--", str(Path(path).absolute())]


def run_mediainfo(path: Path, *, timeout_s: float) -> MediainfoOutput:
    """Run mediainfo once on ``path``.

    mediainfo exits 0 even when it cannot open a file; that case (``"media":
    null``) raises ``ToolError`` here, as does unparseable output.
    """
    out = run_tool(mediainfo_argv(path), timeout_s=timeout_s, path=path, check=True)
    try:
        data = json.loads(out.text)
    except json.JSONDecodeError as exc:
        raise ToolError(TOOL, path, f"unreadable JSON output ({exc})") from exc
    media = data.get("media")
    if not media:
        raise ToolError(TOOL, path, "could not open the file")
    version = (data.get("creatingLibrary") or {}).get("version")
    general: dict[str, Any] = {}
    buckets: dict[str, list[dict[str, Any]]] = {
        "Video": [], "Audio": [], "Text": [], "Other": [], "Image": [],
    }
    for track in media.get("track") or []:
        kind = track.get("@type")
        if kind == "General":
            general = track
        elif kind in buckets:
            buckets[kind].append(track)
    return MediainfoOutput(
        general=general,
        video=buckets["Video"],
        audio=buckets["Audio"],
        text=buckets["Text"],
        other=buckets["Other"],
        image=buckets["Image"],
        version=str(version) if version is not None else None,
    )
