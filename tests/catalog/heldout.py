"""Search over the held-out catalog, scored against the issue's thresholds (#14).

The held-out catalog is the 8 clips of ``tests/catalog/spoken.py`` (5 spoken and
captioned clips made here, a real speech, 2 real clips from ``../shared/media``),
ingested by the real pipeline; the relevance model never saw them (it was calibrated on
``tests/catalog/corpus.py``). Each of its labelled queries is searched once:

- ``top1``: share of queries about a clip whose first hit is that clip;
- ``moment_2s``: share of timed queries whose first hit is the right clip and its time
  range holds the labelled second (+-2 s);
- ``absent_empty`` of ``absent_queries``: queries about things in no clip answered with
  nothing ("no good match");
- ``mean_results``: hits per query (every query, limit 10).

``tests/engine/test_search_e2e.py`` asserts :data:`THRESHOLDS`; ``benchmarks/search.py
--relevance`` and ``benchmarks/quality.py`` (through ``benchmarks/search_quality.py``)
report the same figures.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from rayflow.catalog.search import search
from rayflow.catalog.store import Catalog
from rayflow.record import ClipRecord
from rayflow.stages.embed import embed_records
from tests.catalog.corpus import moment_ok
from tests.catalog.spoken import QUERIES

THRESHOLDS: dict[str, tuple[str, float]] = {
    "top1": (">=", 0.9), "moment_2s": (">=", 0.8), "absent_empty": (">=", 4), "mean_results": ("<=", 3.0)}
"""Issue #14's "done when" for search: top-1 >= 0.9, moment +-2 s >= 0.8, at least 4 of
the 5 absent-topic queries answered with nothing, at most 3 results per query on average."""


def met(figures: dict[str, Any]) -> dict[str, bool]:
    """Each threshold of :data:`THRESHOLDS`: does ``figures`` meet it?"""
    return {name: (figures[name] >= bound if op == ">=" else figures[name] <= bound)
            for name, (op, bound) in THRESHOLDS.items()}


def heldout(encoder: Any, records: list[ClipRecord], mode: str = "hybrid") -> dict[str, Any]:
    """The labelled queries of tests/catalog/spoken.py over ``records`` (their clips must be among them),
    in a fresh embedded catalog: the figures above and one row per query."""
    names = {r.file.name for r in records}
    queries = [q for q in QUERIES if q.clip is None or q.clip in names]
    with tempfile.TemporaryDirectory() as tmp:
        catalog = Catalog.open(path=Path(tmp), url=None)
        try:
            catalog.upsert(records, embed_records(records, encoder))
            rows = []
            for q in queries:
                hits = search(catalog, q.query, encoder=encoder, mode=mode, limit=10)  # type: ignore[arg-type]
                top = hits[0] if hits else None
                rows.append({
                    "query": q.query, "want": q.clip, "at_s": q.at_s, "results": len(hits),
                    "got": top.name if top else None, "score": top.score if top else None,
                    "why": top.why if top else None, "text": top.text[:80] if top else None,
                    "start_s": top.start_s if top else None, "end_s": top.end_s if top else None,
                    "top1": bool(top and top.name == q.clip) if q.clip else not hits,
                    "moment": bool(top and top.name == q.clip and q.at_s is not None
                                   and moment_ok(top.start_s, top.end_s, q.at_s)),
                })
        finally:
            catalog.close()
    present = [r for r in rows if r["want"]]
    timed = [r for r in present if r["at_s"] is not None]
    absent = [r for r in rows if not r["want"]]
    return {
        "mode": mode, "clips": len(records), "queries": len(rows),
        "top1": round(sum(r["top1"] for r in present) / max(len(present), 1), 3),
        "moment_2s": round(sum(r["moment"] for r in timed) / max(len(timed), 1), 3),
        "absent_empty": sum(r["top1"] for r in absent), "absent_queries": len(absent),
        "mean_results": round(sum(r["results"] for r in rows) / max(len(rows), 1), 2),
        "rows": rows,
    }
