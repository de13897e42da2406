"""Editor proxies that relink: ``<folder>/Proxy/<same name>.mov``, matched to the source.

Premiere's "Attach Proxies" needs the same frame rate, duration and audio channel count
(and a frame size that divides the source's evenly); Resolve relinks a ``Proxy/``
folder beside the media by name and start timecode. So an editor proxy keeps every
frame with its timestamp (no fps cap, ``-fps_mode passthrough``), every audio stream
with its channel count and layout (PCM, which both NLEs read in a .mov), the source's
start timecode and reel name (a QuickTime tmcd track), and a frame size that is the
source's divided by a whole number (1/2, 1/3, 1/4, ...), both sides even.

This is separate from the catalog's review proxy (``stages/proxy.py``: small H.264 with
mono AAC for the browser); ``rayflow proxies`` makes these. Orientation: pixels are
scaled as coded (display rotation is not baked in), which is what a relink expects.
"""

from __future__ import annotations

import logging
import math
import secrets
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from rayflow.config import EditorCodec
from rayflow.media.encoders import editor_codec_args
from rayflow.media.ffmpeg_run import ProgressCallback, run_ffmpeg_progress
from rayflow.media.ffprobe import FfprobeOutput, run_ffprobe
from rayflow.media.tools import ToolError
from rayflow.stages.base import Resources, Stage

log = logging.getLogger(__name__)

PROXY_FOLDER = "Proxy"
DEFAULT_MAX_SIDE = 1920
"""Longest proxy side: 4K/UHD halves to 1920, 1080p stays whole unless --max-side is lower."""
MAX_DIVISOR = 16


@dataclass(frozen=True)
class AudioStream:
    index: int
    channels: int
    layout: str | None


@dataclass(frozen=True)
class EditorSource:
    """The source facts a relinkable proxy must keep (from one ffprobe)."""

    width: int
    height: int
    video_index: int
    frame_rate: str | None
    """ffprobe ``r_frame_rate``, e.g. ``24000/1001``."""
    duration_s: float | None
    timecode: str | None
    reel: str | None
    audio: tuple[AudioStream, ...]

    @classmethod
    def from_ffprobe(cls, probe: FfprobeOutput) -> EditorSource:
        """Raises ``ValueError`` when there is no video stream with a size."""
        streams = probe.streams
        video = next((s for s in streams if s.get("codec_type") == "video" and s.get("width")
                      and not (s.get("disposition") or {}).get("attached_pic")), None)
        if video is None:
            raise ValueError("no video stream")
        tmcd = [s for s in streams if (s.get("codec_tag_string") == "tmcd" or s.get("codec_type") == "data")]
        tag_sources = [video, *tmcd, {"tags": probe.format.get("tags") or {}}]
        timecode = _first_tag(tag_sources, "timecode")
        reel = _first_tag(tag_sources, "reel_name")
        audio = tuple(AudioStream(int(s["index"]), int(s.get("channels") or 0), s.get("channel_layout"))
                      for s in streams if s.get("codec_type") == "audio" and s.get("channels"))
        duration = _positive(video.get("duration")) or _positive(probe.format.get("duration"))
        return cls(width=int(video["width"]), height=int(video["height"]), video_index=int(video["index"]),
                   frame_rate=video.get("r_frame_rate"), duration_s=duration, timecode=timecode, reel=reel,
                   audio=audio)


def _first_tag(holders: list[dict[str, Any]], key: str) -> str | None:
    for holder in holders:
        value = (holder.get("tags") or {}).get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _positive(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def proxy_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The source size divided by the smallest whole number that brings the longest side
    to ``max_side`` or under with both sides even (4096x2160 -> 2048x1080 at 2048). When
    no divisor up to 16 divides evenly, the smallest fitting one with sides rounded down to even."""
    need = max(1, math.ceil(max(width, height) / max_side))
    for d in range(need, MAX_DIVISOR + 1):
        if width % d == 0 and height % d == 0 and (width // d) % 2 == 0 and (height // d) % 2 == 0:
            return width // d, height // d
    return max(2, width // need // 2 * 2), max(2, height // need // 2 * 2)


def proxy_path(source: Path, out_root: Path | None = None) -> Path:
    """``<folder of source>/Proxy/<stem>.mov`` (or ``<out_root>/Proxy/<stem>.mov``)."""
    return (out_root or source.parent) / PROXY_FOLDER / f"{source.stem}.mov"


def build_editor_argv(path: Path, *, out_path: Path, source: EditorSource, codec: EditorCodec,
                      max_side: int = DEFAULT_MAX_SIDE, threads: int = 2) -> list[str]:
    """The full ffmpeg argv (pure): every frame and timestamp, all audio as PCM, timecode + reel."""
    width, height = proxy_size(source.width, source.height, max_side)
    argv = ["ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-v", "error", "-progress", "pipe:1",
            "-noautorotate", "-threads", str(threads), "-i", "file:" + str(Path(path).resolve()),
            "-map", f"0:{source.video_index}"]
    for stream in source.audio:
        argv += ["-map", f"0:{stream.index}"]
    argv += ["-vf", f"scale={width}:{height}:flags=bicubic", "-fps_mode", "passthrough"]
    rate = source.frame_rate
    gop = max(1, round(float(Fraction(rate)))) if rate is not None and _valid_rate(rate) else 25
    argv += editor_codec_args(codec, threads=threads, gop=gop)
    if source.audio:
        argv += ["-c:a", "pcm_s24le" if codec != "h264" else "pcm_s16le"]
    else:
        argv += ["-an"]
    if source.timecode:
        argv += ["-timecode", source.timecode]
    if source.reel:
        argv += ["-metadata:s:v:0", f"reel_name={source.reel}"]
    argv += ["-map_metadata", "0", "-sn", "-dn", "-f", "mov", "-y", str(out_path)]
    return argv


def _valid_rate(rate: str | None) -> bool:
    try:
        return rate is not None and Fraction(rate) > 0
    except (ValueError, ZeroDivisionError):
        return False


@dataclass(frozen=True)
class EditorProxy:
    """What was written (observed by probing the output, not what was asked)."""

    path: Path
    codec: EditorCodec
    width: int
    height: int
    frame_rate: str | None
    duration_s: float | None
    timecode: str | None
    audio_channels: tuple[int, ...]
    reused: bool = False


def make_editor_proxy(path: Path, *, codec: EditorCodec = "prores_proxy", max_side: int = DEFAULT_MAX_SIDE,
                      out_root: Path | None = None, threads: int = 2, timeout_s: float = 3600.0,
                      force: bool = False, on_progress: ProgressCallback | None = None) -> EditorProxy:
    """Write ``Proxy/<stem>.mov`` for ``path`` (kept as is when it exists, unless ``force``).

    Written to a hidden temp beside it and renamed only after it probes with the source's
    frame rate, audio channel counts and timecode; ``ToolError`` otherwise (no partial file).
    """
    final = proxy_path(path, out_root)
    if final.exists() and not force:
        return _observed(final, codec, reused=True, timeout_s=min(60.0, timeout_s))
    source = EditorSource.from_ffprobe(run_ffprobe(path, timeout_s=min(120.0, timeout_s), packet_window=1))
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.stem}.{secrets.token_hex(4)}.tmp.mov")
    try:
        run_ffmpeg_progress(build_editor_argv(path, out_path=tmp, source=source, codec=codec, max_side=max_side,
                                              threads=threads),
                            timeout_s=timeout_s, path=path, duration_s=source.duration_s, on_progress=on_progress)
        made = _observed(tmp, codec, timeout_s=min(120.0, timeout_s))
        problems = _mismatches(source, made)
        if problems:
            raise ToolError("ffmpeg", path, "editor proxy does not match its source: " + "; ".join(problems))
        tmp.replace(final)
    finally:
        tmp.unlink(missing_ok=True)
    return EditorProxy(**{**made.__dict__, "path": final})


@dataclass
class EditorProxyStage(Stage[Path, EditorProxy]):
    """``make_editor_proxy`` as a stage (``rayflow proxies``): one relinkable proxy per source file.
    ``resources``: ``threads`` CPUs (an intra-frame encode keeps every ffmpeg thread busy)."""

    codec: EditorCodec = "prores_proxy"
    max_side: int = DEFAULT_MAX_SIDE
    out_root: Path | None = None
    """Where ``Proxy/`` folders go (None: beside each source)."""
    threads: int = 2
    timeout_s: float = 3600.0
    force: bool = False
    """Remake proxies that already exist."""
    on_progress: ProgressCallback | None = None
    resources: Resources = field(init=False)
    """``threads`` CPUs (derived in ``__post_init__``)."""
    name = "editor_proxy"

    def __post_init__(self) -> None:
        self.resources = Resources(cpus=self.threads)

    def process(self, item: Path) -> EditorProxy:
        return make_editor_proxy(item, codec=self.codec, max_side=self.max_side, out_root=self.out_root,
                                 threads=self.threads, timeout_s=self.timeout_s, force=self.force,
                                 on_progress=self.on_progress)


def _observed(file: Path, codec: EditorCodec, *, timeout_s: float, reused: bool = False) -> EditorProxy:
    src = EditorSource.from_ffprobe(run_ffprobe(file, timeout_s=timeout_s, packet_window=1))
    return EditorProxy(path=file, codec=codec, width=src.width, height=src.height, frame_rate=src.frame_rate,
                       duration_s=src.duration_s, timecode=src.timecode,
                       audio_channels=tuple(a.channels for a in src.audio), reused=reused)


def _mismatches(source: EditorSource, made: EditorProxy) -> list[str]:
    problems = []
    if _valid_rate(source.frame_rate) and _valid_rate(made.frame_rate) \
            and Fraction(source.frame_rate) != Fraction(made.frame_rate):  # type: ignore[arg-type]
        problems.append(f"frame rate {made.frame_rate} != {source.frame_rate}")
    if tuple(a.channels for a in source.audio) != made.audio_channels:
        problems.append(f"audio channels {made.audio_channels} != {tuple(a.channels for a in source.audio)}")
    if source.timecode and made.timecode != source.timecode:
        problems.append(f"timecode {made.timecode} != {source.timecode}")
    if source.duration_s and made.duration_s and abs(source.duration_s - made.duration_s) > 0.1:
        problems.append(f"duration {made.duration_s:.3f} s != {source.duration_s:.3f} s")
    return problems
