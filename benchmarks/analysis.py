"""How fast is the warm AnalyzerPool, and do its models load once per actor?

Feeds the same prepared files (frames decoded once, records built once, frames in
Ray's object store) to ``rayflow.engine.pools.AnalyzerPool``: 1 actor running a
clip's roles one after another (the default on a CPU), then 1 actor and N actors running
them side by side (``AnalysisSettings.overlap``, the default on a GPU). Each pool makes two passes over the
files on the same, still running actors:

  cold — ``AnalyzerPool.start`` + the first pass: actor start and model loading included
  warm — a second pass over the same files: the steady state of a long ingest

Reports clips/s, seconds of footage analysed per second, the model load count (summed
``stats()["loads"]``: it must equal the number of actors, never the number of files),
the load time, and each model's share of the analysis time (``AnalyzeResult.timings``
summed per role). The corpus is generated clips (testsrc2 + drawtext captions +
an espeak-ng sentence) plus the video files of ../shared/media when present. A fourth pool
(1 actor, roles in turn) times the same generated clips made ``--long-seconds`` long: a file
gets 12 frames at most, so the per-second cost depends on clip length.

Prints a table, writes benchmarks/results/analysis.json and analysis.png. The same
script runs unchanged on a machine with a GPU (the actors then pick CUDA themselves).

    .venv/bin/python benchmarks/analysis.py [--clips 3] [--seconds 6] [--size 640x360]
                                            [--workers 2] [--no-shared] [--long-seconds 30]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rayflow.config import Settings, load_settings  # noqa: E402
from rayflow.engine import runtime  # noqa: E402
from rayflow.engine.assemble import build_record  # noqa: E402
from rayflow.engine.outcomes import ProbeOutcome, SampleOutcome  # noqa: E402
from rayflow.engine.pools import AnalyzerPool  # noqa: E402
from rayflow.media.decode import Frames  # noqa: E402
from rayflow.record import ClipRecord  # noqa: E402
from rayflow.stages.fingerprint import fingerprint  # noqa: E402
from rayflow.stages.frames import sample_frames  # noqa: E402
from rayflow.stages.probe import probe  # noqa: E402
from tests.media import find_font  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
CACHE = ROOT / "benchmarks" / ".cache"
SHARED_MEDIA = ROOT.parent / "shared" / "media"
FFMPEG = ["ffmpeg", "-nostdin", "-v", "error", "-y"]
SENTENCES = (
    "the quick brown fox jumps over the lazy dog",
    "welcome to the evening news from the harbour",
    "please keep your ticket until the end of the journey",
    "the weather tomorrow will be cold with light rain",
    "our next guest has travelled a long way to be here",
    "thank you for watching and see you next week",
)
SHARED_PICK = ("with-gps.mov", "sample_av1.mp4", "bbb_2500ms.ts", "hlg10-color-test.mp4", "100_0306.AVI")
"""Real footage used by default: five containers/codecs (rotated iPhone H.264 with a face, AV1,
1080p MPEG-2 TS, HEVC 10-bit HLG, MJPEG AVI) at ~27 s of CPU analysis per pass; ``--all-shared``
adds the other four videos (~35 s more per pass, too long for the ~4 min budget on 2 cores)."""
IN_FLIGHT_PER_ACTOR = 2
"""Files queued on each actor at once, as the flow does: one running, one waiting."""
UNUSED_PREFECT_URL = "http://127.0.0.1:9/api"
"""The actors never talk to Prefect; start_ray only wants a URL to export."""


@dataclass
class Prepared:
    """One file ready for the pool: what the flow has in hand when it submits."""

    path: Path
    clip_id: str
    duration_s: float
    record: ClipRecord
    frames: Frames
    frames_ref: Any = None


def make_corpus(n: int, seconds: float, size: str) -> list[Path]:
    """n distinct clips: testsrc2 with a per-clip hue, a burnt-in caption and speech from
    0.5 s (espeak-ng: one sentence per started 6 s, so a 30 s clip talks for ~20 s), h264
    ultrafast + AAC. Cached between runs."""
    sentences = max(1, int(seconds // 6))
    folder = CACHE / (f"analysis_{n}x{seconds:g}s_{size}" + (f"_{sentences}sentences" if sentences > 1 else ""))
    folder.mkdir(parents=True, exist_ok=True)
    font = find_font()
    paths = []
    for i in range(n):
        out = folder / f"clip_{i:03d}.mp4"
        if not out.exists():
            wav = folder / f"clip_{i:03d}.wav"
            speech = ". ".join(SENTENCES[(i + k) % len(SENTENCES)] for k in range(sentences))
            subprocess.run(["espeak-ng", "-w", str(wav), speech],
                           check=True, timeout=60, capture_output=True)
            caption = [f"text='RAYFLOW CLIP {i + 1}'", "fontsize=36", "fontcolor=white",
                       "box=1", "boxcolor=black@0.6", "x=(w-text_w)/2", "y=h-text_h-24"]
            if font is not None:
                caption.insert(0, f"fontfile={font}")
            tmp = out.with_suffix(".tmp.mp4")
            subprocess.run(
                [*FFMPEG, "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25:duration={seconds}",
                 "-i", str(wav),
                 "-filter_complex", f"[0:v]hue=h={(i * 37) % 360},drawtext={':'.join(caption)}[v];"
                                    "[1:a]adelay=500:all=1,apad,aresample=44100[a]",
                 "-map", "[v]", "-map", "[a]", "-t", f"{seconds:g}",
                 "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                 "-c:a", "aac", "-b:a", "64k", str(tmp)],
                check=True, timeout=300, capture_output=True)
            os.replace(tmp, out)
            wav.unlink(missing_ok=True)
        paths.append(out)
    return paths


def shared_candidates(*, everything: bool) -> list[Path]:
    """Files of ../shared/media (SHARED_PICK, or all but the MANIFEST); prepare() keeps the videos."""
    if not SHARED_MEDIA.is_dir():
        return []
    files = sorted(p for p in SHARED_MEDIA.iterdir() if p.is_file() and p.suffix.lower() != ".md")
    return files if everything else [p for p in files if p.name in SHARED_PICK]


def prepare(paths: list[Path], settings: Settings) -> tuple[list[Prepared], list[str]]:
    """Fingerprint, probe, sample and build the record of each file once; skip non-videos."""
    items: list[Prepared] = []
    skipped: list[str] = []
    for path in paths:
        t = time.perf_counter()
        fp = fingerprint(path)
        fingerprint_s = time.perf_counter() - t
        t = time.perf_counter()
        result = probe(path, timeouts=settings.timeouts)
        probed = ProbeOutcome(result, None, time.perf_counter() - t)
        if result.kind != "video" or result.video is None:
            skipped.append(f"{path.name} ({result.kind})")
            continue
        frames, info = sample_frames(path, rotation=result.video.rotation, settings=settings.sample,
                                     timeout_s=settings.timeouts.decode_s)
        record = build_record(fp=fp, probed=probed, sampled=SampleOutcome(sample=info), errors={},
                              run_id="bench", fingerprint_s=fingerprint_s)
        duration_s = (result.video.duration_s or
                      (result.container.duration_s if result.container else None) or 0.0)
        items.append(Prepared(path, fp.clip_id, float(duration_s), record, frames))
    return items, skipped


def run_pass(pool: AnalyzerPool, items: list[Prepared]) -> dict[str, Any]:
    """Every file through the pool, at most IN_FLIGHT_PER_ACTOR queued per actor."""
    import ray

    window = IN_FLIGHT_PER_ACTOR * len(pool.actors)
    pending: dict[Any, tuple[int, Prepared]] = {}
    role_s: dict[str, float] = defaultdict(float)
    file_roles: dict[str, dict[str, float]] = {}
    errors: dict[str, dict[str, str]] = {}
    queue = list(items)
    first_result_s: float | None = None
    started = time.perf_counter()
    while queue or pending:
        while queue and len(pending) < window:
            item = queue.pop(0)
            ref, index = pool.submit(str(item.path), item.clip_id, item.frames_ref, item.record)
            pending[ref] = (index, item)
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            index, item = pending.pop(ref)
            pool.done(index)
            result = ray.get(ref)
            if first_result_s is None:
                first_result_s = time.perf_counter() - started
            for role, seconds in result.timings.items():
                role_s[role] += seconds
            file_roles[item.path.name] = dict(result.timings)
            if result.errors:
                errors[item.path.name] = dict(result.errors)
    wall = time.perf_counter() - started
    footage_s = sum(i.duration_s for i in items)
    return {"wall_s": wall, "files": len(items), "footage_s": footage_s,
            "clips_per_s": len(items) / wall, "footage_s_per_s": footage_s / wall,
            "first_result_s": first_result_s, "role_s": dict(role_s), "file_roles": file_roles, "errors": errors}


def by_source(items: list[Prepared], file_roles: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Footage and analysis seconds (summed inside ``process()``) of the generated clips and of
    the real files apart: the generated ones are dense with small text, the real ones short."""
    out: dict[str, dict[str, float]] = {}
    for source in ("generated", "real"):
        chosen = [i for i in items if (i.path.parent == SHARED_MEDIA) == (source == "real")]
        if chosen:
            out[source] = _speed(chosen, file_roles)
    return out


def _speed(items: list[Prepared], file_roles: dict[str, dict[str, float]]) -> dict[str, float]:
    """Files, footage seconds, analysis seconds (summed inside ``process()``) and their ratio."""
    footage = sum(i.duration_s for i in items)
    spent = sum(sum(file_roles[i.path.name].values()) for i in items)
    return {"files": len(items), "footage_s": footage, "analysis_s": spent,
            "footage_s_per_s": footage / spent if spent else 0.0}


def by_length(args: argparse.Namespace, items: list[Prepared], serial: dict[str, Any],
              long_items: list[Prepared], long_run: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Speed of the generated clips at ``--seconds`` (the roles-in-turn pool's warm pass) and at
    ``--long-seconds`` (a pool of its own, its wall time too), both 1 actor, roles in turn."""
    if long_run is None:
        return {}
    short = [i for i in items if i.path.parent != SHARED_MEDIA]
    return {f"{args.seconds:g} s": _speed(short, serial["warm"]["file_roles"]),
            f"{args.long_seconds:g} s": {**_speed(long_items, long_run["warm"]["file_roles"]),
                                         "wall_footage_s_per_s": long_run["warm"]["footage_s_per_s"],
                                         "role_s": long_run["warm"]["role_s"], "errors": long_run["warm"]["errors"]}}


def run_pool(items: list[Prepared], home: Path, workers: int, *, overlap: bool = True) -> dict[str, Any]:
    """Start a pool of ``workers`` actors (a clip's roles side by side, or one after another
    without ``overlap``), a cold then a warm pass, then its stats."""
    settings = load_settings(env={}, home=home, analysis={"workers": workers, "overlap": overlap})
    started = time.perf_counter()
    pool = AnalyzerPool.start(settings)
    try:
        cold = run_pass(pool, items)
        cold["wall_s"] = time.perf_counter() - started  # actor start + model loads included
        cold["clips_per_s"] = cold["files"] / cold["wall_s"]
        cold["footage_s_per_s"] = cold["footage_s"] / cold["wall_s"]
        warm = run_pass(pool, items)
        stats = pool.stats()
    finally:
        pool.stop()
    return {"workers": len(stats), "overlap": overlap, "plan": pool.plan.reason, "cold": cold, "warm": warm,
            "actors": stats, "loads": sum(s["loads"] for s in stats),
            "load_s": [s["load_s"] for s in stats],
            "files_per_actor": [s["files"] for s in stats],
            "devices": sorted({s["device"] for s in stats}),
            "models": stats[0]["models"] if stats else {}}


def chart(result: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    runs = result["runs"]
    labels = [_label(r) for r in runs]
    x = range(len(runs))
    ax1.bar([i - 0.2 for i in x], [r["cold"]["footage_s_per_s"] for r in runs], 0.4,
            label="cold (start + load + pass 1)", color="#888")
    ax1.bar([i + 0.2 for i in x], [r["warm"]["footage_s_per_s"] for r in runs], 0.4,
            label="warm (pass 2, same actors)", color="#2a7")
    ax1.set_xticks(list(x), labels)
    ax1.set_ylabel("seconds of footage analysed per second")
    ax1.set_title(f"{result['files']} files, {result['footage_s']:.0f} s of footage, "
                  f"{result['device']}, {result['cpus']} CPUs")
    ax1.set_ylim(0, 1.3 * max(r["warm"]["footage_s_per_s"] for r in runs))
    ax1.legend(loc="upper left")
    warm = runs[0]["warm"]["role_s"]
    roles = sorted(warm, key=warm.__getitem__, reverse=True)
    total = sum(warm.values()) or 1.0
    ax2.barh(roles[::-1], [100 * warm[r] / total for r in roles[::-1]], color="#155")
    ax2.set_xlim(0, 115 * max(warm.values()) / total)
    ax2.set_xlabel(f"% of analysis time, warm pass, {_label(runs[0])}")
    for i, role in enumerate(roles[::-1]):
        ax2.text(100 * warm[role] / total + 0.5, i, f"{warm[role]:.1f} s", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def _label(run: dict[str, Any]) -> str:
    """e.g. '1 actor, roles in turn' or '2 actors, roles overlapped'."""
    return (f"{run['workers']} actor{'s' if run['workers'] > 1 else ''}, "
            f"roles {'overlapped' if run.get('overlap', True) else 'in turn'}")


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--workers", type=int, default=2, help="actors of the second pool (the first has 1)")
    ap.add_argument("--no-shared", action="store_true", help="leave out ../shared/media")
    ap.add_argument("--all-shared", action="store_true", help="every video of ../shared/media, not SHARED_PICK")
    ap.add_argument("--long-seconds", type=float, default=30.0,
                    help="also time --clips generated clips this long, roles in turn (0: not)")
    args = ap.parse_args()

    import torch

    cuda = torch.cuda.is_available()
    device = torch.cuda.get_device_name(0) if cuda else "no GPU (CPU only)"
    paths = make_corpus(args.clips, args.seconds, args.size)
    if not args.no_shared:
        paths += shared_candidates(everything=args.all_shared)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="rfan-") as tmp:
        home = Path(tmp) / "home"
        settings = load_settings(env={}, home=home)
        t = time.perf_counter()
        items, skipped = prepare(paths, settings)
        prepare_s = time.perf_counter() - t
        long_items = (prepare(make_corpus(args.clips, args.long_seconds, args.size), settings)[0]
                      if args.long_seconds > 0 else [])
        info = runtime.start_ray(home, address=None, prefect_api_url=UNUSED_PREFECT_URL)
        try:
            import ray

            for item in [*items, *long_items]:
                item.frames_ref = ray.put(item.frames)
            # the same single actor with a clip's roles one after another, then side by side
            runs = [run_pool(items, home / "serial", 1, overlap=False),
                    *(run_pool(items, home / f"w{w}", w) for w in sorted({1, args.workers}))]
            # the same generated clips, longer: a file's frame count is capped (sample.count)
            long_run = run_pool(long_items, home / "long", 1, overlap=False) if long_items else None
        finally:
            runtime.stop_ray()
    load_after = os.getloadavg()[0]

    result: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(), "cpus": os.cpu_count(), "cuda": cuda, "device": device,
        "load_avg_1m": {"before": load_before, "after": load_after},
        "ray_cpus": info.num_cpus, "ray_gpus": info.num_gpus, "files": len(items),
        "footage_s": sum(i.duration_s for i in items), "skipped": skipped, "prepare_s": prepare_s,
        "corpus": {"generated": f"{args.clips} x {args.seconds:g}s {args.size}",
                   "shared": [i.path.name for i in items if i.path.parent == SHARED_MEDIA]},
        "runs": runs,
        "by_source": by_source(items, runs[0]["warm"]["file_roles"]),  # roles in turn: their sum is the time
        "by_length": by_length(args, items, runs[0], long_items, long_run),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "analysis.json").write_text(json.dumps(result, indent=2))
    chart(result, RESULTS / "analysis.png")

    n = len(items)
    print(f"{n} files, {result['footage_s']:.1f} s of footage "
          f"({args.clips} generated {args.seconds:g}s {args.size} + {n - args.clips} from ../shared/media); "
          f"skipped: {', '.join(skipped) or 'none'}")
    rows: list[tuple[str, ...]] = [("pool", "pass", "wall s", "clips/s", "footage s/s", "1st result s",
                                    "model loads", "load s/actor", "files/actor")]
    for r in runs:
        for name in ("cold", "warm"):
            p = r[name]
            rows.append((_label(r), name, f"{p['wall_s']:.1f}", f"{p['clips_per_s']:.2f}",
                         f"{p['footage_s_per_s']:.2f}", f"{p['first_result_s']:.1f}",
                         f"{r['loads']}" if name == "warm" else "",
                         "/".join(f"{s:.1f}" for s in r["load_s"]) if name == "warm" else "",
                         "/".join(map(str, r["files_per_actor"])) if name == "warm" else ""))
    _table(rows)
    for r in runs:
        ok = r["loads"] == r["workers"]
        print(f"loads once per actor, {_label(r)}: {'yes' if ok else 'NO'} "
              f"({r['loads']} load(s) for {2 * n} analyses)  [{r['plan']}; device {', '.join(r['devices'])}]")
    print(f"load average (1 min): {load_before:.2f} before the run (other work on the box: noise in every "
          f"number here), {load_after:.2f} after it (this run included); {result['cpus']} CPUs")
    for r in runs:
        print(f"cold - warm, {_label(r)}: {r['cold']['wall_s'] - r['warm']['wall_s']:.1f} s "
              f"(actor start + model load {max(r['load_s']):.1f} s + first-call warm-up)")
    print("\nper-model time, warm pass (seconds summed over files, share of the sum; overlapped roles "
          "share the cores, so their sum exceeds the wall time):")
    roles = sorted({k for r in runs for k in r["warm"]["role_s"]},
                   key=lambda k: -runs[0]["warm"]["role_s"].get(k, 0.0))
    header = "  ".join(_label(r).rjust(28) for r in runs)
    print(f"  {'role':<16}{header}")
    for role in roles:
        cells = []
        for r in runs:
            role_s = r["warm"]["role_s"]
            total = sum(role_s.values()) or 1.0
            cells.append(f"{role_s.get(role, 0.0):7.1f} s {100 * role_s.get(role, 0.0) / total:5.1f}%".rjust(28))
        print(f"  {role:<16}{'  '.join(cells)}")
    failed = {f: e for r in runs for f, e in r["warm"]["errors"].items()}
    if failed:
        print("\nper-file analysis errors (warm pass):")
        for name, errs in sorted(failed.items()):
            print(f"  {name}: " + "; ".join(f"{k}: {v[:100]}" for k, v in errs.items()))
    print("\nby source, warm, 1 actor, roles in turn (seconds inside process(), summed; the wall time above also has "
          "the queue's gaps):")
    for source, row in result["by_source"].items():
        print(f"  {source:<10} {row['files']} files, {row['footage_s']:5.1f} s of footage in "
              f"{row['analysis_s']:5.1f} s: {row['footage_s_per_s']:.2f}x real time")
    if result["by_length"]:
        print("\nby clip length, generated clips, warm, 1 actor, roles in turn (12 frames a file at most, "
              "so a longer clip costs less per second; speech grows with the talking):")
        for length, row in result["by_length"].items():
            print(f"  {length:>5} clips: {row['files']} files, {row['footage_s']:5.1f} s of footage in "
                  f"{row['analysis_s']:5.1f} s: {row['footage_s_per_s']:.2f}x real time"
                  + (f" ({row['wall_footage_s_per_s']:.2f}x by the pool's wall time)"
                     if "wall_footage_s_per_s" in row else ""))
    print("\nfirst analysis on a fresh actor vs the same file warm (seconds inside process()):")
    for r in runs:
        for item in items[: r["workers"]]:
            cold_roles = r["cold"]["file_roles"][item.path.name]
            warm_roles = r["warm"]["file_roles"][item.path.name]
            gain = max(cold_roles, key=lambda k: cold_roles[k] - warm_roles.get(k, 0.0))
            extra = cold_roles[gain] - warm_roles.get(gain, 0.0)
            where = (f"most in {gain}: {cold_roles[gain]:.1f} vs {warm_roles.get(gain, 0.0):.1f} s"
                     if extra > 0.5 else "no first-call warm-up above the noise")
            print(f"  {_label(r)}, {item.path.name}: {sum(cold_roles.values()):.1f} s cold vs "
                  f"{sum(warm_roles.values()):.1f} s warm ({where})")
    serial = runs[0]["warm"]["wall_s"]
    for r in runs[1:]:
        print(f"\nwarm speedup, {_label(r)} vs {_label(runs[0])}: {serial / r['warm']['wall_s']:.2f}x "
              f"on {result['cpus']} CPU(s)", end="")
    print()
    print(f"\ndevice: {device}" + ("" if cuda else
          " — torch.cuda.is_available() is False here; on a GPU machine the same command "
          "runs the models on CUDA (the actors choose the device themselves)"))
    print(f"results: {RESULTS / 'analysis.json'}  chart: {RESULTS / 'analysis.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
