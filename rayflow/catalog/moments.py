"""From a ``ClipRecord`` to the texts that get embedded and searched. Pure: no model, no I/O.

Per clip: a summary (description, caption, tags, file name), the transcript (in
chunks that fit the text model's window), a technical text (camera, lens, codec,
resolution, HDR, date, place), and one keyword text holding all of them.

Per moment: a stretch of the timeline a search can land on, with its own text:

- ``speech``       consecutive transcript segments, cut at shot boundaries, pauses
                   longer than ``max_gap_s`` and windows longer than ``max_window_s``,
                   plus what is on screen meanwhile and the shot's tags;
- ``screen_text``  on-screen text shown while nobody speaks (overlapping events merged);
- ``shot``         a shot with neither speech nor on-screen text: its tags (people,
                   shot scale) and the clip's tags — mostly useful with image vectors.

Every moment carries its time range and the best frame inside it (the highest-ranked
thumbnail in range, else the nearest thumbnail by time). Moment order and indexes are
deterministic, so point ids ``uuid5(clip_id, index)`` are stable across re-ingests.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Literal

from rayflow.record import ClipRecord, FaceFrame, ScreenText, SpeechSegment

MomentKind = Literal["speech", "screen_text", "shot"]

MAX_WINDOW_S = 12.0
"""Longest speech moment. Shorter lands closer to the spoken words; longer gives the
model more context. 12 s is 2-4 Whisper segments."""
MAX_GAP_S = 3.0
"""A pause longer than this starts a new speech moment."""
CHUNK_WORDS = 150
"""Transcript chunk size for the clip-level transcript vector (MiniLM reads ~190 words)."""


@dataclass(frozen=True)
class Moment:
    """One searchable stretch of a clip."""

    index: int
    kind: MomentKind
    start_s: float
    end_s: float
    speech: str = ""
    """What is said in this stretch."""
    screen_text: str = ""
    """What is written on screen in this stretch."""
    tags: tuple[str, ...] = ()
    """The shot's tags (people, scale), then for ``shot`` moments the clip's tags."""
    shot_index: int | None = None
    thumbnail_path: str | None = None
    thumbnail_s: float | None = None

    @property
    def text(self) -> str:
        """The text embedded and shown for this moment."""
        parts: list[str] = []
        if self.speech:
            parts.append(self.speech)
        if self.screen_text:
            parts.append(f"On screen: {self.screen_text}.")
        if self.tags:
            parts.append(f"Shot: {', '.join(self.tags)}.")
        return " ".join(parts)


@dataclass(frozen=True)
class ClipTexts:
    """The clip-level texts of one record."""

    summary: str
    transcript_chunks: list[str] = field(default_factory=list)
    """Empty when the clip has no speech (then it gets no transcript vector)."""
    technical: str = ""
    keywords: str = ""
    """Everything keyword-searchable (BM25): name, summary, transcript, screen text, technical."""


def moment_point_id(clip_id: str, index: int) -> str:
    """Deterministic point id of a moment, so a re-ingest overwrites instead of adding."""
    return str(uuid.uuid5(uuid.UUID(clip_id), str(index)))


def name_words(path_or_name: str) -> str:
    """``/x/Interview_Mayor-02.mp4`` -> ``Interview Mayor 02`` (file names often say what is in them)."""
    stem = PurePath(path_or_name).stem
    return re.sub(r"[_\-.]+", " ", stem).strip()


# ----------------------------------------------------------------------------- per-shot tags

CLIP_PEOPLE_TAGS = frozenset({"close-up", "medium-shot", "wide-shot", "no-people", "person", "people", "group"})
"""Clip-level tags (rayflow.stages.describe) that per-shot people/scale tags replace."""


def _people_tags(frames: list[FaceFrame]) -> tuple[str, ...]:
    """Shot scale from the tallest face: >= 35 % of the frame close-up, >= 12 % medium, else wide."""
    if not frames:
        return ()
    faces = max(f.faces for f in frames)
    if faces == 0:
        return ("no people",)
    tallest = max(f.largest_face_height for f in frames)
    scale = "close-up" if tallest >= 0.35 else "medium shot" if tallest >= 0.12 else "wide shot"
    people = "one person" if faces == 1 else "two people" if faces == 2 else "group of people"
    return (scale, people)


def _frames_in(record: ClipRecord, start_s: float, end_s: float) -> list[FaceFrame]:
    faces = record.analysis.faces if record.analysis else None
    if faces is None:
        return []
    return [f for f in faces.frames if start_s <= f.timestamp_s <= end_s]


# ----------------------------------------------------------------------------- best frame

def best_frame(record: ClipRecord, start_s: float, end_s: float) -> tuple[str | None, float | None]:
    """The frame to show for ``[start_s, end_s]``: the best-ranked thumbnail inside the
    range, else any thumbnail inside it, else the nearest thumbnail by time (None if none)."""
    ranked = list(record.analysis.best_thumbnails) if record.analysis else []
    inside = [t for t in ranked if start_s <= t.timestamp_s <= end_s]
    if inside:
        top = max(inside, key=lambda t: t.score)
        return top.path, top.timestamp_s
    candidates = [(t.path, t.timestamp_s) for t in ranked] + [(t.path, t.timestamp_s) for t in record.thumbnails]
    if not candidates:
        return None, None
    middle = (start_s + end_s) / 2
    plain_inside = [c for c in candidates if start_s <= c[1] <= end_s]
    pool = plain_inside or candidates
    path, ts = min(pool, key=lambda c: abs(c[1] - middle))
    return path, ts


# ----------------------------------------------------------------------------- moments

def _overlaps(a0: float, a1: float, b0: float, b1: float) -> bool:
    return a0 <= b1 and b0 <= a1


def _shot_at(shots: list[tuple[int, float, float]], t: float) -> int | None:
    for index, s0, s1 in shots:
        if s0 <= t < s1 or (t == s1 and index == shots[-1][0]):
            return index
    return None


def _speech_windows(segments: list[SpeechSegment], shots: list[tuple[int, float, float]],
                    max_window_s: float, max_gap_s: float) -> list[list[SpeechSegment]]:
    windows: list[list[SpeechSegment]] = []
    current: list[SpeechSegment] = []
    current_shot: int | None = None
    for seg in segments:
        shot = _shot_at(shots, (seg.start_s + seg.end_s) / 2)
        if current and (
            seg.end_s - current[0].start_s > max_window_s
            or seg.start_s - current[-1].end_s > max_gap_s
            or shot != current_shot
        ):
            windows.append(current)
            current = []
        if not current:
            current_shot = shot
        current.append(seg)
    if current:
        windows.append(current)
    return windows


def _join_screen(texts: list[ScreenText]) -> str:
    seen: list[str] = []
    for t in sorted(texts, key=lambda t: (t.start_s, -t.confidence)):
        clean = " ".join(t.text.split())
        if clean and clean not in seen:
            seen.append(clean)
    return " / ".join(seen)


def build_moments(record: ClipRecord, *, max_window_s: float = MAX_WINDOW_S,
                  max_gap_s: float = MAX_GAP_S) -> list[Moment]:
    """The clip's moments, ordered by start time, indexed from 0. Empty when the record
    has no analysis (or nothing in it has a time range)."""
    analysis = record.analysis
    if analysis is None:
        return []
    shots = sorted(((s.index, s.start_s, s.end_s) for s in (analysis.shots.shots if analysis.shots else [])),
                   key=lambda s: s[1])
    segments = sorted((s for s in (analysis.speech.segments if analysis.speech else []) if s.text.strip()),
                      key=lambda s: s.start_s)
    screen = sorted((t for t in analysis.screen_text if t.text.strip()), key=lambda t: t.start_s)

    drafts: list[Moment] = []
    used_screen: set[int] = set()
    for window in _speech_windows(segments, shots, max_window_s, max_gap_s):
        start_s, end_s = window[0].start_s, window[-1].end_s
        on_screen = [t for t in screen if _overlaps(start_s, end_s, t.start_s, t.end_s)]
        used_screen.update(id(t) for t in on_screen)
        shot = _shot_at(shots, (start_s + end_s) / 2)
        drafts.append(Moment(
            index=-1, kind="speech", start_s=start_s, end_s=end_s,
            speech=" ".join(" ".join(s.text.split()) for s in window),
            screen_text=_join_screen(on_screen),
            tags=_people_tags(_frames_in(record, start_s, end_s)),
            shot_index=shot,
        ))

    # On-screen text nobody speaks over: merge events whose time ranges overlap.
    groups: list[list[ScreenText]] = []
    for t in (t for t in screen if id(t) not in used_screen):
        if groups and t.start_s <= max(g.end_s for g in groups[-1]):
            groups[-1].append(t)
        else:
            groups.append([t])
    for group in groups:
        start_s, end_s = min(t.start_s for t in group), max(t.end_s for t in group)
        drafts.append(Moment(
            index=-1, kind="screen_text", start_s=start_s, end_s=end_s,
            screen_text=_join_screen(group),
            tags=_people_tags(_frames_in(record, start_s, end_s)),
            shot_index=_shot_at(shots, (start_s + end_s) / 2),
        ))

    # The clip's people/scale tags describe the whole clip; a shot moment has its own
    # (from that shot's frames), so the clip's are left out rather than contradicting them.
    clip_tags = tuple(t for t in analysis.tags if t.strip() and t not in CLIP_PEOPLE_TAGS)
    covered = [(m.start_s, m.end_s) for m in drafts]
    for index, s0, s1 in shots:
        if any(_overlaps(s0, s1, c0, c1) for c0, c1 in covered):
            continue
        tags = _people_tags(_frames_in(record, s0, s1)) + tuple(t for t in clip_tags if t)
        drafts.append(Moment(index=-1, kind="shot", start_s=s0, end_s=s1,
                             tags=tuple(dict.fromkeys(tags)), shot_index=index))

    drafts.sort(key=lambda m: (m.start_s, m.end_s, m.kind))
    moments: list[Moment] = []
    for i, m in enumerate(drafts):
        path, ts = best_frame(record, m.start_s, m.end_s)
        moments.append(Moment(
            index=i, kind=m.kind, start_s=round(m.start_s, 3), end_s=round(m.end_s, 3),
            speech=m.speech, screen_text=m.screen_text, tags=m.tags, shot_index=m.shot_index,
            thumbnail_path=path, thumbnail_s=ts,
        ))
    return moments


# ----------------------------------------------------------------------------- clip texts

_CODEC_NAMES = {
    "h264": "H.264 AVC", "hevc": "HEVC H.265", "av1": "AV1", "vp9": "VP9", "vp8": "VP8",
    "prores": "Apple ProRes", "mpeg2video": "MPEG-2", "mpeg4": "MPEG-4 Part 2", "dnxhd": "Avid DNxHD/DNxHR",
    "mjpeg": "Motion JPEG", "rawvideo": "uncompressed",
}


def _resolution_words(width: int, height: int) -> str:
    long_side, short_side = max(width, height), min(width, height)
    label = ("8K" if long_side >= 7680 else "4K UHD" if long_side >= 3840 else "2.7K" if long_side >= 2704
             else "1080p Full HD" if short_side >= 1080 else "720p HD" if short_side >= 720
             else "SD standard definition")
    orientation = "vertical portrait" if height > width else "horizontal landscape"
    return f"{width}x{height} {label} {orientation}"


def technical_text(record: ClipRecord) -> str:
    """Camera, lens, codec, resolution, frame rate, HDR, audio, date and place as words,
    so "4K HDR footage from the Sony" finds its clips semantically too."""
    parts: list[str] = []
    cam = record.camera
    camera = " ".join(p for p in (cam.make, cam.model) if p)
    if camera:
        parts.append(f"Shot on {camera}.")
    if cam.lens:
        parts.append(f"Lens {cam.lens}.")
    focal = cam.focal_category or (record.analysis.focal.category if record.analysis and record.analysis.focal
                                   else None)
    if focal:
        mm = cam.focal_length_35mm
        parts.append(f"{focal} lens" + (f" {mm:g} mm." if mm else "."))
    video = record.video
    if video:
        if video.codec:
            name = _CODEC_NAMES.get(video.codec.lower(), video.codec)
            depth = f" {video.bit_depth}-bit" if video.bit_depth else ""
            chroma = f" {video.chroma_subsampling}" if video.chroma_subsampling else ""
            parts.append(f"{name} ({video.codec}){depth}{chroma} video.")
        if video.width and video.height:
            parts.append(_resolution_words(video.display_width or video.width,
                                           video.display_height or video.height) + ".")
        if video.fps:
            parts.append(f"{video.fps:.3g} fps" + (" slow motion high frame rate." if video.fps >= 90 else "."))
        if video.hdr.is_hdr:
            parts.append(f"HDR {video.hdr.format or ''} high dynamic range.".replace("  ", " "))
        else:
            parts.append("SDR.")
    duration = (record.container.duration_s if record.container else None) or (video.duration_s if video else None)
    if duration:
        parts.append(f"{duration:.0f} seconds long.")
    if record.audio_tracks:
        track = record.audio_tracks[0]
        layout = track.channel_layout or (f"{track.channels} channels" if track.channels else "")
        parts.append(f"Audio {track.codec or ''} {layout}".strip() + ".")
    elif record.kind == "video":
        parts.append("No audio.")
    created = record.capture.created_at
    if created:
        parts.append(f"Recorded {created:%Y-%m-%d} ({created:%B %Y}, {created:%A}).")
    gps = record.capture.gps
    if gps:
        parts.append(f"Location {gps.lat:.4f}, {gps.lon:.4f}.")
    return " ".join(parts)


def summary_text(record: ClipRecord) -> str:
    """Description and caption (what the clip is about), tags, and the file name's words."""
    analysis = record.analysis
    parts: list[str] = []
    if analysis and analysis.description:
        parts.append(analysis.description.strip())
    if analysis and analysis.caption:
        parts.append(analysis.caption.strip())
    if analysis and analysis.tags:
        parts.append("Tags: " + ", ".join(analysis.tags) + ".")
    words = name_words(record.file.name)
    if words:
        parts.append(f"File: {words}.")
    return " ".join(p for p in parts if p)


def transcript_chunks(record: ClipRecord, *, chunk_words: int = CHUNK_WORDS) -> list[str]:
    """The transcript in chunks of about ``chunk_words`` words (whole segments where possible)."""
    speech = record.analysis.speech if record.analysis else None
    if speech is None:
        return []
    pieces = [s.text.strip() for s in speech.segments if s.text.strip()] or (
        [speech.text.strip()] if speech.text.strip() else [])
    chunks: list[str] = []
    current: list[str] = []
    count = 0
    for piece in pieces:
        words = piece.split()
        while len(words) > chunk_words:  # one very long segment: split it
            if current:
                chunks.append(" ".join(current))
                current, count = [], 0
            chunks.append(" ".join(words[:chunk_words]))
            words = words[chunk_words:]
        if count + len(words) > chunk_words and current:
            chunks.append(" ".join(current))
            current, count = [], 0
        current.append(" ".join(words))
        count += len(words)
    if current:
        chunks.append(" ".join(current))
    return chunks


def clip_texts(record: ClipRecord) -> ClipTexts:
    """All clip-level texts of a record."""
    chunks = transcript_chunks(record)
    technical = technical_text(record)
    summary = summary_text(record)
    analysis = record.analysis
    screen = _join_screen(list(analysis.screen_text)) if analysis else ""
    keywords = " ".join(p for p in (
        name_words(record.file.name), summary, " ".join(chunks), screen, technical,
    ) if p)
    return ClipTexts(summary=summary, transcript_chunks=chunks, technical=technical, keywords=keywords)


def moment_keywords(record: ClipRecord, moment: Moment) -> str:
    """The BM25 text of a moment: its own text plus the file name's words."""
    return " ".join(p for p in (moment.text, name_words(record.file.name)) if p)
