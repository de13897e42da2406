"""Does rayflow's orchestration pay for itself? Sequential Python vs Prefect + Ray.

Runs the same stages (fingerprint, probe, sample, thumbnails, exposure, store) on a
generated corpus three ways, side by side in one run:

  a) sequential  — one plain Python process calling the stage functions in a loop
  b) rayflow     — `rayflow ingest --json` as a user runs it (fresh home: cold start
                   of the Prefect server and Ray included), default concurrency
  c) rayflow -c1 — the same with --concurrency 1, so (c) - (a) per file is the
                   orchestration overhead per file (time not spent in stage code)

Prints a table, writes benchmarks/results/pipeline.json and pipeline.png.

    .venv/bin/python benchmarks/pipeline.py [--clips 24] [--seconds 10] [--size 1280x720]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rayflow.catalog.store import Catalog, write_sidecar  # noqa: E402
from rayflow.config import load_settings  # noqa: E402
from rayflow.engine.assemble import build_record  # noqa: E402
from rayflow.engine.outcomes import ProbeOutcome, SampleOutcome  # noqa: E402
from rayflow.stages.exposure import measure_exposure  # noqa: E402
from rayflow.stages.fingerprint import fingerprint  # noqa: E402
from rayflow.stages.frames import sample_frames  # noqa: E402
from rayflow.stages.probe import probe  # noqa: E402
from rayflow.stages.thumbnails import write_thumbnails  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
CACHE = ROOT / "benchmarks" / ".cache"


def make_corpus(n: int, seconds: float, size: str) -> list[Path]:
    """n distinct clips (testsrc2 with a per-clip hue, a tone), h264 ultrafast + AAC."""
    folder = CACHE / f"pipeline_{n}x{seconds:g}s_{size}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        out = folder / f"clip_{i:03d}.mp4"
        if not out.exists():
            tmp = out.with_suffix(".tmp.mp4")
            subprocess.run(
                ["ffmpeg", "-nostdin", "-v", "error", "-y",
                 "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30:duration={seconds}",
                 "-f", "lavfi", "-i", f"sine=frequency={200 + 20 * i}:duration={seconds}",
                 "-vf", f"hue=h={(i * 37) % 360}", "-c:v", "libx264", "-preset", "ultrafast",
                 "-g", "60", "-c:a", "aac", "-b:a", "64k", "-shortest", str(tmp)],
                check=True, timeout=300)
            os.replace(tmp, out)
        paths.append(out)
    return paths


class PeakRss:
    """Samples the summed RSS of a process and all its descendants every 0.1 s."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                root = psutil.Process(self.pid)
                procs = [root, *root.children(recursive=True)]
                total = 0
                for p in procs:
                    with contextlib.suppress(psutil.Error):
                        total += p.memory_info().rss
                self.peak_bytes = max(self.peak_bytes, total)
            except psutil.Error:
                pass
            self._stop.wait(0.1)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_sequential(paths: list[Path], home: Path) -> dict:
    settings = load_settings(env={}, home=home)
    stage_s: dict[str, float] = defaultdict(float)
    catalog = Catalog.open(path=settings.catalog_dir, url=None)
    started = time.perf_counter()
    with PeakRss(os.getpid()) as mem:
        for path in paths:
            t = time.perf_counter()
            fp = fingerprint(path)
            stage_s["fingerprint"] += time.perf_counter() - t
            t = time.perf_counter()
            result = probe(path, timeouts=settings.timeouts)
            stage_s["probe"] += time.perf_counter() - t
            probed = ProbeOutcome(result, None, time.perf_counter() - t)
            t = time.perf_counter()
            frames, info = sample_frames(path, rotation=result.video.rotation,
                                         settings=settings.sample,
                                         timeout_s=settings.timeouts.decode_s)
            stage_s["sample"] += time.perf_counter() - t
            t = time.perf_counter()
            thumbs = write_thumbnails(frames, settings.clip_dir(fp.clip_id), settings.thumbnails)
            stage_s["thumbnails"] += time.perf_counter() - t
            t = time.perf_counter()
            exposure = measure_exposure(frames)
            stage_s["exposure"] += time.perf_counter() - t
            t = time.perf_counter()
            record = build_record(fp=fp, probed=probed,
                                  sampled=SampleOutcome(sample=info, thumbnails=thumbs,
                                                        exposure=exposure),
                                  errors={}, run_id="bench", fingerprint_s=0.0)
            write_sidecar(record, settings.records_dir)
            catalog.upsert([record])
            stage_s["store"] += time.perf_counter() - t
    wall = time.perf_counter() - started
    catalog.close()
    return {"wall_s": wall, "files": len(paths), "stage_s": dict(stage_s),
            "peak_rss_mb": max(mem.peak_bytes, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
            / 2**20}


def _first_task_start(home: Path) -> datetime | None:
    db = home / "prefect" / "prefect.db"
    with sqlite3.connect(db) as conn:
        row = conn.execute("select min(start_time) from task_run").fetchone()
    if not row or not row[0]:
        return None
    return datetime.fromisoformat(str(row[0]).replace(" ", "T")).replace(tzinfo=UTC)


def run_rayflow(paths: list[Path], home: Path, *, concurrency: int | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "RAY_ADDRESS")}
    args = [str(ROOT / ".venv" / "bin" / "rayflow"), "ingest", *map(str, paths), "--home", str(home),
            "--json", "--skip", "proxy", "--skip", "analyze", "--skip", "embed"]  # spine stages only, as (a)
    if concurrency:
        args += ["--concurrency", str(concurrency)]
    t0_wall = datetime.now(UTC)
    started = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    with PeakRss(proc.pid) as mem:
        out, err = proc.communicate(timeout=1800)
    wall = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"rayflow ingest failed ({proc.returncode}): {err[-2000:]}")
    summary = json.loads(out)
    flow_s = (datetime.fromisoformat(summary["finished_at"])
              - datetime.fromisoformat(summary["started_at"])).total_seconds()
    first = _first_task_start(home)
    stage_s: dict[str, float] = defaultdict(float)
    for f in summary["files"]:
        rec = json.loads((home / "output" / "records" / f"{f['clip_id']}.json").read_text())
        for t in rec["timings"]:
            stage_s[t["stage"]] += t["seconds"]
    ok = sum(1 for f in summary["files"] if f["status"] == "ingested")
    return {"wall_s": wall, "flow_s": flow_s, "files": len(paths), "ingested": ok,
            "cold_start_s": (first - t0_wall).total_seconds() if first else None,
            "stage_s": dict(stage_s), "peak_rss_mb": mem.peak_bytes / 2**20}


def chart(result: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    names = ["sequential", "rayflow", "rayflow -c1"]
    runs = [result["sequential"], result["rayflow"], result["rayflow_c1"]]
    ax1.bar(names, [r["wall_s"] for r in runs], color=["#888", "#2a7", "#7a2"], label="total wall")
    ax1.bar(names[1:], [r["flow_s"] for r in runs[1:]], color="#155", label="flow only")
    ax1.set_ylabel("seconds")
    ax1.set_title(f"{result['files']} clips, {result['clip']}")
    ax1.legend()
    stages = sorted(set(result["sequential"]["stage_s"]) | set(result["rayflow"]["stage_s"]))
    x = range(len(stages))
    ax2.bar([i - 0.2 for i in x], [result["sequential"]["stage_s"].get(s, 0) for s in stages], 0.4,
            label="sequential", color="#888")
    ax2.bar([i + 0.2 for i in x], [result["rayflow"]["stage_s"].get(s, 0) for s in stages], 0.4,
            label="rayflow (inside tasks)", color="#2a7")
    ax2.set_xticks(list(x), stages, rotation=20)
    ax2.set_ylabel("stage seconds, summed over files")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--size", default="1280x720")
    args = ap.parse_args()
    paths = make_corpus(args.clips, args.seconds, args.size)
    with tempfile.TemporaryDirectory(prefix="rfbench-") as tmp:
        seq = run_sequential(paths, Path(tmp) / "seq")
        ray_run = run_rayflow(paths, Path(tmp) / "rf", concurrency=None)
        ray_c1 = run_rayflow(paths, Path(tmp) / "rf1", concurrency=1)
    n = len(paths)
    result = {
        "when": datetime.now(UTC).isoformat(), "cpus": os.cpu_count(), "files": n,
        "clip": f"{args.seconds:g}s {args.size}",
        "sequential": seq, "rayflow": ray_run, "rayflow_c1": ray_c1,
        "speedup_total": seq["wall_s"] / ray_run["wall_s"],
        "speedup_flow": seq["wall_s"] / ray_run["flow_s"],
        "overhead_per_file_s": (ray_c1["flow_s"] - seq["wall_s"]) / n,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "pipeline.json").write_text(json.dumps(result, indent=2))
    chart(result, RESULTS / "pipeline.png")
    rows = [
        ("run", "wall s", "flow s", "files/s (flow)", "peak RSS MB", "cold start s"),
        ("sequential", f"{seq['wall_s']:.1f}", f"{seq['wall_s']:.1f}", f"{n / seq['wall_s']:.2f}",
         f"{seq['peak_rss_mb']:.0f}", "—"),
        ("rayflow", f"{ray_run['wall_s']:.1f}", f"{ray_run['flow_s']:.1f}",
         f"{n / ray_run['flow_s']:.2f}", f"{ray_run['peak_rss_mb']:.0f}",
         f"{ray_run['cold_start_s']:.1f}" if ray_run["cold_start_s"] is not None else "?"),
        ("rayflow -c1", f"{ray_c1['wall_s']:.1f}", f"{ray_c1['flow_s']:.1f}",
         f"{n / ray_c1['flow_s']:.2f}", f"{ray_c1['peak_rss_mb']:.0f}",
         f"{ray_c1['cold_start_s']:.1f}" if ray_c1["cold_start_s"] is not None else "?"),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))
    print(f"\nspeedup (sequential / rayflow): {result['speedup_flow']:.2f}x flow only, "
          f"{result['speedup_total']:.2f}x including cold start  [target >= 1.6x]")
    print(f"orchestration overhead per file: {result['overhead_per_file_s']:.3f} s  [target <= 0.3 s]")
    print("stage seconds summed over files (sequential | rayflow):")
    for stage in sorted(set(seq["stage_s"]) | set(ray_run["stage_s"])):
        print(f"  {stage:<12} {seq['stage_s'].get(stage, 0):7.2f} | {ray_run['stage_s'].get(stage, 0):7.2f}")
    print(f"results: {RESULTS / 'pipeline.json'}  chart: {RESULTS / 'pipeline.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
