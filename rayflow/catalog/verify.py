"""Consistency of a home: catalog points vs record sidecars vs clip folders.

rayflow's guarantee is that whatever happens to a run (a kill, a crash, a full or
read-only disk), the catalog, the sidecars under ``output/records`` and the files
under ``output/clips`` agree once a run has finished, and a re-run repairs what an
interrupted one left. :func:`verify` checks that from the outside; ``rayflow verify``,
the fault tests and ``benchmarks/soak.py`` all use it.

Discrepancies (each a :class:`Finding`; a healthy home has none):

``point_without_record``
    a catalog point whose sidecar is missing.
``record_without_point``
    a sidecar with no catalog point: a write interrupted between the two (the next
    ingest of that file redoes it).
``bad_record``
    a sidecar that does not parse as a ``ClipRecord`` or whose name is not its clip id.
``record_mismatch``
    sidecar and point from different writes (run id or time differ).
``missing_output`` / ``bad_output``
    a thumbnail or proxy the record names is missing, empty, of another size than
    recorded, or (``deep``) an image that does not decode.
``output_outside_clip_dir``
    a record naming an output file outside ``clips/<clip_id>/``.
``orphan_clip_dir``
    a clip folder for a clip the catalog does not have.
``stray_output``
    a file in a clip folder that its record does not name.
``orphan_moments``
    moment points of a clip the catalog does not have.
``duplicate_content``
    two clip points with the same checksum.

Temp files of interrupted writes (hidden ``.*.tmp``) are listed apart: they are never
read as output, the next run sweeps them, and ``clean=True`` removes them now.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rayflow.catalog.schema import CLIPS, MOMENTS
from rayflow.catalog.store import Catalog
from rayflow.media.tempfiles import sweep_temp_files, temp_files
from rayflow.record import ClipRecord

log = logging.getLogger(__name__)

KNOWN_EXTRAS = frozenset({"proxy.json"})
"""Files a clip folder may hold that the record does not name (the proxy's reuse sidecar)."""
PRUNABLE = {"proxy": re.compile(r"proxy\.(mp4|json)"),
            "thumbnails": re.compile(r"thumb_\d{2,}_\d+\.\d{3}s\.(jpg|webp)"),
            "analyze": re.compile(r"best_\d+\.jpg")}
"""Per stage (as keyed in ``ClipRecord.errors``), the names of the outputs it writes in a clip
folder (``stages/proxy.py``, ``stages/thumbnails.py``, ``stages/select.py``): what
``prune_outputs`` removes when that stage failed and the record does not name the file."""


@dataclass(frozen=True)
class Finding:
    kind: str
    clip_id: str | None
    detail: str


@dataclass
class Report:
    """What :func:`verify` found; ``ok`` when there are no discrepancies."""

    points: int = 0
    records: int = 0
    clip_dirs: int = 0
    moments: int = 0
    findings: list[Finding] = field(default_factory=list)
    temp_files: list[str] = field(default_factory=list)
    """Leftovers of interrupted writes (not discrepancies; removed with ``clean``)."""
    cleaned: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def counts(self) -> dict[str, int]:
        return dict(Counter(f.kind for f in self.findings))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        data["counts"] = self.counts()
        return data


def _scroll(catalog: Catalog, collection: str, payload: Any) -> list[Any]:
    points: list[Any] = []
    offset: Any = None
    while True:
        batch, offset = catalog.client.scroll(collection, limit=512, offset=offset, with_payload=payload)
        points.extend(batch)
        if offset is None:
            return points


def _load_records(records_dir: Path, report: Report) -> dict[str, ClipRecord]:
    records: dict[str, ClipRecord] = {}
    if not records_dir.is_dir():
        return records
    for path in sorted(records_dir.glob("*.json")):
        if path.name.startswith("."):
            continue
        try:
            record = ClipRecord.model_validate(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, ValidationError) as exc:
            report.findings.append(Finding("bad_record", path.stem, f"{path.name}: {str(exc)[:200]}"))
            continue
        if record.clip_id != path.stem:
            report.findings.append(Finding("bad_record", path.stem,
                                           f"{path.name} holds clip {record.clip_id}"))
            continue
        records[record.clip_id] = record
    report.records = len(records)
    return records


def _named_outputs(record: ClipRecord) -> list[tuple[str, int | None]]:
    """(path, expected size or None) of every output file the record names."""
    named: list[tuple[str, int | None]] = [(t.path, None) for t in record.thumbnails]
    if record.analysis is not None:
        named += [(t.path, None) for t in record.analysis.best_thumbnails]
    if record.proxy is not None:
        named.append((record.proxy.path, record.proxy.size_bytes))
    return named


def prune_outputs(record: ClipRecord, clip_dir: Path) -> list[Path]:
    """Remove the outputs in ``clip_dir`` of the stages that failed in ``record`` and that
    ``record`` does not name; the paths removed.

    A worker killed after it put an output in place and before its task returned leaves a
    complete file the record never hears of: a proxy renamed into place, then the task lost
    twice with its worker, gives a record "proxy failed" beside a ``proxy.mp4`` (``stray_output``)
    that no later run looks at (the file is ingested). Called when the record is written (by
    the catalog writer, after the point). Only a failed stage's own output names (``PRUNABLE``)
    are touched: a re-run that skipped a step keeps what that step made before."""
    patterns = [pattern for stage, pattern in PRUNABLE.items() if stage in record.errors]
    named = {Path(raw).name for raw, _ in _named_outputs(record)}
    removed: list[Path] = []
    if not patterns:
        return removed
    try:
        items = sorted(clip_dir.iterdir())
    except OSError:  # no folder (nothing was written for this clip), or not readable
        return removed
    for item in items:
        if item.name in named or not any(p.fullmatch(item.name) for p in patterns):
            continue
        try:
            item.unlink()
            removed.append(item)
        except OSError as exc:
            log.warning("could not remove %s, which the record of clip %s does not name: %s",
                        item, record.clip_id, exc)
    return removed


def _check_outputs(record: ClipRecord, clip_dir: Path, report: Report, *, deep: bool) -> set[str]:
    names: set[str] = set()
    for raw, size in _named_outputs(record):
        path = Path(raw)
        if path.parent != clip_dir:
            report.findings.append(Finding("output_outside_clip_dir", record.clip_id, raw))
            continue
        names.add(path.name)
        try:
            actual = path.stat().st_size
        except OSError:
            report.findings.append(Finding("missing_output", record.clip_id, raw))
            continue
        if actual == 0 or (size is not None and actual != size):
            report.findings.append(Finding("bad_output", record.clip_id,
                                           f"{raw}: {actual} bytes, record says {size}"))
            continue
        if deep and path.suffix.lower() in (".jpg", ".jpeg", ".webp", ".png"):
            from PIL import Image

            try:
                with Image.open(path) as image:
                    image.load()
            except Exception as exc:  # any decoder complaint means a damaged image
                report.findings.append(Finding("bad_output", record.clip_id, f"{raw}: {exc}"))
    return names


def verify(catalog: Catalog, output_dir: Path, *, deep: bool = False, clean: bool = False) -> Report:
    """Compare ``catalog`` with ``output_dir`` (records/ and clips/); see the module doc.

    ``deep`` also decodes every thumbnail. ``clean`` removes temp files of interrupted
    writes (only while no ingest runs on this home: the caller holds the catalog, which
    an ingest would hold, so that is given for an embedded catalog)."""
    report = Report()
    records_dir, clips_dir = output_dir / "records", output_dir / "clips"
    points = _scroll(catalog, CLIPS, ["clip_id", "run_id", "ingested_at", "file", "status",
                                      "thumbnails", "proxy", "analysis"])
    report.points = len(points)
    records = _load_records(records_dir, report)
    stored: dict[str, ClipRecord | None] = {}
    checksums: Counter[str] = Counter()
    for point in points:
        clip_id = str(point.id)
        payload = point.payload or {}
        checksums[str((payload.get("file") or {}).get("checksum"))] += 1
        record = records.get(clip_id)
        stored[clip_id] = record
        if record is None:
            report.findings.append(Finding("point_without_record", clip_id,
                                           str((payload.get("file") or {}).get("path"))))
            continue
        point_run, point_at = payload.get("run_id"), payload.get("ingested_at")
        record_at = record.model_dump(mode="json", include={"ingested_at"})["ingested_at"]
        if point_run != record.run_id or point_at != record_at:
            report.findings.append(Finding("record_mismatch", clip_id,
                                           f"point run {point_run} at {point_at}, sidecar run {record.run_id} "
                                           f"at {record_at}"))
    for checksum, n in checksums.items():
        if n > 1 and checksum != "None":
            report.findings.append(Finding("duplicate_content", None, f"{n} clip points with checksum {checksum}"))
    for clip_id in sorted(set(records) - set(stored)):
        report.findings.append(Finding("record_without_point", clip_id, records[clip_id].file.path))
    # Output files: checked against the sidecar (the catalog point carries the same paths).
    dirs = sorted(p for p in clips_dir.iterdir() if p.is_dir()) if clips_dir.is_dir() else []
    report.clip_dirs = len(dirs)
    for clip_id, record in sorted(stored.items()):
        if record is not None:
            named = _check_outputs(record, clips_dir / clip_id, report, deep=deep)
            folder = clips_dir / clip_id
            if folder.is_dir():
                for item in sorted(folder.iterdir()):
                    if item.name.startswith(".") and item.name.endswith(".tmp"):
                        continue
                    if item.name not in named and item.name not in KNOWN_EXTRAS:
                        report.findings.append(Finding("stray_output", clip_id, str(item)))
    for folder in dirs:
        if folder.name not in stored:
            report.findings.append(Finding("orphan_clip_dir", folder.name, str(folder)))
    moments = _scroll(catalog, MOMENTS, ["clip_id"])
    report.moments = len(moments)
    orphans = Counter(str((m.payload or {}).get("clip_id")) for m in moments
                      if str((m.payload or {}).get("clip_id")) not in stored)
    for clip_id, n in sorted(orphans.items()):
        report.findings.append(Finding("orphan_moments", clip_id, f"{n} moment point(s)"))
    # Temp files of interrupted writes.
    folders = [records_dir, *dirs]
    for folder in folders:
        for tmp in temp_files(folder):
            report.temp_files.append(str(tmp))
        if clean:
            report.cleaned += [str(p) for p in sweep_temp_files(folder)]
    return report

