"""Compare rayflow's probe with the tools' truth for the real-file corpus.

``truth.json`` holds, for each file under ``files/``, the technical facts that
ffprobe 5.1 and exiftool 12.57 show, read by a person (MANIFEST.md says how).
Each fact is a dotted name that maps onto ``ProbeResult``:

- ``kind``, ``container.format``, ``container.duration_s``
- ``video.<field>`` (the primary video stream), ``video.color.transfer``,
  ``video.color.log_profile`` (the curve's name, e.g. ``S-Log3``)
- ``audio.<field>`` (the first audio track)
- ``camera.make`` / ``camera.model``, ``capture.gps`` ([lat, lon])
- ``timecode``: the start timecode ``HH:MM:SS:FF`` (``;`` before the frames when
  drop-frame). The record keeps it as ``container.timecode.start``; it is looked up as
  ``timecode`` or ``start_timecode`` on the result, its container, video or capture
  part (a string, or an object whose ``start``/``value``/``timecode`` is one).

A ``null`` truth means the file does not carry the fact and the probe must say
``None``. Tolerances: durations within max(0.05 s, 1 %), frame rates within 1 %,
GPS within 1e-4 degrees (~11 m); strings compare case-insensitively.
"""

from __future__ import annotations

import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parent
TRUTH = CORPUS / "truth.json"


def find_files() -> Path:
    """Where the corpus's media files are. They are third-party files fetched from public
    repositories (MANIFEST.md names each source @ commit : path), so this repository does
    not commit them: ``$RAYFLOW_CORPUS``, else ``../shared/corpus`` (the steering repo's
    shared folder, beside ``../shared/media``), else an untracked ``tests/corpus/files``
    (git-ignored). The first that exists; else the last (absent: the tests skip)."""
    env = os.environ.get("RAYFLOW_CORPUS")
    candidates = [Path(env)] if env else []
    candidates += [CORPUS.parents[1].parent / "shared" / "corpus", CORPUS / "files"]
    return next((c for c in candidates if c.is_dir()), candidates[-1])


FILES = find_files()
PRESENT = FILES.is_dir()
ABSENT_REASON = (f"the real-file corpus is not here (looked in $RAYFLOW_CORPUS, ../shared/corpus, {CORPUS / 'files'}; "
                 "tests/corpus/MANIFEST.md lists each file's source)")


def corpus_file(name: str) -> Path:
    """One corpus file, or skip the calling test when the corpus is not on this machine."""
    import pytest

    if not PRESENT:
        pytest.skip(ABSENT_REASON)
    return FILES / name

DURATION_ABS_S = 0.05
DURATION_REL = 0.01
FPS_REL = 0.01
GPS_DEG = 1e-4
_MISSING = object()


@dataclass(frozen=True)
class Fact:
    """One fact of one file: what the tools show, what the probe said, and whether they agree."""

    file: str
    cls: str
    name: str
    truth: Any
    actual: Any
    ok: bool
    error: str | None = None
    """Set when the probe raised for this file (then every fact of the file fails)."""


def load_truth() -> dict[str, dict[str, Any]]:
    """File name -> {"kind", "class", "facts", "notes"} from truth.json."""
    return json.loads(TRUTH.read_text())["files"]


def _attr(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if obj is None:
            return None
        obj = getattr(obj, part, _MISSING)
        if obj is _MISSING:
            return _MISSING
    return obj


def _timecode(result: Any) -> Any:
    """The start timecode wherever the probe puts it (a string, or an object with start/value)."""
    owners = (result, *(getattr(result, part, None) for part in ("container", "video", "capture")))
    for owner, field_name in ((o, f) for o in owners if o is not None for f in ("timecode", "start_timecode")):
        tc = getattr(owner, field_name, _MISSING)
        if tc is _MISSING:
            continue
        for name in ("start", "value", "timecode"):
            inner = getattr(tc, name, None)
            if isinstance(inner, str):
                return inner
        return tc
    return _MISSING


def actual_value(result: Any, name: str) -> Any:
    """The probe's value for the dotted fact ``name`` (``_MISSING`` when the record has no such field)."""
    if name == "timecode":
        return _timecode(result)
    if name == "capture.gps":
        gps = _attr(result, "capture.gps")
        return None if gps is None or gps is _MISSING else [gps.lat, gps.lon]
    if name == "video.color.log_profile":
        profile = _attr(result, name)
        return profile if profile is None or profile is _MISSING else profile.name
    if name.startswith("audio."):
        tracks = getattr(result, "audio_tracks", None) or []
        return _attr(tracks[0], name.removeprefix("audio.")) if tracks else None
    return _attr(result, name)


def matches(name: str, truth: Any, actual: Any) -> bool:
    """Whether the probe's ``actual`` agrees with the tools' ``truth`` for fact ``name``."""
    if actual is _MISSING:
        return False
    if truth is None or actual is None:
        return truth is None and actual is None
    if name == "capture.gps":
        return all(abs(float(a) - float(t)) <= GPS_DEG for a, t in zip(actual, truth, strict=True))
    if name.endswith("duration_s"):
        return math.isclose(float(actual), truth, abs_tol=max(DURATION_ABS_S, DURATION_REL * truth))
    if name == "video.fps":
        return math.isclose(float(actual), truth, rel_tol=FPS_REL)
    if isinstance(truth, str):
        return str(actual).strip().casefold() == truth.strip().casefold()
    return bool(actual == truth)


def check_file(name: str, entry: dict[str, Any]) -> list[Fact]:
    """Probe one corpus file and compare every fact; a probe error fails all of its facts."""
    from rayflow.stages.probe import probe

    try:
        result: Any = probe(FILES / name)
        error = None
    except Exception as exc:  # noqa: BLE001 - a probe error is a measured outcome here, not a crash
        result, error = None, f"probe raised {type(exc).__name__}: {exc}"
    facts = []
    for fact, truth in entry["facts"].items():
        actual = None if result is None else actual_value(result, fact)
        ok = result is not None and matches(fact, truth, actual)
        shown = "<no such field>" if actual is _MISSING else actual
        facts.append(Fact(name, entry["class"], fact, truth, shown, ok, error))
    return facts


def check_corpus(workers: int = 4) -> list[Fact]:
    """Every fact of every corpus file (files probed in parallel threads; tools are subprocesses)."""
    truth = load_truth()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        per_file = pool.map(lambda item: check_file(*item), sorted(truth.items()))
    return [fact for facts in per_file for fact in facts]


def accuracy(facts: list[Fact]) -> float:
    """Share of facts that match (0..1)."""
    return sum(f.ok for f in facts) / len(facts) if facts else 0.0


def mismatch_lines(facts: list[Fact]) -> list[str]:
    """One markdown table row per mismatching fact (file, fact, truth, probe); one row for a file the probe failed."""
    rows, failed = [], set()
    for f in facts:
        if f.ok or f.file in failed:
            continue
        if f.error is not None:
            failed.add(f.file)
            count = sum(g.file == f.file for g in facts)
            rows.append(f"| `{f.file}` | all {count} facts | - | {f.error} |")
        else:
            rows.append(f"| `{f.file}` | {f.name} | {f.truth!r} | {f.actual!r} |")
    return rows


def class_table(facts: list[Fact]) -> list[str]:
    """Markdown rows of matched/total facts per file class, with an overall row."""
    rows = ["| class | files | facts | matched | accuracy |", "|---|---|---|---|---|"]
    for cls in sorted({f.cls for f in facts}):
        part = [f for f in facts if f.cls == cls]
        files = len({f.file for f in part})
        rows.append(f"| {cls} | {files} | {len(part)} | {sum(f.ok for f in part)} | {accuracy(part):.1%} |")
    files = len({f.file for f in facts})
    rows.append(f"| **all** | {files} | {len(facts)} | {sum(f.ok for f in facts)} | {accuracy(facts):.1%} |")
    return rows
