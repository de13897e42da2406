"""How fast do the commands answer? Each command run cold (a new process, as a user types
it) ``--runs`` times over a small catalog; the table gives the median wall time, the
median CPU time of the process (user + system: what the command itself costs, whatever
else the box is doing) and the targets of issue #15.

The catalog: the 16 labelled clips of ``tests/catalog/corpus.py`` plus
``--records`` synthetic ones (``benchmarks/search.py``'s generator), embedded once into
a temporary home (or ``--home`` to time an existing one, e.g. with the service up).

Then the service's searcher (``rayflow.engine.searcher``, what ``rayflow server start`` runs) is
started on the same home and the commands it answers (``search``, keyword search, ``list
--where``) are timed again, side by side: rows "... (service)". Their CPU column is the
command's own process only (the searcher's share is not in it): judge them by wall time.

Run: ``.venv/bin/python benchmarks/cli.py [--runs 5]``; writes ``benchmarks/results/cli.json``.
Wall times on a shared, loaded box are noisy: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"
RAYFLOW = [sys.executable, "-m", "rayflow.cli.main"]

TARGETS_S = {"search": 1.0, "search-keyword": 0.3, "list": 0.5, "list-where": 0.5, "show": 0.5, "runs": 0.5,
             "doctor": 3.0, "ingest-missing-path": 1.0, "help": None}
"""Issue #15's targets, in seconds (None: no target)."""


def build_home(home: Path, distractors: int) -> str:
    """A catalog of labelled + synthetic records under ``home``; returns one clip id for ``show``."""
    from benchmarks.search import synthetic_records
    from rayflow.catalog.store import Catalog
    from rayflow.ml.text_encoder import TextEncoder
    from rayflow.stages.embed import embed_records
    from tests.catalog.corpus import labelled_corpus

    records = [*labelled_corpus()[0], *synthetic_records(distractors)]
    encoder = TextEncoder()
    encoder.setup("cpu")
    catalog = Catalog.open(path=home / "catalog", url=None)
    try:
        for start in range(0, len(records), 64):
            batch = records[start:start + 64]
            catalog.upsert(batch, embed_records(batch, encoder))
    finally:
        catalog.close()
    return records[0].clip_id


def commands(home: Path, clip_id: str) -> dict[str, list[str]]:
    h = ["--home", str(home)]
    return {
        "help": ["--help"],
        "search": ["search", "yellow card for a late tackle", *h],
        "search-keyword": ["search", "Keychron", "--mode", "keyword", *h],
        "list": ["list", *h],
        "list-where": ["list", "--where", "hdr=true", *h],
        "show": ["show", clip_id, *h],
        "runs": ["runs", *h],
        "doctor": ["doctor", *h],
        "ingest-missing-path": ["ingest", str(home / "no-such-footage"), *h],
    }


SERVICE_ANSWERS = ("search", "search-keyword", "list-where")
"""The commands the service's searcher answers."""


def _row(name: str, argv: list[str], runs: int) -> dict[str, Any]:
    row = {"command": name, "argv": " ".join(argv[:3]), **time_command(argv, runs),
           "target_s": TARGETS_S.get(name.split(" ")[0]), "load_avg_1m": round(os.getloadavg()[0], 1)}
    target = row["target_s"]
    row["meets_cpu"] = None if target is None else row["cpu_s"] <= target
    row["meets_wall"] = None if target is None else row["wall_s"] <= target
    print(f"{name:30} wall {row['wall_s']:>6.2f} s  cpu {row['cpu_s']:>6.2f} s  exit {row['exit_codes']}  "
          f"(load {row['load_avg_1m']})", flush=True)
    return row


def answered_by(argv: list[str]) -> str:
    """Who ran a search: "service" or "here" (its --json says)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([*RAYFLOW, *argv, "--json"], capture_output=True, text=True, timeout=300, env=env,
                          stdin=subprocess.DEVNULL, check=False)
    return str(json.loads(proc.stdout).get("answered_by"))


def time_command(argv: list[str], runs: int) -> dict[str, Any]:
    walls, cpus, codes = [], [], set()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run([*RAYFLOW, *argv], capture_output=True, text=True, timeout=300, env=env,
                              stdin=subprocess.DEVNULL, check=False)
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
        codes.add(proc.returncode)
    return {"wall_s": round(statistics.median(walls), 3), "cpu_s": round(statistics.median(cpus), 3),
            "min_wall_s": round(min(walls), 3), "exit_codes": sorted(codes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--records", type=int, default=200, help="synthetic records beside the 16 labelled ones")
    parser.add_argument("--home", type=Path, help="time against this home instead of building one")
    parser.add_argument("--only", nargs="*", help="command names to time (default all)")
    parser.add_argument("--no-service", action="store_true", help="leave out the rows with the service's searcher")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = args.home or Path(tmp) / "home"
        clip_id = build_home(home, args.records) if args.home is None else ""
        if not clip_id:
            from rayflow.catalog.store import Catalog

            catalog = Catalog.open(path=home / "catalog", url=None)
            clip_id = next(catalog.iter_clip_ids())
            catalog.close()
        rows = []
        cmds = commands(home, clip_id)
        for name, argv in cmds.items():
            if args.only and name not in args.only:
                continue
            rows.append(_row(name, argv, args.runs))
        if not args.no_service:
            from rayflow.config import load_settings
            from rayflow.engine import searcher

            settings = load_settings(home=home)
            assert searcher.start(home, settings) is not None, f"the searcher did not start: {home / 'searcher.log'}"
            try:
                assert answered_by(cmds["search"]) == "service"
                for name in SERVICE_ANSWERS:
                    if not args.only or name in args.only:
                        rows.append(_row(f"{name} (service)", cmds[name], args.runs))
            finally:
                searcher.stop(home)
    doc = {"benchmark": "cli", "created": datetime.now().isoformat(timespec="seconds"), "runs": args.runs,
           "cpus": os.cpu_count(), "records": args.records + 16 if args.home is None else None, "rows": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cli.json").write_text(json.dumps(doc, indent=2) + "\n")
    print("\n| command | median wall s | median CPU s | target s | exit | load |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['command']} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} | {r['target_s'] or '—'} | "
              f"{','.join(map(str, r['exit_codes']))} | {r['load_avg_1m']} |")


if __name__ == "__main__":
    main()
