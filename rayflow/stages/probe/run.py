"""Running the three tools once per file and merging their outputs (``probe``, ``consolidate``)."""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rayflow.config import Timeouts
from rayflow.media.exiftool import ExiftoolOutput, run_exiftool
from rayflow.media.ffprobe import FfprobeOutput, run_ffprobe, scan_duration
from rayflow.media.mediainfo import MediainfoOutput, run_mediainfo
from rayflow.media.parse import (
    nth,
    number,
)
from rayflow.media.tools import ToolError, ToolTimeout
from rayflow.record import (
    AudioTrack,
    CameraInfo,
    CaptureInfo,
    ContainerInfo,
    MediaKind,
    StageName,
    SubtitleTrack,
    VideoInfo,
)
from rayflow.stages.base import FileItem, Resources, Stage
from rayflow.stages.probe.camera import Tags, camera_info
from rayflow.stages.probe.capture import capture_info
from rayflow.stages.probe.container import (
    container_info,
    media_kind,
    other_video_streams,
    packet_duration,
    video_ordinal,
)
from rayflow.stages.probe.log_profile import log_profile, read_sidecars
from rayflow.stages.probe.still import exiftool_still
from rayflow.stages.probe.timecode import reel_name, timecode_info
from rayflow.stages.probe.tracks import audio_tracks, subtitle_tracks
from rayflow.stages.probe.video import video_info

log = logging.getLogger(__name__)

EMBEDDED_MAX_DURATION_S = 300.0
"""exiftool reads embedded telemetry (-ee) only for clips up to this long: ~2.7 s of
exiftool time for 5 min of GoPro GPMF, growing linearly beyond."""


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
    and adds a warning. Beyond the three tools, a container that declares no duration
    and holds more packets than ffprobe's window costs one more demux-only ffprobe pass
    (``scan_duration``), and camera sidecars beside the file (``<clip>M01.XML``) are read.
    """
    path = Path(path)
    _check_regular_file(path)
    timeout_s = timeouts.probe_s
    warnings: list[str] = []
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="probe") as pool:
        mi_future = pool.submit(run_mediainfo, path, timeout_s=timeout_s)
        try:
            ff = run_ffprobe(path, timeout_s=timeout_s)
        except ToolTimeout:
            mi_future.cancel()
            raise
        except ToolError as exc:
            mi_future.cancel()
            return _still_or_raise(path, exc, timeout_s=timeout_s)
        except BaseException:
            mi_future.cancel()
            raise
        embedded = _wants_embedded(ff, warnings)
        ex_future = pool.submit(run_exiftool, path, timeout_s=timeout_s, embedded=embedded)
        mi = _optional(mi_future, warnings)
        ex = _optional(ex_future, warnings)
    declared = number(ff.format.get("duration"))
    doubted = (mi is not None and mi.is_truncated) or any("truncated" in w.lower() for w in (ex.warnings if ex else []))
    if (declared is None or doubted) and not ff.window_is_whole_file:
        # No declared duration (browser WebM): time it from the packets. A tool doubting the
        # file: check the packets reach the duration the container declares (see _check_truncation).
        ff = replace(ff, scanned_duration_s=scan_duration(path, timeout_s=timeout_s))
    return consolidate(path, ff, mi, ex, warnings=warnings, sidecars=read_sidecars(path))


class ProbeStage(Stage[FileItem, ProbeResult]):
    """``probe`` as a stage: writes ``item.probe``. One CPU: the three tools are mostly waiting
    on the disk, and run two at a time (measured 0.15-0.4 s per file on a 2-core box).
    Raises like ``probe`` (``ToolError``: record it; ``ToolTimeout``: retry)."""

    name: StageName = "probe"
    resources = Resources(cpus=1)

    def __init__(self, timeouts: Timeouts = Timeouts()) -> None:
        self.timeouts = timeouts

    def process(self, item: FileItem) -> ProbeResult:
        item.probe = probe(Path(item.path), timeouts=self.timeouts)
        return item.probe


def consolidate(
    path: Path,
    ff: FfprobeOutput,
    mi: MediainfoOutput | None,
    ex: ExiftoolOutput | None,
    *,
    warnings: list[str] | None = None,
    sidecars: dict[str, str] | None = None,
) -> ProbeResult:
    """Merge the three tools' outputs (and camera ``sidecars``: file name -> text) into a
    ``ProbeResult`` (pure; no tools run).

    Raises ``ToolError`` for a file with no streams or that ffprobe finds truncated.
    """
    warnings = list(warnings or [])
    _check_truncation(path, ff, mi, ex, warnings)
    if not ff.streams:
        raise ToolError("ffprobe", path, "no streams at all (format "
                        f"{ff.format.get('format_name')!r}): nothing to catalogue")
    kind, video_stream = media_kind(ff)
    is_image = kind == "image"

    container = container_info(ff, mi, is_image)
    video = None
    if video_stream is not None:
        mi_video = nth(mi.video if mi else [], video_ordinal(ff, video_stream))
        if mi_video is None and mi and is_image:
            mi_video = nth(mi.image, 0)
        video = video_info(ff, video_stream, mi_video, ex, is_image, warnings,
                           container_duration_s=container.duration_s)
        profile = log_profile(ex, ff, sidecars)
        video = video.model_copy(update={
            "color": video.color.model_copy(update={"log_profile": profile}),
            "other_streams": other_video_streams(ff, video_stream),
        })
    if not is_image:
        container = container.model_copy(update={
            "timecode": timecode_info(ff, mi, ex, video.fps if video else None),
            "reel": reel_name(ff, ex),
        })
    audio = audio_tracks(ff, mi, container_duration_s=container.duration_s)
    subtitles = subtitle_tracks(ff, mi)
    tags = Tags(ex, ff)
    camera = camera_info(tags)
    capture = capture_info(tags, mi, warnings)

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


def _still_or_raise(path: Path, error: ToolError, *, timeout_s: float) -> ProbeResult:
    """A still ffprobe cannot open (HEIC on ffmpeg < 7) from exiftool alone; else ``error``."""
    try:
        ex = run_exiftool(path, timeout_s=timeout_s)
    except ToolTimeout:
        raise
    except ToolError:
        raise error from None
    still = exiftool_still(ex)
    if still is None:
        raise error
    container, video = still
    tags = Tags(ex, FfprobeOutput(format={}, streams=[]))
    warnings = [f"{error}; facts from exiftool alone"]
    capture = capture_info(tags, None, warnings)
    tools = {"exiftool": ex.version} if ex.version else {}
    return ProbeResult("image", container, video, camera=camera_info(tags), capture=capture,
                       tools=tools, warnings=warnings)


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
    duration = number(ff.format.get("duration"))
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


TRUNCATED_SHARE = 0.9
"""A file whose packets cover less than this share of its declared duration, while mediainfo or
exiftool call it truncated, is cut off (a half-copied MKV covers ~0.5); a browser WebM declares
no duration, so it is never failed this way."""


def _check_truncation(
    path: Path, ff: FfprobeOutput, mi: MediainfoOutput | None, ex: ExiftoolOutput | None,
    warnings: list[str],
) -> None:
    """ffprobe's own evidence ("partial file") fails the file, with the other tools' notes
    beside it; mediainfo's IsTruncated or an exiftool warning alone never vetoes a file
    ffprobe read: a browser's MediaRecorder WebM declares no duration, so mediainfo calls
    it truncated, yet every player plays it. Their opinion becomes a warning."""
    evidence: list[tuple[str, str]] = []
    for line in ff.stderr.splitlines():
        if "partial file" in line:
            evidence.append(("ffprobe", line.split("] ", 1)[-1].strip()))
            break
    opinions: list[tuple[str, str]] = []
    if mi is not None and mi.is_truncated:
        opinions.append(("mediainfo", "IsTruncated"))
    if ex is not None:
        # "[minor]" warnings (e.g. a cut maker-note preview) do not mean the media is cut.
        opinions.extend(("exiftool", w) for w in ex.warnings
                        if "truncated" in w.lower() and not w.startswith("[minor]"))
    declared = number(ff.format.get("duration"))
    held = packet_duration(ff) if opinions and not evidence and declared else None
    if declared and held is not None and held < TRUNCATED_SHARE * declared:
        # The container promises more than its packets hold: cut off, not a recorder's quirk.
        evidence.append(("ffprobe", f"packets end at {held:.2f} s of the {declared:.2f} s the container declares"))
    if evidence:
        detail = "; ".join(f"{tool}: {what}" for tool, what in evidence + opinions)
        raise ToolError("ffprobe", path, f"truncated or corrupt file ({detail})")
    if opinions:
        detail = "; ".join(f"{tool}: {what}" for tool, what in opinions)
        warnings.append(f"possibly truncated ({detail}), but ffprobe read the streams without "
                        "error; catalogued as read")
