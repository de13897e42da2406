"""Search hits or chosen clips as an editing timeline: EDL, OTIO, FCP XML or CSV.

One event per hit, cut from the source at the moment found, in source timecode (the
clip's start timecode plus the hit's offset). Timelines are built with OpenTimelineIO
and written by its adapters (``otio-cmx3600-adapter`` for CMX 3600 EDL,
``otio-fcp-adapter`` for Final Cut Pro 7 XML, which Premiere and Resolve import) rather
than by hand; CSV is a plain table for spreadsheets and logging tools.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeGuard

import opentimelineio as otio  # type: ignore[import-untyped]

ExportFormat = Literal["edl", "otio", "fcpxml", "csv"]
FORMATS: tuple[ExportFormat, ...] = ("edl", "otio", "fcpxml", "csv")


def is_export_format(value: str) -> TypeGuard[ExportFormat]:
    """True for a format ``write`` can produce (``FORMATS``)."""
    return value in FORMATS
DEFAULT_FPS = 25.0
"""Rate assumed for a clip whose record has no video frame rate (stills, audio); said in the event's note."""
RECORD_START = "01:00:00:00"
"""Where the timeline's record side starts in OTIO and FCP XML (the editors' convention for a
programme); the CMX 3600 writer numbers its record column from 00:00:00:00 regardless."""
_TC = re.compile(r"^\d{1,2}[:;.]\d{2}[:;.]\d{2}[:;.]\d{2,3}$")


@dataclass(frozen=True)
class Event:
    """One timeline event: a stretch of one source clip, in seconds from the clip's start."""

    clip_id: str
    name: str
    path: str
    reel: str
    fps: float
    start_tc: str
    """Source start timecode HH:MM:SS:FF (``00:00:00:00`` when the file carries none)."""
    in_s: float
    out_s: float
    comment: str = ""
    matched: tuple[str, ...] = ()
    note: str = ""
    duration_s: float | None = None

    def source_range(self) -> otio.opentime.TimeRange:
        start = _tc_frames(self.start_tc, self.fps)
        first = start + round(self.in_s * self.fps)
        frames = max(1, round((self.out_s - self.in_s) * self.fps))
        return otio.opentime.TimeRange(otio.opentime.RationalTime(first, self.fps),
                                       otio.opentime.RationalTime(frames, self.fps))


def _tc_frames(tc: str, fps: float) -> int:
    return int(otio.opentime.from_timecode(tc.replace(";", ":").replace(".", ":"), fps).value)


def _first_str(*values: object) -> str | None:
    for value in values:
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def record_timecode(record: Any) -> str | None:
    """The record's start timecode: the probe's ``container.timecode.start`` (QuickTime tmcd,
    MXF, MTS, BWF), else, read defensively, a ``timecode`` field (string or an object with
    ``start``/``value``) on the record or its video, else the container tag."""
    found = []
    for holder in (getattr(record, "container", None), record, getattr(record, "video", None)):
        tc = getattr(holder, "timecode", None)
        found += [tc, getattr(tc, "start", None), getattr(tc, "value", None)]
    container = getattr(record, "container", None)
    tags = getattr(container, "tags", None) or {}
    found += [tags.get("timecode")]
    for candidate in found:
        if isinstance(candidate, str) and _TC.match(candidate.strip()):
            return candidate.strip()
    return None


def record_reel(record: Any) -> str:
    """Reel (tape) name: the probe's ``container.reel``, a ``reel`` field or tag, else the file's stem."""
    tc = getattr(record, "timecode", None)
    container = getattr(record, "container", None)
    tags = getattr(container, "tags", None) or {}
    reel = _first_str(getattr(container, "reel", None), getattr(record, "reel", None), getattr(tc, "reel", None),
                      tags.get("reel_name"))
    return reel or Path(record.file.name).stem


def record_fps(record: Any) -> float | None:
    video = getattr(record, "video", None)
    ratio = getattr(video, "r_frame_rate", None)
    if isinstance(ratio, str) and "/" in ratio:
        num, den = ratio.split("/", 1)
        if num.isdigit() and den.isdigit() and int(den) and int(num):
            return int(num) / int(den)
    fps = getattr(video, "fps", None)
    return float(fps) if fps else None


def event_for(record: Any, in_s: float | None, out_s: float | None, *, comment: str = "",
              matched: tuple[str, ...] = ()) -> Event:
    """An event for ``record`` from ``in_s`` to ``out_s`` (the whole clip when they are None)."""
    fps = record_fps(record)
    note = "" if fps else f"no frame rate in the record; {DEFAULT_FPS:g} fps assumed"
    duration = (getattr(getattr(record, "video", None), "duration_s", None)
                or getattr(getattr(record, "container", None), "duration_s", None))
    start = max(0.0, in_s or 0.0)
    end = out_s if out_s is not None else duration
    if end is None or end <= start:
        end = start + 1.0 / (fps or DEFAULT_FPS)
    return Event(clip_id=record.clip_id, name=record.file.name, path=record.file.path, reel=record_reel(record),
                 fps=fps or DEFAULT_FPS, start_tc=record_timecode(record) or "00:00:00:00", in_s=start, out_s=end,
                 comment=comment, matched=matched, note=note, duration_s=duration)


def events_for_hits(catalog: Any, hits: list[Any], query: str) -> list[Event]:
    """One event per search hit (``catalog.search.Hit``), its record read from ``catalog``; the
    query's content words found in the hit's text are the event's matched words."""
    from rayflow.catalog.search import STOPWORDS, query_terms

    terms = [t for t in query_terms(query) if t not in STOPWORDS] or query_terms(query)
    events = []
    for hit in hits:
        record = catalog.get(hit.clip_id)
        if record is None:
            continue
        said = set(query_terms(hit.text))
        events.append(event_for(record, hit.start_s, hit.end_s, comment=hit.text,
                                matched=tuple(t for t in terms if t in said)))
    return events


MEDIA_TYPES: dict[str, tuple[str, str]] = {
    "edl": ("text/plain; charset=utf-8", ".edl"), "otio": ("application/json", ".otio"),
    "fcpxml": ("application/xml", ".xml"), "csv": ("text/csv; charset=utf-8", ".csv"),
}
"""Content type and file extension of each format (the web page's download)."""


def build_timeline(events: list[Event], name: str) -> otio.schema.Timeline:
    """A one-video-track timeline of ``events`` in order, at the first event's frame rate."""
    rate = events[0].fps if events else DEFAULT_FPS
    timeline = otio.schema.Timeline(name=name)
    timeline.global_start_time = otio.opentime.from_timecode(RECORD_START, rate)
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    timeline.tracks.append(track)
    for ev in events:
        available = None
        if ev.duration_s:
            start = _tc_frames(ev.start_tc, ev.fps)
            available = otio.opentime.TimeRange(otio.opentime.RationalTime(start, ev.fps),
                                                otio.opentime.RationalTime(round(ev.duration_s * ev.fps), ev.fps))
        ref = otio.schema.ExternalReference(target_url=Path(ev.path).as_uri() if ev.path.startswith("/") else ev.path,
                                            available_range=available)
        comments = [c for c in (f"MATCHED: {' '.join(ev.matched)}" if ev.matched else "",
                                f"TEXT: {_one_line(ev.comment)}" if ev.comment else "",
                                f"NOTE: {ev.note}" if ev.note else "") if c]
        clip = otio.schema.Clip(name=ev.name, media_reference=ref, source_range=ev.source_range(),
                                metadata={"cmx_3600": {"reel": _edl_reel(ev.reel), "comments": comments},
                                          "rayflow": {"clip_id": ev.clip_id, "in_s": ev.in_s, "out_s": ev.out_s,
                                                      "reel": ev.reel, "matched": list(ev.matched)}})
        track.append(clip)
    return timeline


def _one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _edl_reel(reel: str) -> str:
    """CMX 3600 reels are 8 characters of letters and digits."""
    return (re.sub(r"[^A-Za-z0-9]", "", reel) or "AX")[:8].upper()


def write(events: list[Event], fmt: ExportFormat, out: Path, *, name: str = "rayflow export") -> Path:
    """Write ``events`` to ``out`` in ``fmt``; returns ``out``."""
    match fmt:
        case "csv":
            _write_csv(events, out)
        case "edl":
            otio.adapters.write_to_file(build_timeline(events, name), str(out), adapter_name="cmx_3600")
        case "otio":
            otio.adapters.write_to_file(build_timeline(events, name), str(out), adapter_name="otio_json")
        case "fcpxml":
            otio.adapters.write_to_file(build_timeline(events, name), str(out), adapter_name="fcp_xml")
        case _:
            raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    return out


def _write_csv(events: list[Event], out: Path) -> None:
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["event", "clip_id", "name", "reel", "fps", "source_in", "source_out", "in_s", "out_s",
                         "matched", "text", "note", "path"])
        for n, ev in enumerate(events, start=1):
            rng = ev.source_range()
            writer.writerow([n, ev.clip_id, ev.name, ev.reel, f"{ev.fps:.3f}",
                             otio.opentime.to_timecode(rng.start_time, ev.fps),
                             otio.opentime.to_timecode(rng.end_time_exclusive(), ev.fps),
                             f"{ev.in_s:.3f}", f"{ev.out_s:.3f}", " ".join(ev.matched), _one_line(ev.comment, 500),
                             ev.note, ev.path])
