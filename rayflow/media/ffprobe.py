"""ffprobe, run once per file: container, streams, chapters and the first packets.

One call gives everything the probe stage needs from ffprobe::

    ffprobe -v warning -print_format json -show_program_version -show_format
            -show_streams -show_chapters -show_packets
            -show_entries packet=stream_index,pts,dts,duration,flags
            -read_intervals %+#1000 file:/abs/path

The packets are only *demuxed*, never decoded, so reading the first
``packet_window`` of them costs milliseconds even for 8K or all-intra footage;
they give the keyframe spacing (GOP) and the frame timing used to tell CFR from
VFR. Frame side data (HDR mastering display, MaxCLL) is not read here because it
needs a decode: it comes from the container (stream side data) or from
mediainfo, which parses the SEI without decoding.

The path is passed as ``file:`` + absolute path: ffprobe has no ``--``, and the
``file:`` protocol keeps names that begin with ``-`` or contain ``:`` literal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rayflow.media.tools import ToolError, exit_description, last_line, run_tool

PACKET_WINDOW = 1000
"""Packets demuxed (all streams together) for GOP and frame timing; ~15-30 s of a typical clip."""

TOOL = "ffprobe"


@dataclass(frozen=True)
class FfprobeOutput:
    """ffprobe's JSON sections, as parsed (values are ffprobe's strings and numbers)."""

    format: dict[str, Any]
    streams: list[dict[str, Any]]
    chapters: list[dict[str, Any]] = field(default_factory=list)
    packets: list[dict[str, Any]] = field(default_factory=list, repr=False)
    version: str | None = None
    stderr: str = field(default="", repr=False)
    """Warnings ffprobe printed at ``-v warning`` (e.g. 'partial file' for a truncated MP4,
    'Estimating duration from bitrate' for an MP3 without a Xing header)."""
    scanned_duration_s: float | None = None
    """Duration from the timestamps of every packet (``scan_duration``), set only for files
    whose container declares none and whose packets outnumber the window."""

    @property
    def duration_is_estimate(self) -> bool:
        """``format.duration`` was guessed from the bitrate (MP3 without Xing/VBRI, some MPEG-PS):
        off by 5 % on a 2.8 s MP3 with ID3 cover art."""
        return "Estimating duration from bitrate" in self.stderr

    @property
    def window_is_whole_file(self) -> bool:
        """The packet window holds every packet of the file (it ended before the window did)."""
        return len(self.packets) < PACKET_WINDOW


def ffprobe_argv(path: Path, *, packet_window: int = PACKET_WINDOW) -> list[str]:
    """The exact argv used for ``path`` (exposed for tests and `rayflow doctor`)."""
    return [
        TOOL, "-v", "warning", "-hide_banner",
        "-print_format", "json",
        "-show_program_version", "-show_format", "-show_streams", "-show_chapters",
        "-show_packets", "-show_entries", "packet=stream_index,pts,dts,duration,flags",
        "-read_intervals", f"%+#{packet_window}",
        "file:" + str(Path(path).absolute()),
    ]


def run_ffprobe(path: Path, *, timeout_s: float, packet_window: int = PACKET_WINDOW) -> FfprobeOutput:
    """Run ffprobe once on ``path`` and parse its JSON.

    Raises ``ToolError`` with a specific reason (empty file, not a media file,
    truncated MP4, directory, missing) when ffprobe cannot open the file, and
    ``ToolTimeout`` after ``timeout_s`` seconds.
    """
    out = run_tool(ffprobe_argv(path, packet_window=packet_window), timeout_s=timeout_s,
                   path=path, check=False)
    stderr = out.stderr.decode("utf-8", errors="replace")
    if out.returncode != 0:
        raise ToolError(TOOL, path, explain_failure(path, stderr, out.returncode))
    try:
        data = json.loads(out.text or "{}")
    except json.JSONDecodeError as exc:
        raise ToolError(TOOL, path, f"unreadable JSON output ({exc})") from exc
    return FfprobeOutput(
        format=data.get("format") or {},
        streams=list(data.get("streams") or []),
        chapters=list(data.get("chapters") or []),
        packets=[p for p in data.get("packets") or [] if p.get("type", "packet") == "packet"],
        version=(data.get("program_version") or {}).get("version"),
        stderr=stderr,
    )


def scan_duration(path: Path, *, timeout_s: float) -> float | None:
    """Duration from packet timestamps over the whole file: last (pts + duration) - first pts.

    For containers that declare no duration (a browser's MediaRecorder WebM has no
    Duration element). Demux only, no decode: about 0.1 s per minute of 1080p WebM.
    None when no packet carries a timestamp.
    """
    argv = [TOOL, "-v", "error", "-hide_banner", "-show_entries",
            "packet=pts_time,duration_time", "-of", "csv=p=0", "file:" + str(Path(path).absolute())]
    out = run_tool(argv, timeout_s=timeout_s, path=path, check=False)
    first: float | None = None
    end: float | None = None
    for line in out.text.splitlines():
        pts_text, _, dur_text = line.partition(",")
        try:
            pts = float(pts_text)
        except ValueError:
            continue  # N/A
        try:
            dur = float(dur_text.strip().rstrip(","))
        except ValueError:
            dur = 0.0
        first = pts if first is None else min(first, pts)
        end = pts + dur if end is None else max(end, pts + dur)
    if first is None or end is None or end <= first:
        return None
    return round(end - first, 6)


def explain_failure(path: Path, stderr: str, returncode: int) -> str:
    """A specific, human reason for a failed ffprobe run (the message after 'ffprobe on ...:')."""
    p = Path(path)
    # ffprobe prefixes its final error with the URL it opened; drop it so the
    # message reads "... (Invalid data found when processing input)".
    url = "file:" + str(p.absolute()) + ": "
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    last = lines[-1] if lines else last_line(b"")
    reason = last[len(url):] if last.startswith(url) else last
    reason = reason[:300]
    if "No such file or directory" in reason:
        return "file not found"
    if "Is a directory" in reason or p.is_dir():
        return "is a directory, not a media file"
    if "Permission denied" in reason:
        return "permission denied"
    if "Invalid data found when processing input" in reason:
        size = _size(p)
        if size == 0:
            return "empty file (0 bytes)"
        if _looks_like_text(p):
            return f"not a media file: it is text ({reason})"
        if "moov atom not found" in stderr:
            return f"truncated or incomplete MP4/MOV: moov atom not found ({reason})"
        return f"not a media file or corrupt ({reason})"
    if returncode < 0:
        return f"{exit_description(returncode)}: {reason}"
    return f"failed with exit {returncode}: {reason}"


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _looks_like_text(path: Path, sniff_bytes: int = 4096) -> bool:
    """True when the file's head is printable UTF-8 with no NUL bytes (a text file)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(sniff_bytes)
    except OSError:
        return False
    if not head or b"\x00" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the sniff boundary is still text.
        if exc.start < len(head) - 4:
            return False
        text = head[: exc.start].decode("utf-8")
    printable = sum(ch.isprintable() or ch in "\t\r\n\f" for ch in text)
    return printable >= 0.95 * max(len(text), 1)
