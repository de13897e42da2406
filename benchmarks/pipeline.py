"""Does rayflow's orchestration pay for itself? A sequential script vs Prefect + Ray.

Runs the same stages on a generated corpus three ways, side by side in one run:

  a) sequential  — a fresh Python process calling the stage functions in a loop (models
                   loaded once, encoders detected once), start-up included
  b) rayflow     — `rayflow ingest --json` as a user runs it (fresh home: cold start of
                   the Prefect server, Ray, the model actors included), default concurrency
  c) rayflow -c1 — the same with --concurrency 1: (c)'s flow seconds minus (a)'s loop
                   seconds, per file, is the orchestration cost per file

Each run's CPU-seconds are the whole box's busy time over it (every process: Ray's, Prefect's,
ffmpeg's). From them: the parallel ceiling (the sequential script's CPU-seconds spread over
every core with no overhead: no orchestration of the same work can beat it on this box) and
rayflow's extra CPU per file. Run on a quiet box.

Steps: the DEFAULT ingest (fingerprint, probe, sample, thumbnails, exposure, analyze,
proxy, embed, store); ``--steps spine`` drops analyze, proxy and embed on both sides.
Prints a table, writes benchmarks/results/pipeline.json and pipeline.png (``--quick``:
pipeline-quick.json, no chart).

    .venv/bin/python benchmarks/pipeline.py [--clips 24] [--seconds 10] [--size 1280x720]
    .venv/bin/python benchmarks/pipeline.py --quick      # 6 x 3 s 640x360: a smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
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

SPINE_SKIPS = ("analyze", "proxy", "embed")

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


def busy_cpu_s() -> float:
    """CPU-seconds the whole box has spent busy since boot (all cores, /proc/stat via psutil).
    Differences around a run give what the run cost in CPU, every process of it included (Ray's
    and Prefect's, ffmpeg's); anything else running on the box counts too: run on a quiet box."""
    t = psutil.cpu_times()
    return float(t.user + t.system + getattr(t, "nice", 0.0) + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0))


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


class _Models:
    """What a sequential script loads once before its loop: the analyzer's models, the text
    encoder, the encoder plan and the catalog (the same objects rayflow's actors hold)."""

    def __init__(self, settings, full: bool) -> None:  # type: ignore[no-untyped-def]
        self.analyzer = self.encoder = self.plan = None
        if full:
            from rayflow.media.encoders import detect_encoders
            from rayflow.ml.device import torch_device
            from rayflow.stages.analyze import AnalyzeStage
            from rayflow.stages.embed import EmbedStage

            self.analyzer = AnalyzeStage(settings)
            self.analyzer.setup()
            embed = EmbedStage(settings.embed, model_dirs=settings.model_dirs())
            embed.setup(torch_device())  # as rayflow's embedder: NumPy MiniLM on a CPU
            self.encoder = embed.encoder
            self.plan = detect_encoders(settings.proxy.encoders, timeout_s=60)
        self.catalog = Catalog.open(path=settings.catalog_dir, url=None)


def _later_steps(path: Path, record, frames, settings, models: _Models,  # type: ignore[no-untyped-def]
                 stage_s: dict[str, float]):
    """analyze, proxy and embed of one clip, as the flow runs them (errors kept as values)."""
    from rayflow.stages.base import ClipInput
    from rayflow.stages.embed import embed_records
    from rayflow.stages.proxy import ProxySource, make_proxy

    t = time.perf_counter()
    result = models.analyzer.process(ClipInput.from_record(
        str(path), frames, record, clip_id=record.clip_id, out_dir=settings.clip_dir(record.clip_id),
        timeout_s=settings.timeouts.analyze_s))
    record.analysis = result.analysis
    record.errors.update(result.errors)
    stage_s["analyze"] += time.perf_counter() - t
    for role, seconds in result.timings.items():  # the roles inside, as rayflow's records list them
        stage_s[role] += seconds
    t = time.perf_counter()
    try:
        source = ProxySource.from_record(record.video, record.audio_tracks,
                                         duration_s=record.container.duration_s if record.container else None)
        record.proxy = make_proxy(path, out_dir=settings.clip_dir(record.clip_id), source=source,
                                  settings=settings.proxy, plan=models.plan, threads=os.cpu_count() or 1,
                                  timeout_s=settings.timeouts.proxy_s)
    except Exception as exc:  # as the flow: a failed proxy is recorded, the file goes on
        record.errors["proxy"] = str(exc)
    stage_s["proxy"] += time.perf_counter() - t
    t = time.perf_counter()
    (vectors,) = embed_records([record], models.encoder)
    stage_s["embed"] += time.perf_counter() - t
    return vectors


def sequential_script(paths: list[Path], home: Path, full: bool) -> dict:
    """The sequential baseline, run in its own process (``--sequential``): start-up, then
    one loop over the files calling each stage in turn."""
    settings = load_settings(env={}, home=home)
    stage_s: dict[str, float] = defaultdict(float)
    t0 = time.perf_counter()
    models = _Models(settings, full)
    startup_s = time.perf_counter() - t0
    started = time.perf_counter()
    for path in paths:
        t = time.perf_counter()
        fp = fingerprint(path)
        stage_s["fingerprint"] += time.perf_counter() - t
        t = time.perf_counter()
        result = probe(path, timeouts=settings.timeouts)
        stage_s["probe"] += time.perf_counter() - t
        probed = ProbeOutcome(result, None, time.perf_counter() - t)
        t = time.perf_counter()
        frames, info = sample_frames(path, rotation=result.video.rotation, settings=settings.sample,
                                     timeout_s=settings.timeouts.decode_s)
        stage_s["sample"] += time.perf_counter() - t
        t = time.perf_counter()
        thumbs = write_thumbnails(frames, settings.clip_dir(fp.clip_id), settings.thumbnails)
        stage_s["thumbnails"] += time.perf_counter() - t
        t = time.perf_counter()
        exposure = measure_exposure(frames)
        stage_s["exposure"] += time.perf_counter() - t
        record = build_record(fp=fp, probed=probed,
                              sampled=SampleOutcome(sample=info, thumbnails=thumbs, exposure=exposure),
                              errors={}, run_id="bench", fingerprint_s=0.0)
        vectors = _later_steps(path, record, frames, settings, models, stage_s) if full else None
        t = time.perf_counter()
        write_sidecar(record, settings.records_dir)
        models.catalog.upsert([record], [vectors] if vectors is not None else None)
        stage_s["store"] += time.perf_counter() - t
    loop_s = time.perf_counter() - started
    models.catalog.close()
    return {"startup_s": startup_s, "loop_s": loop_s, "stage_s": dict(stage_s)}


def run_sequential(paths: list[Path], home: Path, *, full: bool) -> dict:
    """Runs :func:`sequential_script` in a fresh interpreter: wall includes its start-up."""
    out = home / "sequential.json"
    args = [sys.executable, str(Path(__file__).resolve()), "--sequential", str(home), str(out),
            *(() if full else ("--steps", "spine")), *map(str, paths)]
    started, cpu0 = time.perf_counter(), busy_cpu_s()
    proc = subprocess.Popen(args, env={**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1"})
    with PeakRss(proc.pid) as mem:
        proc.wait(timeout=3600)
    wall, cpu_s = time.perf_counter() - started, busy_cpu_s() - cpu0
    if proc.returncode != 0:
        raise RuntimeError(f"the sequential script failed ({proc.returncode})")
    inner = json.loads(out.read_text())
    return {"wall_s": wall, "flow_s": inner["loop_s"], "files": len(paths), **inner,
            "cpu_s": cpu_s, "peak_rss_mb": mem.peak_bytes / 2**20}


def _first_task_start(home: Path) -> datetime | None:
    db = home / "prefect" / "prefect.db"
    with sqlite3.connect(db) as conn:
        row = conn.execute("select min(start_time) from task_run").fetchone()
    if not row or not row[0]:
        return None
    return datetime.fromisoformat(str(row[0]).replace(" ", "T")).replace(tzinfo=UTC)


def run_rayflow(paths: list[Path], home: Path, *, concurrency: int | None, full: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "RAY_ADDRESS")}
    env["PYTHONPATH"] = str(ROOT)  # this checkout's rayflow, in the CLI and its Ray workers
    args = [str(ROOT / ".venv" / "bin" / "rayflow"), "ingest", *map(str, paths), "--home", str(home), "--json"]
    if not full:  # the same steps as (a)
        args += [arg for step in SPINE_SKIPS for arg in ("--skip", step)]
    if concurrency:
        args += ["--concurrency", str(concurrency)]
    t0_wall = datetime.now(UTC)
    started, cpu0 = time.perf_counter(), busy_cpu_s()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    with PeakRss(proc.pid) as mem:
        out, err = proc.communicate(timeout=1800)
    wall, cpu_s = time.perf_counter() - started, busy_cpu_s() - cpu0
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
            "stage_s": dict(stage_s), "cpu_s": cpu_s, "peak_rss_mb": mem.peak_bytes / 2**20}


def chart(result: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    names = ["sequential", "rayflow", "rayflow -c1"]
    runs = [result["sequential"], result["rayflow"], result["rayflow_c1"]]
    ax1.bar(names, [r["wall_s"] for r in runs], color=["#888", "#2a7", "#7a2"], label="total wall")
    ax1.bar(names, [r["flow_s"] for r in runs], color="#155", label="loop / flow only")
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


def _table(result: dict) -> list[str]:
    n = result["files"]
    rows = [("run", "wall s", "start-up s", "loop/flow s", "files/s (loop)", "CPU s", "cores busy", "peak RSS MB")]
    for name, key in (("sequential", "sequential"), ("rayflow", "rayflow"), ("rayflow -c1", "rayflow_c1")):
        r = result[key]
        startup = r.get("startup_s", r["wall_s"] - r["flow_s"])
        rows.append((name, f"{r['wall_s']:.1f}", f"{startup:.1f}", f"{r['flow_s']:.1f}",
                     f"{n / r['flow_s']:.2f}", f"{r['cpu_s']:.1f}", f"{r['cpu_s'] / r['wall_s']:.2f}",
                     f"{r['peak_rss_mb']:.0f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--steps", choices=("default", "spine"), default="default",
                    help="default: every default ingest step; spine: without analyze, proxy, embed")
    ap.add_argument("--quick", action="store_true", help="6 clips of 3 s at 640x360: a smoke run")
    ap.add_argument("--sequential", nargs=2, metavar=("HOME", "OUT"), help=argparse.SUPPRESS)
    ap.add_argument("paths", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    full = args.steps == "default"
    if args.sequential:  # the baseline's own process (see run_sequential)
        home, out = map(Path, args.sequential)
        Path(out).write_text(json.dumps(sequential_script([Path(p) for p in args.paths], home, full)))
        return 0
    if args.quick:
        args.clips, args.seconds, args.size = 6, 3.0, "640x360"
    paths = make_corpus(args.clips, args.seconds, args.size)
    with tempfile.TemporaryDirectory(prefix="rfbench-") as tmp:
        seq = run_sequential(paths, Path(tmp) / "seq", full=full)
        ray_run = run_rayflow(paths, Path(tmp) / "rf", concurrency=None, full=full)
        ray_c1 = run_rayflow(paths, Path(tmp) / "rf1", concurrency=1, full=full)
    n = len(paths)
    result = {
        "when": datetime.now(UTC).isoformat(), "cpus": os.cpu_count(), "files": n,
        "clip": f"{args.seconds:g}s {args.size}", "steps": args.steps,
        "sequential": seq, "rayflow": ray_run, "rayflow_c1": ray_c1,
        "speedup_total": seq["wall_s"] / ray_run["wall_s"],
        "speedup_flow": seq["flow_s"] / ray_run["flow_s"],
        "orchestration_per_file_s": (ray_c1["flow_s"] - seq["flow_s"]) / n,
        # The most any parallel run of the sequential script's work could gain on this box: that
        # work's CPU-seconds spread evenly over every core, with no overhead at all.
        "parallel_ceiling": seq["wall_s"] / (seq["cpu_s"] / (os.cpu_count() or 1)),
        "extra_cpu_per_file_s": (ray_run["cpu_s"] - seq["cpu_s"]) / n,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "pipeline-quick" if args.quick else "pipeline"
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2))
    if not args.quick:
        chart(result, RESULTS / "pipeline.png")
    print(f"{n} clips of {result['clip']}, steps: {args.steps}, {os.cpu_count()} CPUs")
    print("\n".join(_table(result)))
    print(f"\nspeedup (sequential / rayflow): {result['speedup_total']:.2f}x including start-up "
          f"[target >= 1.6x], {result['speedup_flow']:.2f}x loop vs flow")
    print(f"parallel ceiling on this box: {result['parallel_ceiling']:.2f}x (the sequential script's "
          f"{seq['cpu_s']:.0f} CPU-s spread over {os.cpu_count()} cores, no overhead); rayflow spent "
          f"{result['extra_cpu_per_file_s']:+.2f} CPU-s per file beyond the script's")
    print(f"orchestration per file (rayflow -c1 flow - sequential loop) / files: "
          f"{result['orchestration_per_file_s']:.3f} s  [target <= 0.1 s]")
    print(f"rayflow: first task {ray_run['cold_start_s'] or float('nan'):.1f} s after the command")
    print("stage seconds summed over files (sequential | rayflow):")
    for stage in sorted(set(seq["stage_s"]) | set(ray_run["stage_s"])):
        print(f"  {stage:<12} {seq['stage_s'].get(stage, 0):7.2f} | {ray_run['stage_s'].get(stage, 0):7.2f}")
    print(f"results: {RESULTS / (name + '.json')}" + ("" if args.quick else f"  chart: {RESULTS / 'pipeline.png'}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
