"""Calibration and held-out evaluation of the search relevance model (``benchmarks/search.py``).

- ``calibrate``: every candidate clip of every query over the synthetic labelled corpus
  of ``tests/catalog/corpus.py`` (plus absent-topic queries) becomes one row
  (cosine, coverage, right clip?); a logistic regression per mode is fitted (Newton,
  light L2) and printed as the constants for ``rayflow/catalog/relevance.py``.
- ``heldout`` (``tests/catalog/heldout.py``, which the end-to-end test asserts): records of
  clips the model never saw (``tests/catalog/spoken.py``: spoken, captioned generated clips
  + real clips from ../shared/media, ingested by the real pipeline by ``ingest_heldout``)
  are embedded into a fresh catalog and searched with the labelled queries: top-1 clip,
  right moment (+-2 s), absent-topic queries answered with nothing, and mean results per
  query.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from rayflow.catalog.search import clip_features
from rayflow.catalog.store import Catalog
from rayflow.record import ClipRecord
from rayflow.stages.embed import embed_records
from tests.catalog.corpus import labelled_corpus
from tests.catalog.heldout import heldout

__all__ = ["calibrate", "dump", "heldout", "ingest_heldout", "load_records", "print_heldout"]

CALIBRATION_ABSENT = ("dog barking at the mailman", "rocket launch into space", "piano concert",
                      "a chess tournament", "horse riding on a beach")
"""Topics in none of the synthetic corpus's 16 clips."""
MODES = {"hybrid": (0, 1), "semantic": (0,), "keyword": (1,)}


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, iterations: int = 50) -> np.ndarray:
    """Weights ``[bias, w...]`` of a logistic regression (Newton-Raphson, L2 on the weights)."""
    design = np.hstack([np.ones((len(x), 1)), x])
    w = np.zeros(design.shape[1])
    ridge = l2 * np.diag(np.r_[0.0, np.ones(len(w) - 1)])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-design @ w))
        grad = design.T @ (p - y) + ridge @ w
        hess = (design * (p * (1 - p))[:, None]).T @ design + ridge
        w -= np.linalg.solve(hess, grad)
    return w


def calibrate(encoder: Any) -> dict[str, Any]:
    records, queries = labelled_corpus()
    ids = {r.file.name: r.clip_id for r in records}
    cases = [(q.query, ids[q.clip]) for q in queries] + [(q, None) for q in CALIBRATION_ABSENT]
    out: dict[str, Any] = {"queries": len(cases), "clips": len(records), "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        catalog = Catalog.open(path=Path(tmp), url=None)
        try:
            catalog.upsert(records, embed_records(records, encoder))
            for mode, cols in MODES.items():
                rows = [(cos or 0.0, cov, cid == want) for query, want in cases
                        for cid, (cos, cov) in clip_features(catalog, query, encoder=encoder, mode=mode).items()]
                x = np.array([[r[c] for c in cols] for r in rows])
                y = np.array([float(r[2]) for r in rows])
                w = fit_logistic(x, y)
                p = 1.0 / (1.0 + np.exp(-(np.hstack([np.ones((len(x), 1)), x]) @ w)))
                tp, fp = int(((p >= 0.5) & (y == 1)).sum()), int(((p >= 0.5) & (y == 0)).sum())
                weights = dict(zip(["bias", *[("w_cos", "w_cov")[c] for c in cols]], np.round(w, 2).tolist(),
                                   strict=True))
                out["models"][mode] = {"weights": weights, "rows": len(rows), "positives": int(y.sum()),
                                       "recall_at_0_5": round(tp / max(y.sum(), 1), 3),
                                       "precision_at_0_5": round(tp / max(tp + fp, 1), 3)}
        finally:
            catalog.close()
    return out


def ingest_heldout(tmp: Path) -> Path:
    """Make the held-out footage and ingest it with ``rayflow ingest`` (no proxies); the records folder."""
    import subprocess
    import sys

    from tests.catalog.spoken import make_jfk, make_spoken, shared_clips

    footage = tmp / "footage"
    make_spoken(footage)
    make_jfk(footage)
    home = tmp / "home"
    subprocess.run([sys.executable, "-m", "rayflow.cli.main", "ingest", str(footage),
                    *map(str, shared_clips()), "--home", str(home), "--skip", "proxy", "--json"],
                   check=False, timeout=3600, stdin=subprocess.DEVNULL, capture_output=True)
    return home / "output" / "records"


def load_records(folder: Path) -> list[ClipRecord]:
    records = [ClipRecord.model_validate_json(p.read_text()) for p in sorted(folder.glob("*.json"))]
    return [r for r in records if r.status != "failed"]


def print_heldout(doc: dict[str, Any]) -> None:
    print(f"\nheld-out ({doc['clips']} clips, {doc['queries']} queries, {doc['mode']}): top-1 {doc['top1']}  "
          f"moment+-2s {doc['moment_2s']}  absent->nothing {doc['absent_empty']} of {doc['absent_queries']}  "
          f"mean results {doc['mean_results']}")
    for r in doc["rows"]:
        mark = "ok " if r["top1"] else "MISS"
        got = f"{r['got']} {r['score']} [{r['why']}] {r['start_s']}-{r['end_s']} {r['text']!r}" if r["got"] else "-"
        print(f"  {mark} {r['query'][:40]:40} want {str(r['want']):24} n={r['results']}  {got}")


def dump(doc: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
