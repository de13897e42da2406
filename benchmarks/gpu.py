"""Does the GPU do the heavy work? Each analysis role on the CPU and on CUDA, as plain Python.

For one NVIDIA GPU machine WITHOUT Ray or Prefect (Python, CUDA torch, transformers): the
project's stages are imported and run in this process, exactly as an analyzer actor runs
them. Per role that has a CUDA path (shots = TransNetV2, speech = faster-whisper, text =
the embed stage's sentence-transformers encoder, faces and screen_text when their stage
can use CUDA), the same clips go through the stage set up on "cpu" and on "cuda":

- device: what the stage OBSERVED after setup (``Stage.observed()``): the device it really
  runs on, its model, whether it fell back and why. A role whose stage has no CUDA path
  stays on the CPU and is reported so, with no speedup claimed.
- clips/s on each side (after one untimed warm-up clip, over ``--repeat`` passes) and the
  speedup; model load seconds.
- parity: shots' cuts within +-1 frame, speech's words equal (and their similarity),
  text vectors' cosine > 0.99, face counts equal, on-screen words equal.

Then a batched analysis run: every clip, ``--repeat`` times, through ONE ``AnalyzeStage``
set up on CUDA with the roles that ran on CUDA above, then the embed stage over all the
records at once (texts batched across files), while ``GpuMonitor`` samples NVML: the GPU
busy share (mean, peak) and peak memory.

Writes ``benchmarks/results/gpu.json`` (the GPU's name, torch/CUDA versions, per role the
observed devices, fell_back, parity, seconds) and prints a table. Without CUDA it refuses
(exit 2) and writes nothing: no figure here is ever one that was not measured. A role that
cannot run (its package or ffmpeg missing) is listed under ``not_run`` with the reason.

``--smoke`` runs the same code with tiny inputs on the CPU only (both sides "cpu"), so the
path is tested on machines without a GPU; it writes only to ``--out`` when given.

    python benchmarks/gpu.py --media DIR [--repeat 3] [--roles shots,speech,text,faces,screen_text]
    python benchmarks/gpu.py --smoke --media ../shared/media --out /tmp/gpu-smoke.json
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rayflow.record import RoleRun  # noqa: E402  (after the path: the repository's own package)

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".ts", ".m4v"}
AUDIO_SUFFIXES = {".flac", ".wav", ".mp3", ".m4a", ".ogg"}
ROLES = ("shots", "speech", "text", "faces", "screen_text")
COSINE_MIN = 0.99
log = logging.getLogger("benchmarks.gpu")


@dataclass
class Clip:
    """One media file and the facts the stages need (read here: no probe stage, no mediainfo)."""

    path: Path
    fps: float | None
    duration_s: float | None
    audio_track: int | None
    has_video: bool


@dataclass
class Side:
    """One device's run of one role."""

    observed: RoleRun
    load_s: float
    seconds: float | None = None
    """Timed process() seconds over every clip and pass (None: not timed, e.g. it is not on CUDA)."""
    items: int = 0
    outputs: list[Any] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"observed": self.observed.model_dump(), "load_s": round(self.load_s, 3),
                "seconds": None if self.seconds is None else round(self.seconds, 3), "items": self.items,
                "items_per_s": round(self.items / self.seconds, 3) if self.seconds else None}


@dataclass
class RoleReport:
    role: str
    cpu: Side | None = None
    accel: Side | None = None
    parity: bool | None = None
    parity_detail: str = ""
    not_run: str | None = None

    @property
    def on_cuda(self) -> bool:
        return self.accel is not None and self.accel.observed.device.startswith("cuda")

    @property
    def speedup(self) -> float | None:
        if not (self.cpu and self.accel and self.cpu.seconds and self.accel.seconds and self.on_cuda):
            return None
        return round(self.cpu.seconds / self.accel.seconds, 2)

    def as_dict(self) -> dict[str, Any]:
        return {"not_run": self.not_run, "on_cuda": self.on_cuda, "speedup": self.speedup, "parity": self.parity,
                "parity_detail": self.parity_detail, "cpu": self.cpu.as_dict() if self.cpu else None,
                "cuda": self.accel.as_dict() if self.accel else None}


# ---------------------------------------------------------------- clips and their facts

def find_clips(media: Path, *, smoke: bool) -> list[Clip]:
    """The video and audio files of ``media`` with their facts (smoke: the two smallest of each)."""
    files = sorted(p for p in media.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES | AUDIO_SUFFIXES)
    clips = [_facts(p) for p in files]
    clips = [c for c in clips if c is not None]
    if smoke:
        videos = sorted((c for c in clips if c.has_video), key=lambda c: c.path.stat().st_size)[:1]
        audio = sorted((c for c in clips if c.audio_track is not None), key=lambda c: c.path.stat().st_size)[:1]
        clips = list({c.path: c for c in videos + audio}.values())
    return clips


def _facts(path: Path) -> Clip | None:
    if shutil.which("ffprobe"):
        from rayflow.media.tools import run_tool

        argv = ["ffprobe", "-v", "error", "-show_entries", "stream=index,codec_type,avg_frame_rate,disposition"
                ":format=duration", "-of", "json", "-i", str(path)]
        data = json.loads(run_tool(argv, timeout_s=60, path=path).text or "{}")
        streams = data.get("streams") or []
        video = [s for s in streams if s.get("codec_type") == "video" and not (s.get("disposition") or {})
                 .get("attached_pic")]
        audio = [s for s in streams if s.get("codec_type") == "audio"]
        fps = _ratio(video[0].get("avg_frame_rate")) if video else None
        duration = float((data.get("format") or {}).get("duration") or 0) or None
        return Clip(path, fps, duration, audio[0]["index"] if audio else None, bool(video))
    import cv2  # no ffprobe: OpenCV for the pictures; audio needs ffmpeg anyway (speech is not run)

    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            return None
        fps = float(capture.get(cv2.CAP_PROP_FPS)) or None
        frames = capture.get(cv2.CAP_PROP_FRAME_COUNT)
        return Clip(path, fps, frames / fps if fps and frames else None, None, True)
    finally:
        capture.release()


def _ratio(text: str | None) -> float | None:
    num, _, den = (text or "").partition("/")
    try:
        return float(num) / float(den or 1) if float(den or 1) else None
    except ValueError:
        return None


def clip_input(clip: Clip, out_dir: Path, *, frames: Any = None) -> Any:
    from rayflow.record import VideoInfo
    from rayflow.stages.base import ClipInput

    video = VideoInfo(fps=clip.fps, duration_s=clip.duration_s) if clip.has_video else None
    return ClipInput(path=str(clip.path), clip_id=clip.path.stem, frames=frames, out_dir=out_dir / clip.path.stem,
                     timeout_s=600, video=video, duration_s=clip.duration_s, audio_track=clip.audio_track)


def decode(clip: Clip, *, count: int, max_side: int) -> Any:
    from rayflow.media.decode import decode_frames

    return decode_frames(clip.path, timestamps_s=None, count=count, max_side=max_side, rotation=0, timeout_s=300)


# ---------------------------------------------------------------- one role, CPU against CUDA

def compare(report: RoleReport, make: Callable[[], Any], items: list[Any], run: Callable[[Any, Any], Any],
            *, accel: str, repeat: int, same: Callable[[list[Any], list[Any]], tuple[bool, str]]) -> RoleReport:
    """Set the stage up on the CPU and on ``accel``; time ``run(stage, item)`` over ``items``."""
    for side_name, device in (("cpu", "cpu"), ("accel", accel)):  # --smoke: accel is "cpu" too
        stage = make()
        started = time.perf_counter()
        stage.setup(device)
        side = Side(observed=stage.observed(), load_s=time.perf_counter() - started)
        on_cpu_for_cuda = device == "cuda" and not side.observed.device.startswith("cuda")
        if not on_cpu_for_cuda:  # a CUDA side that stayed on the CPU is not timed: no speedup is claimed
            run(stage, items[0])  # warm-up (CUDA context, kernels, caches), untimed
            started = time.perf_counter()
            for n in range(repeat):
                outputs = [run(stage, item) for item in items]
                if n == 0:
                    side.outputs = outputs
            side.seconds = time.perf_counter() - started
            side.items = len(items) * repeat
        stage.teardown()
        if side_name == "cpu":
            report.cpu = side
        else:
            report.accel = side
    if report.cpu and report.accel and report.accel.outputs:
        report.parity, report.parity_detail = same(report.cpu.outputs, report.accel.outputs)
    return report


def shots_same(cpu: list[Any], gpu: list[Any], fps: list[float]) -> tuple[bool, str]:
    worst = 0.0
    for a, b, rate in zip(cpu, gpu, fps, strict=True):
        cuts_a, cuts_b = [s.start_s for s in a.shots[1:]], [s.start_s for s in b.shots[1:]]
        if len(cuts_a) != len(cuts_b):
            return False, f"cut counts differ: {len(cuts_a)} vs {len(cuts_b)}"
        worst = max([worst, *(abs(x - y) * rate for x, y in zip(cuts_a, cuts_b, strict=True))])
    return worst <= 1.0 + 1e-6, f"{sum(len(a.shots) - 1 for a in cpu)} cuts; largest gap {worst:.2f} frames"


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.casefold())


def speech_same(cpu: list[Any], gpu: list[Any]) -> tuple[bool, str]:
    a = [w for s in cpu for w in _words(s.text if s else "")]
    b = [w for s in gpu for w in _words(s.text if s else "")]
    ratio = difflib.SequenceMatcher(a=a, b=b).ratio() if a or b else 1.0
    return a == b, f"{len(a)} vs {len(b)} words; word similarity {ratio:.3f}"


def vectors_same(cpu: list[Any], gpu: list[Any]) -> tuple[bool, str]:
    a, b = np.concatenate([np.asarray(x) for x in cpu]), np.concatenate([np.asarray(x) for x in gpu])
    cosine = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
    return bool(cosine.min() > COSINE_MIN), f"{len(a)} vectors; cosine min {cosine.min():.5f}"


def faces_same(cpu: list[Any], gpu: list[Any]) -> tuple[bool, str]:
    a = [sum(f.faces for f in x.frames) if x else 0 for x in cpu]
    b = [sum(f.faces for f in x.frames) if x else 0 for x in gpu]
    return a == b, f"faces per clip {a} vs {b}"


def screen_same(cpu: list[Any], gpu: list[Any]) -> tuple[bool, str]:
    a = [sorted(_words(" ".join(t.text for t in x))) for x in cpu]
    b = [sorted(_words(" ".join(t.text for t in x))) for x in gpu]
    return a == b, f"{sum(map(len, a))} vs {sum(map(len, b))} words"


# ---------------------------------------------------------------- the roles

@dataclass
class Plan:
    clips: list[Clip]
    work: Path
    accel: str
    repeat: int
    smoke: bool
    threads: int
    transcripts: list[str] = field(default_factory=list)
    """What speech heard on the CPU side (the text role embeds it with the clips' other texts)."""


def role_shots(plan: Plan) -> RoleReport:
    from rayflow.stages.shots import ShotSettings, ShotStage

    report = RoleReport("shots")
    videos = [c for c in plan.clips if c.has_video]
    if not videos:
        report.not_run = "no video clips in --media"
        return report
    items = [clip_input(c, plan.work) for c in videos]
    fps = [c.fps or 25.0 for c in videos]
    return compare(report, lambda: ShotStage(ShotSettings(detector="transnetv2", threads=plan.threads)), items,
                   lambda stage, item: stage.process(item), accel=plan.accel, repeat=plan.repeat,
                   same=lambda a, b: shots_same(a, b, fps))


def role_speech(plan: Plan) -> RoleReport:
    from rayflow.stages.speech import SpeechStage

    report = RoleReport("speech")
    heard = [c for c in plan.clips if c.audio_track is not None]
    if not shutil.which("ffmpeg"):
        report.not_run = "ffmpeg is not installed (the speech stage extracts audio with it)"
        return report
    if not heard:
        report.not_run = "no clips with audio in --media"
        return report
    items = [clip_input(c, plan.work) for c in heard]
    limit = 3.0 if plan.smoke else None
    report = compare(report, lambda: SpeechStage(threads=plan.threads, max_duration_s=limit), items,
                     lambda stage, item: stage.process(item), accel=plan.accel, repeat=plan.repeat,
                     same=speech_same)
    if report.cpu:
        plan.transcripts = [s.text for s in report.cpu.outputs if s is not None and s.text]
    return report


def text_records(plan: Plan, copies: int) -> list[Any]:
    """Records of the clips (names, durations, the transcripts speech heard), ``copies`` times each:
    the embed stage gets one batch across files, as an EmbedderPool actor does."""
    from rayflow.record import Analysis, ClipRecord, FileInfo, Speech

    texts = plan.transcripts or [""]
    records = []
    for n in range(copies):
        for i, clip in enumerate(plan.clips):
            speech = Speech(model="tiny.en", text=texts[(i + n) % len(texts)]) if texts[0] else None
            records.append(ClipRecord(
                clip_id=f"{clip.path.stem}-{n}", kind="video" if clip.has_video else "audio",
                file=FileInfo(path=str(clip.path), name=clip.path.name, size_bytes=clip.path.stat().st_size,
                              checksum="-"),
                analysis=Analysis(speech=speech, description=f"{clip.path.stem} copy {n}")))
    return records


def role_text(plan: Plan) -> RoleReport:
    from rayflow.config import EmbedSettings
    from rayflow.stages.embed import EmbedStage

    report = RoleReport("text")
    batches = [text_records(plan, 2 if plan.smoke else 64)]

    def run(stage: Any, records: list[Any]) -> np.ndarray:
        return np.stack([v.summary for v in stage.process(records)])

    return compare(report, lambda: EmbedStage(EmbedSettings()), batches, run, accel=plan.accel,
                   repeat=plan.repeat, same=vectors_same)


def _frame_role(plan: Plan, role: str, make: Callable[[], Any], same: Callable[..., tuple[bool, str]]) -> RoleReport:
    report = RoleReport(role)
    videos = [c for c in plan.clips if c.has_video]
    if not videos:
        report.not_run = "no video clips in --media"
        return report
    items = [clip_input(c, plan.work, frames=decode(c, count=4 if plan.smoke else 16, max_side=640))
             for c in videos]
    return compare(report, make, items, lambda stage, item: stage.process(item), accel=plan.accel,
                   repeat=plan.repeat, same=same)


def role_faces(plan: Plan) -> RoleReport:
    from rayflow.stages.faces import FaceStage

    return _frame_role(plan, "faces", FaceStage, faces_same)


def role_screen_text(plan: Plan) -> RoleReport:
    from rayflow.stages.screen_text import ScreenTextStage

    return _frame_role(plan, "screen_text", lambda: ScreenTextStage(threads=plan.threads), screen_same)


RUNNERS: dict[str, Callable[[Plan], RoleReport]] = {
    "shots": role_shots, "speech": role_speech, "text": role_text, "faces": role_faces,
    "screen_text": role_screen_text}


def run_role(name: str, plan: Plan) -> RoleReport:
    started = time.perf_counter()
    try:
        report = RUNNERS[name](plan)
    except Exception as exc:  # a missing package or model: say so, claim nothing
        log.exception("role %s could not run", name)
        report = RoleReport(name, not_run=f"{type(exc).__name__}: {exc}"[:400])
    log.info("%s done in %.1f s", name, time.perf_counter() - started)
    return report


# ---------------------------------------------------------------- the batched analysis run

def batched_analysis(plan: Plan, reports: dict[str, RoleReport]) -> dict[str, Any]:
    """Every clip, ``repeat`` times, through one AnalyzeStage on ``accel`` (the roles that ran on
    CUDA above), then the embed stage over all the records at once; NVML sampled throughout."""
    from rayflow.config import EmbedSettings, load_settings
    from rayflow.ml.gpu_monitor import GpuMonitor
    from rayflow.stages.analyze import AnalyzeStage
    from rayflow.stages.embed import EmbedStage

    def wanted(role: str) -> bool:
        found = reports.get(role)
        return found is not None and found.not_run is None and (found.on_cuda or plan.smoke)

    settings = load_settings(env={}, home=plan.work / "home", analysis={
        "shots": wanted("shots"), "speech": wanted("speech"), "faces": wanted("faces"),
        "screen_text": wanted("screen_text"), "thumbnails": False, "threads": plan.threads})
    stage = AnalyzeStage(settings)
    started = time.perf_counter()
    stage.setup(plan.accel)  # type: ignore[arg-type]
    embed = EmbedStage(EmbedSettings()) if wanted("text") else None
    if embed is not None:
        embed.setup(plan.accel)  # type: ignore[arg-type]
    load_s = time.perf_counter() - started
    frames = {c.path: decode(c, count=4 if plan.smoke else 16, max_side=640) for c in plan.clips if c.has_video}
    errors: dict[str, int] = {}
    records = 0
    with GpuMonitor(interval_s=0.1) as monitor:
        started = time.perf_counter()
        for _ in range(plan.repeat):
            for clip in plan.clips:
                result = stage.process(clip_input(clip, plan.work, frames=frames.get(clip.path)))
                for role in result.errors:
                    errors[role] = errors.get(role, 0) + 1
                records += 1
        if embed is not None:
            embed.process(text_records(plan, plan.repeat))
        seconds = time.perf_counter() - started
    stage.teardown()
    return {"roles": {name: run.model_dump() for name, run in stage.runs.items()},
            "unavailable": stage.unavailable, "embedded": embed is not None, "clips": records,
            "load_s": round(load_s, 2), "seconds": round(seconds, 2), "clips_per_s": round(records / seconds, 3),
            "errors": errors, "gpu_use": monitor.summary().as_dict()}


# ---------------------------------------------------------------- the machine, the table, main

def cuda_or_why() -> str | None:
    """None when torch sees a CUDA GPU, else why not (the refusal's message)."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return f"torch {torch.__version__} sees no CUDA GPU (torch.cuda.is_available() is False)"
    return None


def machine(smoke: bool) -> dict[str, Any]:
    import torch

    from rayflow.ml.gpu_support import nvidia_gpus

    cuda = torch.cuda.is_available() and not smoke
    found = {"gpu": torch.cuda.get_device_name(0) if cuda else None, "nvml_gpus": nvidia_gpus(),
             "torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
             "python": platform.python_version(), "cpus": os.cpu_count(), "ffmpeg": shutil.which("ffmpeg")}
    for package in ("ctranslate2", "faster-whisper", "onnxruntime", "onnxruntime-gpu", "sentence-transformers",
                    "transformers", "opencv-python-headless", "ray", "prefect"):
        try:
            from importlib.metadata import version

            found[package] = version(package)
        except Exception:
            found[package] = None
    return found


def table(reports: dict[str, RoleReport], analysis: dict[str, Any] | None) -> str:
    rows = [f"{'role':<12} {'cuda device (observed)':<28} {'cpu items/s':>11} {'cuda items/s':>12} "
            f"{'speedup':>8} {'parity':>7}  detail"]
    for name, r in reports.items():
        if r.not_run:
            rows.append(f"{name:<12} not run: {r.not_run}")
            continue
        seen = r.accel.observed if r.accel else None
        device = f"{seen.device}{' (fell back)' if seen and seen.fell_back else ''}" if seen else "-"
        cpu = r.cpu.as_dict()["items_per_s"] if r.cpu else None
        gpu = r.accel.as_dict()["items_per_s"] if r.accel else None
        rows.append(f"{name:<12} {device:<28} {cpu or '-':>11} {gpu or '-':>12} {r.speedup or '-':>8} "
                    f"{str(r.parity):>7}  {r.parity_detail or (seen.reason if seen else '')}")
    if analysis:
        use = analysis["gpu_use"]
        gpus = use["gpus"]
        busy = (f"busy {gpus[0]['busy_mean_pct']}% (peak {gpus[0]['busy_peak_pct']}%), "
                f"{gpus[0]['memory_peak_mib']:.0f} MiB peak" if gpus else f"GPU use not measured: {use['unavailable']}")
        rows.append(f"batched analysis: {analysis['clips']} clips in {analysis['seconds']} s "
                    f"({analysis['clips_per_s']} clips/s); {busy}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--media", type=Path, required=True, help="folder of real clips (video, and audio with speech)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON output (default benchmarks/results/gpu.json; --smoke writes only when given)")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes over the clips per role (default 3)")
    parser.add_argument("--roles", default=",".join(ROLES), help=f"comma list of {', '.join(ROLES)}")
    parser.add_argument("--threads", type=int, default=min(8, os.cpu_count() or 1),
                        help="CPU threads per model on the CPU side (default min(8, cores))")
    parser.add_argument("--smoke", action="store_true", help="CPU only, tiny inputs: tests the code path")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    roles = [r.strip() for r in args.roles.split(",") if r.strip()]
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        parser.error(f"unknown roles {unknown}; choose from {', '.join(ROLES)}")
    if not args.smoke:
        why = cuda_or_why()
        if why:
            print(f"benchmarks/gpu.py needs a CUDA GPU: {why}. Nothing was measured or written. "
                  "Run it on an NVIDIA GPU machine, or with --smoke to test the code path on the CPU.",
                  file=sys.stderr)
            return 2
    out = args.out or (None if args.smoke else ROOT / "benchmarks" / "results" / "gpu.json")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rayflow-gpu-") as work:
        plan = Plan(find_clips(args.media, smoke=args.smoke), Path(work), "cpu" if args.smoke else "cuda",
                    1 if args.smoke else args.repeat, args.smoke, args.threads)
        if not plan.clips:
            print(f"no media files in {args.media}", file=sys.stderr)
            return 2
        reports = {name: run_role(name, plan) for name in sorted(roles, key=ROLES.index)}
        analysis = batched_analysis(plan, reports)
    result = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "smoke": args.smoke,
              "machine": machine(args.smoke), "media": [c.path.name for c in plan.clips], "repeat": plan.repeat,
              "roles": {name: r.as_dict() for name, r in reports.items()},
              "roles_on_cuda": sorted(name for name, r in reports.items() if r.on_cuda),
              "analysis": analysis, "total_s": round(time.perf_counter() - started, 1)}
    print(table(reports, analysis))
    print(f"total {result['total_s']} s")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
