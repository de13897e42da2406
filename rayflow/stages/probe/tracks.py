"""Audio and subtitle tracks."""

from __future__ import annotations

from typing import Any

from rayflow.media.ffprobe import FfprobeOutput
from rayflow.media.mediainfo import MediainfoOutput
from rayflow.media.parse import (
    clean,
    disposition,
    integer,
    nth,
    tag,
)
from rayflow.record import (
    AudioTrack,
    SubtitleTrack,
)
from rayflow.stages.probe.video import stream_duration


def audio_tracks(
    ff: FfprobeOutput, mi: MediainfoOutput | None, *, container_duration_s: float | None = None
) -> list[AudioTrack]:
    """Every audio stream; ``container_duration_s`` stands in for a duration no tool gives per stream."""
    tracks = []
    streams = [s for s in ff.streams if s.get("codec_type") == "audio"]
    for ordinal, st in enumerate(streams):
        info = nth(mi.audio if mi else [], ordinal) or {}
        tags = st.get("tags") or {}
        bits = integer(st.get("bits_per_raw_sample")) or integer(st.get("bits_per_sample"))
        tracks.append(AudioTrack(
            index=int(st["index"]),
            codec=st.get("codec_name"),
            profile=clean(st.get("profile")),
            channels=integer(st.get("channels")) or integer(info.get("Channels")),
            channel_layout=clean(st.get("channel_layout")),
            sample_rate=integer(st.get("sample_rate")) or integer(info.get("SamplingRate")),
            bit_depth=bits or integer(info.get("BitDepth")),
            bitrate_bps=integer(st.get("bit_rate")) or integer(tag(tags, "BPS")) or integer(info.get("BitRate")),
            language=_language(tags, info),
            title=tag(tags, "title"),
            default=disposition(st, "default"),
            duration_s=stream_duration(st, tags, info) or container_duration_s,
        ))
    return tracks


def subtitle_tracks(ff: FfprobeOutput, mi: MediainfoOutput | None) -> list[SubtitleTrack]:
    tracks = []
    streams = [s for s in ff.streams if s.get("codec_type") == "subtitle"]
    for ordinal, st in enumerate(streams):
        info = nth(mi.text if mi else [], ordinal) or {}
        tags = st.get("tags") or {}
        tracks.append(SubtitleTrack(
            index=int(st["index"]),
            codec=st.get("codec_name"),
            language=_language(tags, info),
            title=tag(tags, "title"),
            forced=disposition(st, "forced"),
            default=disposition(st, "default"),
        ))
    return tracks


def _language(tags: dict[str, Any], mi: dict[str, Any]) -> str | None:
    """ISO 639 code as tagged; 'und' (undetermined) is None. mediainfo only when ffprobe has no tag."""
    lang = tag(tags, "language")
    if lang is None:
        lang = clean(mi.get("Language"))
    return None if lang is None or lang.lower() in ("und", "unknown", "zxx") else lang
