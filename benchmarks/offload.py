"""Offload benchmark: verified ``rayflow offload`` against a plain ``cp`` of the same card.

The card is generated: ``--files`` files of random (incompressible, like video) bytes,
``--size-mb`` in total, in a DCIM-like tree under a temp folder on the same disk as the
destinations. Before every timed run the card's and the destination's pages are dropped
from the page cache per file (``posix_fadvise DONTNEED``, no global cache drop on a shared
machine), so each method starts with the card cold.

Methods, medians of ``--repeats`` runs in alternating order:

- ``cp``: ``cp -r CARD DEST`` then ``sync -f DEST`` (offload fsyncs each file; cp alone
  would leave the writes in memory and look faster than any copy that is known to be on disk).
- ``cp + hash``: the same copy, then a separate xxh128 pass over the card and over the
  copy (cold), as a DIT would check a plain copy.
- ``offload``: ``rayflow.handoff.offload.offload`` with one destination: the card read once
  (hashed while writing), each block read back from the drive by a verifier thread once it
  is written there (see rayflow/handoff/copier.py), each file fsynced, the ASC MHL written.
  Goal: <= 1.2x the ``cp`` time.
- ``offload before``: the same call on ``rayflow/handoff/offload.py`` as it was at
  ``--before`` (loaded from git; default the commit before the streamed read-back: whole
  files fsynced, dropped and read back one file behind the card read). ``--before ''`` skips it.

Run: ``.venv/bin/python benchmarks/offload.py`` (about two minutes for 512 MB on 2 cores).
Writes ``benchmarks/results/offload.json`` and prints a table (medians, the fastest run: on a
shared machine the fastest is the least disturbed, and the median CPU seconds of the process and
its children, which other users' load barely changes).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rayflow.handoff.copier import drop_cache  # noqa: E402
from rayflow.handoff.offload import card_files, hash_file, offload  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]
BEFORE = "ee18aa5"
"""The last commit with the file-at-a-time read-back (offload.py alone, no copier.py)."""


def make_card(root: Path, total_mb: int, files: int) -> Path:
    card = root / "A001_BENCH"
    per = total_mb * 1024 * 1024 // files
    for i in range(files):
        sub = card / "DCIM" / f"{100 + i // 10}CLIP"
        sub.mkdir(parents=True, exist_ok=True)
        with (sub / f"C{i:04d}.MP4").open("wb") as fh:
            left = per
            while left:
                n = min(left, 8 * 1024 * 1024)
                fh.write(os.urandom(n))
                left -= n
    return card


def drop_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd) if os.access(path, os.W_OK) else None
                drop_cache(fd)
            finally:
                os.close(fd)


def run_cp(card: Path, dest: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(["cp", "-r", "--", str(card), str(dest)], check=True, timeout=3600)
    subprocess.run(["sync", "-f", str(dest)], check=True, timeout=3600)
    return time.perf_counter() - t0


def run_cp_hash(card: Path, dest: Path) -> float:
    t0 = time.perf_counter()
    run_cp(card, dest)
    for rel, _ in card_files(card):
        a = hash_file(card / rel, "xxh128", cold=True)
        b = hash_file(dest / card.name / rel, "xxh128", cold=True)
        assert a == b, rel
    return time.perf_counter() - t0


def run_offload(card: Path, dest: Path) -> float:
    t0 = time.perf_counter()
    report = offload(card, [dest])
    assert not report.failed, report.failed[:3]
    return time.perf_counter() - t0


def load_before(rev: str, tmp: Path) -> Callable[[Path, Path], float]:
    """``offload`` from ``rayflow/handoff/offload.py`` at git ``rev``, as a timed method."""
    source = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:rayflow/handoff/offload.py"],
                            check=True, capture_output=True, text=True, timeout=60).stdout
    path = tmp / "offload_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("offload_before", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)

    def run(card: Path, dest: Path) -> float:
        t0 = time.perf_counter()
        report = module.offload(card, [dest])
        assert not report.failed, report.failed[:3]
        return time.perf_counter() - t0
    return run


def cpu_s() -> float:
    """CPU seconds (user + system) of this process and its waited-for children so far."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=512)
    ap.add_argument("--files", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=None, help="Where the card and copies go (default: temp).")
    ap.add_argument("--before", default=BEFORE, help="git revision of offload.py to time beside ('' skips).")
    args = ap.parse_args()
    methods: dict[str, Callable[[Path, Path], float]] = {"cp": run_cp, "cp + hash": run_cp_hash,
                                                          "offload": run_offload}
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="rayflow-offload-bench-") as tmp:
        if args.before:
            methods["offload before"] = load_before(args.before, Path(tmp))
        times: dict[str, list[float]] = {m: [] for m in methods}
        cpu: dict[str, list[float]] = {m: [] for m in methods}
        card = make_card(Path(tmp), args.size_mb, args.files)
        for rep in range(args.repeats):
            order = list(methods) if rep % 2 == 0 else list(reversed(methods))
            for name in order:
                dest = Path(tmp) / f"dest-{name.replace(' ', '')}-{rep}"
                dest.mkdir()
                drop_tree(card)
                used = cpu_s()
                times[name].append(methods[name](card, dest))
                cpu[name].append(cpu_s() - used)
                shutil.rmtree(dest)
    med = {m: statistics.median(v) for m, v in times.items()}
    mb = args.size_mb
    best = {m: min(v) for m, v in times.items()}
    rows = [{"method": m, "median_s": round(med[m], 3), "MB_per_s": round(mb / med[m], 1),
             "x_cp": round(med[m] / med["cp"], 3), "min_s": round(best[m], 3),
             "x_cp_min": round(best[m] / best["cp"], 3), "cpu_s": round(statistics.median(cpu[m]), 3),
             "runs_s": [round(t, 3) for t in times[m]]}
            for m in methods]
    result = {"size_mb": mb, "files": args.files, "repeats": args.repeats, "cpus": os.cpu_count(),
              "platform": platform.platform(), "load_avg_1m": round(os.getloadavg()[0], 1), "before": args.before,
              "rows": rows, "goal": "offload <= 1.2 x cp (medians)",
              "goal_met": med["offload"] <= 1.2 * med["cp"]}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "offload.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"card: {mb} MB in {args.files} files, {args.repeats} runs each, medians")
    print(f"| {'method':<14} | {'median s':>8} | {'MB/s':>7} | {'x cp':>5} | {'min s':>6} | {'x cp (min)':>10} "
          f"| {'CPU s':>5} |")
    print(f"|{'-' * 16}|{'-' * 10}|{'-' * 9}|{'-' * 7}|{'-' * 8}|{'-' * 12}|{'-' * 7}|")
    for r in rows:
        print(f"| {r['method']:<14} | {r['median_s']:>8.2f} | {r['MB_per_s']:>7.1f} | {r['x_cp']:>5.2f} "
              f"| {r['min_s']:>6.2f} | {r['x_cp_min']:>10.2f} | {r['cpu_s']:>5.2f} |")
    print(f"load average (1 min) at the end: {result['load_avg_1m']}")
    print(f"goal offload <= 1.2 x cp: {'met' if result['goal_met'] else 'NOT met'}")


if __name__ == "__main__":
    main()
