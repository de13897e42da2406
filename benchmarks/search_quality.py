"""Search figures for the quality benchmark (``benchmarks/quality.py``'s ``SEARCH_HOOK``).

No evaluation of its own: the held-out footage of ``tests/catalog/spoken.py`` is ingested
by the real pipeline (``relevance_eval.ingest_heldout``, ``rayflow ingest --skip proxy``
into a temporary home, a few minutes) and searched with its labelled queries by
``tests/catalog/heldout.py`` (hybrid mode, the CLI's default), the same figures as
``benchmarks/search.py --relevance``: top-1, moment +-2 s, absent topics answered with
nothing, mean results per query, each beside its threshold.

    .venv/bin/python benchmarks/search_quality.py [--heldout RECORDS_DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import relevance_eval  # noqa: E402  (after the path fix above)
from rayflow.ml.text_encoder import TextEncoder  # noqa: E402
from tests.catalog.heldout import THRESHOLDS, met  # noqa: E402
from tests.catalog.spoken import JFK, SHARED, SPOKEN  # noqa: E402

EXPECTED_CLIPS = len(SPOKEN) + 1 + len(SHARED)
"""The 8-clip catalog: 5 spoken clips, the JFK speech, 2 real clips (fewer without ../shared/media)."""


def measure(records_dir: Path | None = None) -> dict[str, Any]:
    """Held-out search figures (hybrid), their thresholds and whether each is met.

    ``records_dir``: the records folder of an earlier ingest of the held-out footage;
    None ingests it now into a temporary home."""
    started = time.perf_counter()
    encoder = TextEncoder()
    encoder.setup("cpu")
    with tempfile.TemporaryDirectory() as tmp:
        folder = records_dir or relevance_eval.ingest_heldout(Path(tmp))
        records = relevance_eval.load_records(folder)
    doc = relevance_eval.heldout(encoder, records, "hybrid")
    names = sorted(r.file.name for r in records)
    return {
        "catalog": names, "expected_clips": EXPECTED_CLIPS,
        **{k: doc[k] for k in ("mode", "clips", "queries", "top1", "moment_2s", "absent_empty",
                               "absent_queries", "mean_results")},
        "thresholds": {name: f"{op} {bound:g}" for name, (op, bound) in THRESHOLDS.items()},
        "met": met(doc),
        "misses": [r for r in doc["rows"] if not r["top1"] or (r["at_s"] is not None and not r["moment"])],
        "seconds": round(time.perf_counter() - started, 1),
        "note": "" if len(records) == EXPECTED_CLIPS and JFK in names
        else f"{len(records)} of {EXPECTED_CLIPS} clips catalogued (is ../shared/media here?)",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heldout", type=Path, help="records folder of an earlier held-out ingest")
    args = parser.parse_args()
    print(json.dumps(measure(args.heldout), indent=1))


if __name__ == "__main__":
    main()
