"""Proxy encode benchmark: what does rayflow's proxy stage cost over bare ffmpeg, how fast is
each encoder this machine has, and how does throughput scale with parallel encodes?

Inputs: three generated 10 s 720p clips (H.264 25 fps + AAC; H.264 60 fps, capped to 30;
HEVC Main 10 PQ, tone-mapped) cached under ``benchmarks/.cache/encode`` (made once with
``-preset ultrafast``), plus real footage from ``../shared/media``.

1. Overhead: ``make_proxy`` (temp file, progress parsing, output probe, sidecar) against
   the very argv it runs (``build_argv``), run directly by ``subprocess.run``; medians of
   ``--repeats`` runs, alternating order. Target: ratio <= 1.05.
2. Encoder speed: output frames per second for every encoder detection finds usable
   (NVENC where the GPU has it; libx264, and libx265 for comparison).
3. Parallel encodes: the four 10 s inputs encoded by 1..N concurrent ``make_proxy`` calls
   (N = CPU count), each with ``cpu_encode_threads(cpus, workers)`` threads.

Run: ``.venv/bin/python benchmarks/encode.py`` (about 2-3 min on 2 cores). Writes
``benchmarks/results/encode.json`` and ``encode.png`` and prints a table.
Note: the GPU machine this project may borrow is an H200, which has no NVENC engine, so
NVENC rows appear only on L4/L40S/T4/RTX-class nodes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rayflow.config import ProxySettings  # noqa: E402  (after the path fix above)
from rayflow.media.encoders import (  # noqa: E402
    EncoderPlan,
    cpu_encode_threads,
    detect_encoders,
    list_gpus,
)
from rayflow.stages.proxy import ProxySource, build_argv, make_proxy  # noqa: E402

log = logging.getLogger("benchmarks.encode")

CACHE = ROOT / "benchmarks" / ".cache" / "encode"
RESULTS = ROOT / "benchmarks" / "results"
SHARED = ROOT.parent / "shared" / "media"
FF = ["ffmpeg", "-nostdin", "-v", "error", "-y"]

GENERATED: dict[str, list[str]] = {
    # 720p 25 fps H.264 + AAC stereo, 10 s.
    "gen_720p25_h264.mp4": [
        "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25:duration=10",
        "-f", "lavfi", "-i", "sine=frequency=440:duration=10",
        "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-ac", "2"],
    # 720p 60 fps H.264, 10 s: the proxy caps it to 30 fps.
    "gen_720p60_h264.mp4": [
        "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=60:duration=10",
        "-c:v", "libx264", "-preset", "ultrafast"],
    # 720p 25 fps HEVC Main 10 PQ/BT.2020, 10 s: the proxy tone-maps it.
    "gen_720p25_hdr10.mp4": [
        "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25:duration=10",
        "-vf", "zscale=tin=bt709:min=bt709:pin=bt709:rin=tv:t=smpte2084:m=bt2020nc:p=bt2020:r=tv"
               ":npl=100,format=yuv420p10le",
        "-c:v", "libx265", "-preset", "ultrafast",
        "-x265-params", "log-level=error:colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc",
        "-color_primaries", "bt2020", "-color_trc", "smpte2084", "-colorspace", "bt2020nc"],
}
TEN_SECONDS = (*GENERATED, "sintel_trailer_10s.mp4", "max-heromode.mp4")
"""The inputs of about 10 s, where the overhead target applies (a fixed cost dominates 0.3 s clips)."""
SHARED_INPUTS = ("sintel_trailer_10s.mp4", "max-heromode.mp4", "bigbuckbunny.mp4", "hlg10-color-test.mp4")


def make_inputs() -> dict[str, Path]:
    CACHE.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, args in GENERATED.items():
        out = CACHE / name
        if not out.exists():
            tmp = out.with_name(out.name + ".part.mp4")
            subprocess.run([*FF, *args, str(tmp)], check=True, timeout=300)
            tmp.replace(out)
        paths[name] = out
    for name in SHARED_INPUTS:
        if (SHARED / name).exists():
            paths[name] = SHARED / name
    return paths


def source_of(path: Path) -> ProxySource:
    """ProxySource from one ffprobe call (the engine builds it from the record instead)."""
    out = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json",
                          "file:" + str(path)], capture_output=True, check=True, timeout=60)
    data = json.loads(out.stdout)
    video = next(s for s in data["streams"] if s["codec_type"] == "video")
    audio = [s for s in data["streams"] if s["codec_type"] == "audio"]
    chosen = next((s for s in audio if s.get("disposition", {}).get("default")), audio[0] if audio else None)
    num, den = (int(x) for x in video["avg_frame_rate"].split("/"))
    matrix = next((sd["rotation"] for sd in video.get("side_data_list", []) if "rotation" in sd), 0)
    transfer = video.get("color_transfer")
    return ProxySource(
        width=video["width"], height=video["height"], rotation=round(-float(matrix) / 90) * 90 % 360,
        fps=num / den if den else None,
        duration_s=float(video.get("duration") or data["format"].get("duration") or 0) or None,
        is_hdr=transfer in ("smpte2084", "arib-std-b67"), transfer=transfer,
        audio_index=chosen["index"] if chosen else None, video_index=video["index"],
        video_codec=video["codec_name"], pix_fmt=video.get("pix_fmt"),
    )


def frames_of(path: Path) -> int:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "V:0", "-count_packets",
                          "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", "file:" + str(path)],
                         capture_output=True, check=True, timeout=60)
    return int(out.stdout.decode().strip().strip(","))


def _cpu_s() -> float:
    """CPU seconds used so far by this process and its waited-for children (ffmpeg, ffprobe)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def time_stage(path: Path, src: ProxySource, settings: ProxySettings, plan: EncoderPlan, threads: int,
               work: Path) -> tuple[float, float, Any]:
    """(wall s, CPU s, ProxyInfo) of one make_proxy into a fresh folder (CPU only meaningful serially)."""
    out = Path(tempfile.mkdtemp(dir=work))
    cpu, started = _cpu_s(), time.perf_counter()
    info = make_proxy(path, out_dir=out, source=src, settings=settings, plan=plan, threads=threads,
                      timeout_s=600, on_progress=lambda fraction: None)
    elapsed, cpu = time.perf_counter() - started, _cpu_s() - cpu
    shutil.rmtree(out)
    return elapsed, cpu, info


def time_bare(path: Path, src: ProxySource, settings: ProxySettings, plan: EncoderPlan, threads: int,
              work: Path) -> tuple[float, float]:
    """(wall s, CPU s) of the same argv make_proxy would run, run directly."""
    out = work / "bare.mp4"
    argv = build_argv(path, out_path=out, source=src, settings=settings, encoder=plan.encoders[0],
                      threads=threads, tone_mapper=plan.tone_mapper)
    cpu, started = _cpu_s(), time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL, timeout=600)
    elapsed, cpu = time.perf_counter() - started, _cpu_s() - cpu
    out.unlink()
    return elapsed, cpu


def bench_overhead(inputs: dict[str, Path], plan: EncoderPlan, threads: int, repeats: int,
                   work: Path) -> list[dict[str, Any]]:
    """Best-of-``repeats`` wall time and median CPU time, stage vs bare, order alternating.

    Best-of (not median) wall time because other processes share the machine: interference
    only ever adds time. CPU time is the steadier measure of what the stage itself adds."""
    settings = ProxySettings()
    rows = []
    for name, path in inputs.items():
        src = source_of(path)
        stage: list[tuple[float, float]] = []
        bare: list[tuple[float, float]] = []
        info = None
        for i in range(repeats):
            if i % 2 == 1:
                bare.append(time_bare(path, src, settings, plan, threads, work))
            wall, cpu, info = time_stage(path, src, settings, plan, threads, work)
            stage.append((wall, cpu))
            if i % 2 == 0:
                bare.append(time_bare(path, src, settings, plan, threads, work))
        assert info is not None
        stage_s, bare_s = min(w for w, _ in stage), min(w for w, _ in bare)
        stage_cpu, bare_cpu = statistics.median(c for _, c in stage), statistics.median(c for _, c in bare)
        rows.append({"input": name, "encoder": info.encoder, "proxy": f"{info.width}x{info.height}",
                     "hdr": info.hdr_handling is not None, "stage_s": stage_s, "bare_s": bare_s,
                     "ratio": stage_s / bare_s, "stage_cpu_s": stage_cpu, "bare_cpu_s": bare_cpu,
                     "cpu_ratio": stage_cpu / bare_cpu, "added_s": stage_s - bare_s})
    return rows


def bench_encoders(path: Path, threads: int, work: Path) -> list[dict[str, Any]]:
    plan = detect_encoders(("hevc_nvenc", "h264_nvenc", "libx264", "libx265"), timeout_s=60)
    src = source_of(path)
    settings = ProxySettings()
    rows = []
    for encoder in plan.encoders:
        one = replace(plan, encoders=(encoder,))
        elapsed, _, info = time_stage(path, src, settings, one, threads, work)
        frames = round((info.duration_s or 0) * (info.fps or 0))
        rows.append({"encoder": encoder, "hardware": info.hardware, "frames": frames,
                     "seconds": elapsed, "fps": frames / elapsed, "size_bytes": info.size_bytes})
    for encoder, reason in plan.rejected:
        rows.append({"encoder": encoder, "hardware": encoder.endswith("_nvenc"), "unusable": reason})
    return rows


def bench_parallel(paths: list[Path], plan: EncoderPlan, cpus: int, work: Path) -> list[dict[str, Any]]:
    settings = ProxySettings()
    sources = {p: source_of(p) for p in paths}
    frames = sum(frames_of(p) for p in paths)
    rows = []
    for workers in range(1, cpus + 1):
        threads = cpu_encode_threads(cpus, workers)
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            jobs = [pool.submit(time_stage, p, sources[p], settings, plan, threads, work) for p in paths]
            for job in jobs:
                job.result()
        elapsed = time.perf_counter() - started
        rows.append({"workers": workers, "threads_each": threads, "clips": len(paths), "seconds": elapsed,
                     "input_frames_per_s": frames / elapsed, "clips_per_min": len(paths) * 60 / elapsed})
    return rows


def plot(result: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    over = result["overhead"]
    ax = axes[0]
    ys = range(len(over))
    ax.barh([y - 0.2 for y in ys], [r["ratio"] for r in over], height=0.4, color="tab:blue",
            label="wall (best of N)")
    ax.barh([y + 0.2 for y in ys], [r["cpu_ratio"] for r in over], height=0.4, color="tab:cyan",
            label="CPU (median)")
    ax.set_yticks(list(ys), [r["input"] for r in over])
    ax.axvline(1.05, color="tab:red", linestyle="--", label="target 1.05")
    ax.axvline(1.0, color="grey", linewidth=0.8)
    ax.set_xlim(min(0.8, min(min(r["ratio"], r["cpu_ratio"]) for r in over) - 0.05),
                max(1.15, max(max(r["ratio"], r["cpu_ratio"]) for r in over) + 0.05))
    ax.set_xlabel("make_proxy time / bare ffmpeg time")
    ax.set_title("Stage overhead")
    ax.legend(loc="lower right")
    enc = [r for r in result["encoders"] if "fps" in r]
    ax = axes[1]
    ax.bar([r["encoder"] for r in enc], [r["fps"] for r in enc],
           color=["tab:green" if r["hardware"] else "tab:orange" for r in enc])
    ax.set_ylabel("output frames / s")
    ax.set_title(f"Encoder speed ({result['encoder_input']})\nno NVENC on this machine"
                 if not any(r["hardware"] for r in enc) else "Encoder speed")
    par = result["parallel"]
    ax = axes[2]
    ax.plot([r["workers"] for r in par], [r["input_frames_per_s"] for r in par], marker="o")
    ax.set_xlabel("concurrent encodes (threads each = CPUs / workers)")
    ax.set_ylabel("input frames / s, all encodes")
    ax.set_xticks([r["workers"] for r in par])
    ax.set_ylim(0, max(r["input_frames_per_s"] for r in par) * 1.15)
    ax.set_title(f"Parallel encodes, {result['machine']['cpus']} CPUs")
    fig.suptitle(f"rayflow proxy encode - {result['machine']['note']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def print_table(result: dict[str, Any]) -> None:
    print(f"\nMachine: {result['machine']['cpus']} CPUs, GPUs: {result['machine']['gpus'] or 'none'}; "
          f"{result['machine']['note']}")
    print(f"Plan: {result['plan']['encoders']}  rejected: {result['plan']['rejected']}")
    print("\nOverhead: make_proxy vs the same argv run bare (wall: best of "
          f"{result['repeats']}; CPU: median; target ratio <= 1.05)")
    print(f"{'input':24} {'encoder':8} {'proxy':8} {'hdr':4} {'stage s':>8} {'bare s':>7} {'ratio':>6} "
          f"{'added s':>8} {'CPU s':>6} {'bare CPU':>8} {'CPU ratio':>9}")
    for r in result["overhead"]:
        print(f"{r['input']:24} {r['encoder']:8} {r['proxy']:8} {'yes' if r['hdr'] else 'no':4} "
              f"{r['stage_s']:8.3f} {r['bare_s']:7.3f} {r['ratio']:6.3f} {r['added_s']:8.3f} "
              f"{r['stage_cpu_s']:6.2f} {r['bare_cpu_s']:8.2f} {r['cpu_ratio']:9.3f}")
    print(f"\nEncoders on {result['encoder_input']} (threads={result['threads']})")
    print(f"{'encoder':11} {'hw':3} {'fps':>7} {'seconds':>8} {'size KB':>8}")
    for r in result["encoders"]:
        if "fps" in r:
            print(f"{r['encoder']:11} {'yes' if r['hardware'] else 'no':3} {r['fps']:7.1f} "
                  f"{r['seconds']:8.2f} {r['size_bytes'] / 1000:8.0f}")
        else:
            print(f"{r['encoder']:11} {'yes' if r['hardware'] else 'no':3} unusable: {r['unusable'][:90]}")
    print(f"\nParallel encodes of {result['parallel'][0]['clips']} x 10 s inputs")
    print(f"{'workers':>7} {'threads':>7} {'seconds':>8} {'in fps':>8} {'clips/min':>9}")
    for r in result["parallel"]:
        print(f"{r['workers']:7d} {r['threads_each']:7d} {r['seconds']:8.2f} {r['input_frames_per_s']:8.1f} "
              f"{r['clips_per_min']:9.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per input for the overhead medians")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    cpus = os.cpu_count() or 1
    started = time.perf_counter()
    inputs = make_inputs()
    plan = detect_encoders(ProxySettings().encoders, timeout_s=60)
    gpus, why = list_gpus()
    note = ("no GPU here: libx264 on the CPU" if not gpus else
            f"{', '.join(gpus)}" + ("" if plan.hardware else " has no NVENC: CPU encoder used"))
    note += "; the lent H200 has no NVENC either (NVDEC only)"
    threads = cpu_encode_threads(cpus, 1)
    with tempfile.TemporaryDirectory(prefix="rayflow-bench-") as tmp:
        work = Path(tmp)
        overhead = bench_overhead(inputs, plan, threads, args.repeats, work)
        encoder_input = "gen_720p25_h264.mp4"
        encoders_rows = bench_encoders(inputs[encoder_input], threads, work)
        ten_s = [p for n, p in inputs.items() if n in TEN_SECONDS]
        parallel = bench_parallel(ten_s, plan, cpus, work)
    result = {
        "benchmark": "encode", "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": {"cpus": cpus, "gpus": gpus, "no_gpu_reason": why, "python": platform.python_version(),
                    "ffmpeg": subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True,
                                             check=True).stdout.splitlines()[0], "note": note},
        "plan": {"encoders": list(plan.encoders), "rejected": dict(plan.rejected),
                 "tone_mapper": plan.tone_mapper, "nvdec": plan.nvdec_available},
        "threads": threads, "repeats": args.repeats, "overhead": overhead,
        "encoder_input": encoder_input, "encoders": encoders_rows, "parallel": parallel,
        "max_overhead_ratio_10s": max(r["ratio"] for r in overhead if r["input"] in TEN_SECONDS),
        "max_cpu_ratio_10s": max(r["cpu_ratio"] for r in overhead if r["input"] in TEN_SECONDS),
        "runtime_s": round(time.perf_counter() - started, 1),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "encode.json").write_text(json.dumps(result, indent=1))
    plot(result, RESULTS / "encode.png")
    print_table(result)
    print(f"\n10 s inputs: max wall ratio {result['max_overhead_ratio_10s']:.3f}, max CPU ratio "
          f"{result['max_cpu_ratio_10s']:.3f} (target <= 1.05); the stage adds a fixed ~50-100 ms "
          "(output ffprobe, sidecar), which shows on sub-second clips; "
          f"runtime {result['runtime_s']} s; wrote {RESULTS / 'encode.json'} and encode.png")


if __name__ == "__main__":
    main()
