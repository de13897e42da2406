"""Facts accuracy on the real-file corpus: rayflow's probe against the tools' truth, per file class.

Probes every file of the real-file corpus (third-party files, see
``tests/corpus/MANIFEST.md``; not in git: ``tests.corpus.facts.find_files`` says where
it is looked for) and compares each technical fact with
``tests/corpus/truth.json`` using the rules in ``tests/corpus/facts.py``. Prints a
markdown table of matched facts per class (phone, camera, drone, browser, web,
broadcast, pro, screen, audio, still) and, with ``--mismatches``, every fact that differs.
``--write`` also rewrites ``tests/corpus/MISMATCHES.md`` (keeping its hand-written
"## Causes" section, which then needs a human update). Issue #13's bar is 97 %.

Run: ``.venv/bin/python benchmarks/facts.py [--mismatches] [--write]``
(about 10 s of CPU; 38-66 s wall on 2 busy cores).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.corpus.facts import ABSENT_REASON, CORPUS, PRESENT, Fact, accuracy, check_corpus, class_table, mismatch_lines  # noqa: E402

CAUSES_HEADING = "## Causes"
"""MISMATCHES.md keeps its hand-written section from this heading on when rewritten."""


def mismatches_markdown(facts: list[Fact], elapsed_s: float, causes: str = "") -> str:
    """The MISMATCHES.md page: when, the per-class table, every mismatching fact, then ``causes`` as given."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    wrong = mismatch_lines(facts)
    count = sum(not f.ok for f in facts)
    return "\n".join([
        "# Probe mismatches on the real-file corpus",
        "",
        f"Measured {stamp} by `benchmarks/facts.py --write` ({elapsed_s:.0f} s) with the probe in this checkout.",
        f"{sum(f.ok for f in facts)} of {len(facts)} facts match ({accuracy(facts):.1%}); issue #13 requires 97 %.",
        "Truth and tolerances: `MANIFEST.md`, `truth.json`, `facts.py`. `<no such field>` means the record has",
        "no field for the fact.",
        "",
        *class_table(facts),
        "",
        f"## {count} mismatching facts",
        "",
        "A file the probe failed on is one row for all of its facts.",
        "",
        "| file | fact | truth | probe |",
        "|---|---|---|---|",
        *wrong,
        "",
        *([causes.rstrip("\n"), ""] if causes else []),
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mismatches", action="store_true", help="also print every mismatching fact")
    parser.add_argument("--write", action="store_true", help="rewrite tests/corpus/MISMATCHES.md")
    parser.add_argument("--workers", type=int, default=4, help="files probed at once (default 4)")
    args = parser.parse_args()
    if not PRESENT:
        raise SystemExit(ABSENT_REASON)
    start = time.perf_counter()
    facts = check_corpus(workers=args.workers)
    elapsed_s = time.perf_counter() - start
    print("\n".join(class_table(facts)))
    print(f"\n{len(facts)} facts of {len({f.file for f in facts})} files in {elapsed_s:.1f} s")
    if args.mismatches:
        print("\n".join(["", "| file | fact | truth | probe |", "|---|---|---|---|", *mismatch_lines(facts)]))
    if args.write:
        page = CORPUS / "MISMATCHES.md"
        old = page.read_text() if page.exists() else ""
        causes = old[old.index(CAUSES_HEADING):] if CAUSES_HEADING in old else ""
        page.write_text(mismatches_markdown(facts, elapsed_s, causes))
        print(f"wrote {CORPUS / 'MISMATCHES.md'}")


if __name__ == "__main__":
    main()
