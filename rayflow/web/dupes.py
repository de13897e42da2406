"""Near-duplicates for the web page: ``rayflow dupes`` (:mod:`rayflow.handoff.dupes`) over the catalog.

The page compares each video's *review proxy* (``<output>/clips/<clip_id>/proxy.mp4``), not
the source file: the server opens only files it resolves under the output dir by clip id
(:mod:`rayflow.web.media`), never a path taken from a record. The proxy keeps every
timestamp (frame-accurate, rate capped at 30 fps, far above the 4 samples/s hashed), so a
pair and its time offset are the ones the sources give; the hashes' tolerance to a
re-encode (see ``handoff.dupes.MAX_DISTANCE``) covers the proxy's own. Videos without a
proxy (the step skipped or failed) are listed as not compared.

Hashes go to ``<home>/vhash`` (keyed by path, size and mtime, as the CLI keeps its own), so
only the first visit after an ingest decodes; one computation runs at a time.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from rayflow.handoff.dupes import DupePair, find_pairs, hash_all
from rayflow.record import ClipRecord
from rayflow.web.media import media_file, valid_clip_id


@dataclass
class DupesFound:
    """Pairs among the catalog's videos, with the records they belong to."""

    pairs: list[tuple[DupePair, ClipRecord, ClipRecord]] = field(default_factory=list)
    compared: int = 0
    no_proxy: list[ClipRecord] = field(default_factory=list)
    errors: list[tuple[ClipRecord, str]] = field(default_factory=list)
    """Videos whose proxy could not be decoded, with the reason."""


_LOCK = threading.Lock()


def find_dupes(records: list[ClipRecord], *, output_dir: Path, cache_dir: Path) -> DupesFound:
    """Near-duplicate pairs among the ingested videos of ``records``, compared by their proxies."""
    found = DupesFound()
    by_proxy: dict[str, ClipRecord] = {}
    for record in sorted(records, key=lambda r: (r.file.path, r.clip_id)):
        if record.kind != "video" or record.status != "ingested" or not valid_clip_id(record.clip_id):
            continue
        proxy = media_file(output_dir, record.clip_id, "proxy.mp4") if record.proxy else None
        if proxy is None:
            found.no_proxy.append(record)
        else:
            by_proxy[str(proxy)] = record
    with _LOCK:
        videos, errors = hash_all([Path(p) for p in by_proxy], cache_dir)
    found.compared = len(videos)
    found.errors = [(by_proxy[path], error) for path, error in errors.items()]
    found.pairs = [(pair, by_proxy[pair.a], by_proxy[pair.b]) for pair in find_pairs(videos)]
    return found
