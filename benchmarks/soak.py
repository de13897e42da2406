"""Does rayflow keep going, and lose nothing, under sustained faults? A bounded soak run.

A corpus of small clips with a share of hostile files (tests/hostile.py) is ingested by
the real CLI once without faults (fresh home: the baseline), then again on another fresh
home while a killer SIGKILLs a random Ray worker or actor (never Ray's own agents)
at random intervals. Then the same command runs again without faults (the resume), and
``rayflow.catalog.verify`` compares catalog, records and clip folders: the result must
be 0 discrepancies.

Headline: good (non-hostile) files ingested in the faulted run itself: a crash must cost
only the file at fault, not the files queued beside it (issue #18). Then files/s,
failures by reason, retries (Prefect task retries, from the run's Prefect
database; Ray's own single re-run of a task whose worker died is not recorded there),
kills, files the resume finished, peak RSS per process kind, and the consistency check;
writes benchmarks/results/soak.json and soak.png.

    .venv/bin/python benchmarks/soak.py                 # 500 files, 5 % hostile, a kill every ~8 s
    .venv/bin/python benchmarks/soak.py --quick         # 60 files, for a quick look
    .venv/bin/python benchmarks/soak.py --files 200 --hostile-pct 10 --kill-every 2
    .venv/bin/python benchmarks/soak.py --files 16 --kill-every 30 --no-baseline  # baseline: another soak's

Steps: every default step, ``analyze`` and ``embed`` included (their actors are what a kill
hurts most: the queued files). ``--fast`` skips those two, for a look at the per-file tasks
alone (the models need minutes per hundred files on a small CPU box).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rayflow.catalog.store import Catalog  # noqa: E402
from rayflow.catalog.verify import verify  # noqa: E402
from tests.hostile import HOSTILE, clip  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
CACHE = ROOT / "benchmarks" / ".cache"
RAYFLOW = str(ROOT / ".venv" / "bin" / "rayflow")


def make_corpus(files: int, hostile_pct: float, seed: int) -> Path:
    """``files`` files: distinct 1 s 160x120 clips, and every ~1/pct-th one hostile."""
    folder = CACHE / f"soak_{files}_{hostile_pct:g}_{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    hostile_every = max(1, round(100 / hostile_pct)) if hostile_pct > 0 else 0
    makers = sorted(HOSTILE)
    for i in range(files):
        sub = folder / f"batch_{i // 50:02d}"
        sub.mkdir(exist_ok=True)
        if hostile_every and i % hostile_every == hostile_every - 1:
            name = makers[(i // hostile_every) % len(makers)]
            out = sub / f"h{i:04d}_{name}"
            if not out.exists():
                HOSTILE[name](out)
            continue
        out = sub / f"clip_{i:04d}.mp4"
        if not out.exists():
            tmp = out.with_name(f"tmp_{out.name}")
            clip(tmp, hue=i % 360, seconds=1.0 + (i // 360) * 0.1 + rng.choice((0, 0.2)), size="160x120")
            tmp.rename(out)
    return folder


class Sampler:
    """Every 0.25 s: RSS of every descendant of the CLI, peak kept per process kind and overall."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_by_kind: dict[str, float] = defaultdict(float)
        self.peak_total = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def kind(proc: psutil.Process) -> str:
        name = proc.name()
        if name.startswith("ray::"):  # "ray::CatalogWriter.write" is the actor's process too
            return name.split(".")[0]
        cmd = " ".join(proc.cmdline()[:3])
        if "prefect" in cmd:
            return "prefect server"
        if "rayflow" in cmd:
            return "rayflow CLI (driver)"
        return name

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(self.pid)
                total = 0.0
                for proc in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        rss = proc.memory_info().rss / 2**20
                        total += rss
                        kind = self.kind(proc)
                        if rss > 0:  # a process caught while exiting reads 0
                            self.peak_by_kind[kind] = max(self.peak_by_kind[kind], rss)
                self.peak_total = max(self.peak_total, total)
            self._stop.wait(0.25)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class Killer:
    """SIGKILLs a random Ray worker/actor of the CLI's tree every ~``mean_s`` (exponential)."""

    def __init__(self, pid: int, mean_s: float, seed: int) -> None:
        self.pid, self.mean_s = pid, mean_s
        self.rng = random.Random(seed)
        self.killed: list[dict[str, object]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = time.monotonic()

    def _run(self) -> None:
        while not self._stop.wait(self.rng.expovariate(1 / self.mean_s)):
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(self.pid)
                workers = [p for p in root.children(recursive=True)
                           if p.name().startswith("ray::") and not p.name().endswith("Agent")]
                if not workers:
                    continue
                victim = self.rng.choice(workers)
                name = victim.name()
                victim.send_signal(signal.SIGKILL)
                self.killed.append({"t_s": round(time.monotonic() - self._started, 2), "process": name})

    def __enter__(self) -> Killer:
        if self.mean_s > 0:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


def run_ingest(corpus: Path, home: Path, steps: list[str], *, kill_every: float, seed: int) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PREFECT_API_URL", "RAY_ADDRESS") and not k.startswith("RAYFLOW_")}
    args = [RAYFLOW, "ingest", str(corpus), "--home", str(home), "--json", *steps]
    started = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    with Sampler(proc.pid) as mem, Killer(proc.pid, kill_every, seed) as killer:
        out, err = proc.communicate(timeout=3 * 3600)
    wall = time.perf_counter() - started
    if proc.returncode not in (0, 1) or not out.startswith("{"):
        raise RuntimeError(f"rayflow ingest exited {proc.returncode}: {err[-3000:]}")
    summary = json.loads(out)
    flow_s = (datetime.fromisoformat(summary["finished_at"])
              - datetime.fromisoformat(summary["started_at"])).total_seconds()
    return {"exit": proc.returncode, "wall_s": round(wall, 2), "flow_s": round(flow_s, 2),
            "files": len(summary["files"]), "counts": summary["counts"],
            "files_per_s": round(len(summary["files"]) / flow_s, 3) if flow_s else None,
            "failures": reasons(summary["files"]), "kills": killer.killed,
            "peak_rss_mb": {k: round(v, 1) for k, v in sorted(mem.peak_by_kind.items())},
            "peak_rss_total_mb": round(mem.peak_total, 1), "prefect_retries": prefect_retries(home),
            "summary_files": summary["files"]}


_DETAIL = re.compile(r"'[^']*'|\"[^\"]*\"|0x[0-9a-f]+|\b\d+(\.\d+)?\b")


def reasons(files: list[dict]) -> dict[str, int]:
    """Failures grouped by stage and message with paths and numbers blanked."""
    out: Counter[str] = Counter()
    for f in files:
        if f["status"] != "failed":
            continue
        for stage, msg in f["errors"].items():
            if stage == "decoder":
                continue
            out[f"{stage}: {_DETAIL.sub('…', msg)[:110]}"] += 1
    return dict(out.most_common())


def prefect_retries(home: Path) -> dict[str, int]:
    """Task runs Prefect ran more than once (run_count > 1), from the run's Prefect database."""
    db = home / "prefect" / "prefect.db"
    if not db.is_file():
        return {}
    with sqlite3.connect(db) as conn:
        rows = conn.execute("select name, count(*), sum(run_count - 1) from task_run where run_count > 1 "
                            "group by name").fetchall()
    return {str(name).split("-")[0]: int(extra or 0) for name, _, extra in rows}


def chart(result: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 5))
    runs = [(label, result[key]) for label, key in (("no faults", "baseline"), ("with kills", "faulted"),
                                                    ("resume", "resume")) if result[key] is not None]
    ax = axes[0]
    for i, (_label, run) in enumerate(runs):
        bottom = 0
        for status, color in (("ingested", "#2a7"), ("duplicate", "#4ac"), ("failed", "#c33")):
            n = run["counts"].get(status, 0)
            ax.bar(i, n, bottom=bottom, color=color, label=status if i == 0 else None)
            bottom += n
        ax.text(i, bottom, f"{run['files_per_s']} files/s", ha="center", va="bottom")
    ax.set_xticks(range(len(runs)), [label for label, _ in runs])
    ax.set_title(f"{result['files']} files, {result['hostile']} hostile, {len(result['faulted']['kills'])} kills")
    ax.legend()
    fails = result["faulted"]["failures"]
    ax = axes[1]
    labels = list(fails)[:10]
    ax.barh(range(len(labels)), [fails[k] for k in labels], color="#c33")
    ax.set_yticks(range(len(labels)), [k[:55] for k in labels], fontsize=7)
    ax.invert_yaxis()
    ax.set_title("failures by reason (run with kills)")
    ax = axes[2]
    peaks = result["faulted"]["peak_rss_mb"]
    kinds = sorted(peaks, key=peaks.get, reverse=True)[:12]
    ax.barh(range(len(kinds)), [peaks[k] for k in kinds], color="#57a")
    ax.set_yticks(range(len(kinds)), kinds, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("peak RSS, MiB (any one process of the kind)")
    ax.set_title(f"consistency: {result['verify']['discrepancies']} discrepancies")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=500)
    ap.add_argument("--hostile-pct", type=float, default=5.0)
    ap.add_argument("--kill-every", type=float, default=8.0, help="mean seconds between kills (0: none)")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--quick", action="store_true", help="60 files: a quick look, not the reported run")
    ap.add_argument("--fast", action="store_true", help="skip analyze and embed (not the reported run)")
    ap.add_argument("--all-steps", action="store_true", help="every default step (the default; kept for old commands)")
    ap.add_argument("--no-save", action="store_true", help="print only; keep benchmarks/results as they are")
    ap.add_argument("--no-baseline", action="store_true",
                    help="skip the run without faults (another soak of the same corpus and steps has it)")
    args = ap.parse_args()
    files = 60 if args.quick else args.files
    corpus = make_corpus(files, args.hostile_pct, args.seed)
    hostile = sum(1 for p in corpus.rglob("h*_*") if p.is_file())
    steps = ["--skip", "analyze", "--skip", "embed"] if args.fast and not args.all_steps else []
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        # The same corpus without faults, on a fresh home: what the kills cost.
        baseline = None
        if not args.no_baseline:
            baseline = run_ingest(corpus, Path(tmp) / "baseline", steps, kill_every=0, seed=args.seed)
            baseline.pop("summary_files")
        home = Path(tmp) / "home"
        faulted = run_ingest(corpus, home, steps, kill_every=args.kill_every, seed=args.seed)
        resume = run_ingest(corpus, home, steps, kill_every=0, seed=args.seed)
        catalog = Catalog.open(path=home / "catalog", url=None)
        try:
            report = verify(catalog, home / "output", deep=True)
        finally:
            catalog.close()
    # Files whose first run failed only because of the kills, and that the resume finished.
    first = {f["path"]: f for f in faulted.pop("summary_files")}
    second = {f["path"]: f for f in resume.pop("summary_files")}
    recovered = sorted(p for p, f in first.items() if f["status"] == "failed"
                       and second.get(p, {}).get("status") in ("ingested", "duplicate"))
    good = [f for f in first.values() if Path(f["path"]).name.startswith("clip_")]
    good_ingested = sum(1 for f in good if f["status"] == "ingested")
    result = {
        "when": datetime.now(UTC).isoformat(), "cpus": os.cpu_count(), "files": files, "hostile": hostile,
        "steps": "all but analyze, embed" if steps else "all", "kill_every_s": args.kill_every,
        "good_files": len(good), "good_ingested_in_faulted_run": good_ingested,
        "baseline": baseline, "faulted": faulted, "resume": resume, "recovered_by_resume": len(recovered),
        "verify": {"discrepancies": len(report.findings), "by_kind": report.counts(), "points": report.points,
                   "records": report.records, "clip_dirs": report.clip_dirs, "temp_files": len(report.temp_files),
                   "findings": [asdict(f) for f in report.findings]},
    }
    print(f"soak: {files} files ({hostile} hostile), {len(faulted['kills'])} worker kills "
          f"(mean every {args.kill_every:g} s), {os.cpu_count()} CPUs, steps: {result['steps']}")
    share = 100 * good_ingested / len(good) if good else 0.0
    print(f"good files ingested in the faulted run: {good_ingested} of {len(good)} ({share:.1f} %)")
    print(f"{'run':<12}{'wall s':>8}{'flow s':>8}{'files/s':>9}{'ingested':>10}{'duplicate':>10}{'failed':>8}"
          f"{'peak RSS MiB':>14}")
    for label, run in (("no faults", baseline), ("with kills", faulted), ("resume", resume)):
        if run is None:
            continue
        c = run["counts"]
        print(f"{label:<12}{run['wall_s']:>8}{run['flow_s']:>8}{run['files_per_s']:>9}{c['ingested']:>10}"
              f"{c['duplicate']:>10}{c['failed']:>8}{run['peak_rss_total_mb']:>14}")
    print("kills:", dict(Counter(str(k["process"]) for k in faulted["kills"])))
    print("prefect task retries (with kills):", faulted["prefect_retries"] or "none")
    print(f"files failed in the faulted run and finished by the resume: {len(recovered)}")
    for label, run in (("run with kills", faulted), ("resume: what is left, the hostile files", resume)):
        print(f"failures by reason ({label}):")
        for reason, n in run["failures"].items():
            print(f"  {n:>4}  {reason}")
    print("peak RSS per process kind, MiB (run with kills):")
    for kind, mb in sorted(faulted["peak_rss_mb"].items(), key=lambda kv: -kv[1]):
        print(f"  {mb:>8.1f}  {kind}")
    v = result["verify"]
    print(f"consistency: {v['discrepancies']} discrepancies {v['by_kind'] or ''}; {v['points']} points, "
          f"{v['records']} records, {v['clip_dirs']} clip folders, {v['temp_files']} temp files")
    by_clip = {f.get("clip_id"): f for f in first.values()}
    for finding in v["findings"]:
        print(f"  {finding['kind']}: clip {finding['clip_id']}: {finding['detail']}")
        if (seen := by_clip.get(finding["clip_id"])) is not None:  # what the faulted run said of it
            print(f"    faulted run: {seen['status']} {json.dumps(seen['errors'])[:400]}")
    if not args.no_save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "soak.json").write_text(json.dumps(result, indent=2))
        chart(result, RESULTS / "soak.png")
        print(f"results: {RESULTS / 'soak.json'}  chart: {RESULTS / 'soak.png'}")
    return 0 if v["discrepancies"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
