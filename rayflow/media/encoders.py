"""Which video encoders (and NVDEC, and an HDR tone-mapper) this node's ffmpeg can use.

Detected once per process and cached: GPUs through NVML (``NVMLError`` at init means
"no GPU", not a crash), the encoders compiled into ffmpeg (``ffmpeg -encoders``), and a
one-frame trial encode per candidate, because "compiled in" says nothing about the
hardware: an H200 has NVML, CUDA and an ffmpeg with ``h264_nvenc``, but no NVENC engine,
so only the trial tells. The preference order comes from ``ProxySettings.encoders``
(default hevc_nvenc -> h264_nvenc -> libx264).

Example::

    plan = detect_encoders(("hevc_nvenc", "h264_nvenc", "libx264"), timeout_s=30)
    plan.encoders        # ('libx264',) on a CPU box or an H100/H200
    plan.reasons         # {'hevc_nvenc': 'no NVIDIA GPU (...); trial: Cannot load libcuda.so.1', ...}
    nvenc_session_capacity("NVIDIA L4")        # 6  (2 engines x 3 sessions)
    cpu_encode_threads(cpus=16, workers=8)     # 2

This module is media-layer: it never imports ray or the engine. The engine turns
``nvenc_session_capacity`` and ``cpu_encode_threads`` into Ray resources.
"""

from __future__ import annotations

import logging
import re
import subprocess
import threading
from dataclasses import asdict, dataclass
from typing import Any, Literal, TypeGuard

from rayflow.config import EDITOR_CODECS, EditorCodec
from rayflow.media.tools import ToolError, ToolMissing, run_tool

log = logging.getLogger(__name__)

ToneMapper = Literal["zscale", "libplacebo", "none"]
"""How HDR (PQ/HLG) is tone-mapped to SDR BT.709: zscale (libzimg) + the ``tonemap``
filter on the CPU; libplacebo (Vulkan, a GPU or Mesa's software lavapipe); or not at
all (the proxy then looks washed out; said in ``ProxyInfo.hdr_handling``)."""

HARDWARE_SUFFIXES: tuple[str, ...] = ("_nvenc", "_qsv", "_vaapi", "_amf", "_videotoolbox", "_v4l2m2m")
"""Encoder name endings that mean a hardware encoder (``ProxyInfo.hardware``)."""

TRIAL_SOURCE = "color=s=256x256:d=0.04"
"""lavfi input of the one-frame trial: 256x256 is above every NVENC minimum size."""

SESSIONS_PER_NVENC_ENGINE = 3
"""Concurrent encodes per NVENC engine on GPUs without a driver session cap. More
sessions than ~3 per engine only queue inside the engine (throughput is per engine)
and cost GPU memory, while 2-3 hide the CPU-side decode and filter latency."""

CONSUMER_NVENC_SESSIONS = 8
"""GeForce session cap on recent drivers (550+; older drivers allowed 3 or 5). A
session beyond the cap fails at open with "OpenEncodeSessionEx failed: out of memory"."""

_NO_NVENC = re.compile(r"\b(A100|A800|A30|H100|H800|H200|H20|GH200)\b", re.IGNORECASE)
"""Datacenter GPUs built without NVENC (they do have NVDEC)."""

_CONSUMER = re.compile(r"GeForce|\bTITAN\b|\bGTX\b", re.IGNORECASE)

_NVENC_ENGINES: tuple[tuple[re.Pattern[str], int], ...] = (
    (re.compile(r"\bL40S?\b", re.IGNORECASE), 3),
    (re.compile(r"RTX\s+6000\s+Ada", re.IGNORECASE), 3),
    (re.compile(r"RTX\s+(5000|4500)\s+Ada", re.IGNORECASE), 2),
    (re.compile(r"\bL4\b", re.IGNORECASE), 2),
)
"""NVENC engines per GPU where there is more than one (NVIDIA's Video Codec SDK support
matrix); unknown and single-engine GPUs (T4, A10, A16 per GPU, A40, A2, RTX A-series) count 1."""

_NVDEC_COMMON: frozenset[str] = frozenset({"h264", "hevc", "mpeg2video", "vp9"})
"""Codecs every NVDEC generation rayflow targets (Turing and newer, incl. A100/H100/H200)
decodes, in 4:2:0."""

_NVDEC_AV1 = re.compile(
    r"RTX\s*[345]0\d0|RTX\s+A\d{4}|\bA(2|10G?|16|40)\b|\bL4\b|\bL40S?\b|\bAda\b|Blackwell",
    re.IGNORECASE,
)
"""GPUs known to decode AV1 in NVDEC: Ampere GA10x (RTX 30, RTX A-series, A2/A10/A16/A40),
Ada (RTX 40, L4, L40/L40S), Blackwell. Not Turing/Volta, not GA100 (A100/A30), and
treated as not for Hopper (H100/H200) as the project's brief says: unknown means no."""

_NVDEC_PIX_FMTS: frozenset[str] = frozenset({"yuv420p", "yuvj420p", "yuv420p10le", "nv12", "p010le"})
"""4:2:0 formats; NVDEC before Blackwell rejects 4:2:2 H.264/HEVC and ffmpeg's generic
``-hwaccel cuda`` then fails the decode instead of falling back, so those stay on the CPU."""


@dataclass(frozen=True)
class EncoderPlan:
    """What this node's ffmpeg can encode with, best first, and why the rest cannot."""

    encoders: tuple[str, ...]
    """Usable encoders in preference order (each passed a one-frame trial)."""
    rejected: tuple[tuple[str, str], ...] = ()
    """(encoder, reason) for each preferred encoder that is not usable, in order."""
    nvdec_available: bool = False
    """True when ``-hwaccel cuda`` decoded a trial frame on this node."""
    gpu_names: tuple[str, ...] = ()
    """NVML names of the GPUs, e.g. ('NVIDIA H200',); empty without a driver."""
    tone_mapper: ToneMapper = "none"
    """The HDR -> SDR path this ffmpeg supports (see ``ToneMapper``)."""

    @property
    def reasons(self) -> dict[str, str]:
        """Rejected encoder -> reason."""
        return dict(self.rejected)

    def to_dict(self) -> dict[str, object]:
        """Plain JSON data (``from_dict`` reads it back), e.g. for the service's record."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EncoderPlan:
        return cls(encoders=tuple(data["encoders"]), rejected=tuple((str(n), str(r)) for n, r in data["rejected"]),
                   nvdec_available=bool(data["nvdec_available"]), gpu_names=tuple(data["gpu_names"]),
                   tone_mapper=data["tone_mapper"])

    @property
    def hardware(self) -> bool:
        """True when the first usable encoder is a hardware one."""
        return bool(self.encoders) and is_hardware_encoder(self.encoders[0])

    def nvenc_sessions(self, configured: int = 0) -> int:
        """NVENC sessions to advertise on this node: 0 without a usable NVENC encoder,
        else ``configured`` when > 0, else the capacity of GPU 0 (ffmpeg's NVENC and
        ``-hwaccel cuda`` use device 0 unless told otherwise)."""
        if not any(e.endswith("_nvenc") for e in self.encoders) or not self.gpu_names:
            return 0
        return configured if configured > 0 else nvenc_session_capacity(self.gpu_names[0])


def is_hardware_encoder(name: str) -> bool:
    """True for GPU/ASIC encoders (NVENC, QSV, VAAPI, ...), False for libx264/libx265 etc."""
    return name.endswith(HARDWARE_SUFFIXES)


def nvenc_session_capacity(gpu_name: str) -> int:
    """Concurrent NVENC encodes a GPU sustains, from its NVML name.

    0 for GPUs without NVENC (A100/A30/H100/H200...). GeForce/TITAN: the driver's
    session cap (``CONSUMER_NVENC_SESSIONS`` = 8 on drivers 550+). Datacenter and
    professional GPUs have no cap: ``SESSIONS_PER_NVENC_ENGINE`` (3) per NVENC engine
    (L4: 2 engines -> 6, L40S: 3 -> 9, T4/A10: 1 -> 3). Unknown names count as one engine.
    """
    if _NO_NVENC.search(gpu_name):
        return 0
    if _CONSUMER.search(gpu_name):
        return CONSUMER_NVENC_SESSIONS
    engines = next((n for pattern, n in _NVENC_ENGINES if pattern.search(gpu_name)), 1)
    return engines * SESSIONS_PER_NVENC_ENGINE


def cpu_encode_workers(cpus: int, configured: int = 0) -> int:
    """Concurrent CPU encodes on a node: ``configured`` when > 0, else CPUs / 2 (at least 1),
    matching ``ProxySettings.encode_workers``' default of two threads per encode."""
    return configured if configured > 0 else max(1, cpus // 2)


def cpu_encode_threads(cpus: int, workers: int) -> int:
    """ffmpeg threads per CPU encode so ``workers`` parallel encodes fill, and do not
    oversubscribe, ``cpus`` cores: floor(cpus / workers), at least 1. (x264 with more
    threads than cores per encode loses ~10-20 % to contention when all run at once.)"""
    return max(1, cpus // max(1, workers))


def nvdec_supports(codec: str | None, gpu_name: str, pix_fmt: str | None = None) -> bool:
    """Whether NVDEC on ``gpu_name`` decodes ``codec`` (ffprobe name) in ``pix_fmt``.

    Conservative by design: a wrong "yes" fails the decode (ffmpeg's generic
    ``-hwaccel cuda`` does not fall back by itself; the proxy stage then retries on the
    CPU), a wrong "no" only costs CPU time. h264/hevc/mpeg2video/vp9 in 4:2:0 on any
    GPU; AV1 only on GPUs listed in ``_NVDEC_AV1`` (not A100, not Hopper); nothing else
    (VP8, MPEG-4, VC-1, MJPEG, ProRes stay on the CPU). Unknown pixel format is allowed.
    """
    if not codec or not gpu_name:
        return False
    if pix_fmt is not None and pix_fmt not in _NVDEC_PIX_FMTS:
        return False
    if codec in _NVDEC_COMMON:
        return True
    if codec == "av1":
        return bool(_NVDEC_AV1.search(gpu_name)) and not _NO_NVENC.search(gpu_name)
    return False


def encoder_args(encoder: str, *, quality: int, preset: str, threads: int, gop: int) -> list[str]:
    """Output argv for one video encoder: quality as CRF (x264/x265) or constant-quality
    VBR ``-cq`` (NVENC, preset p4: the balanced middle of p1..p7), ``gop`` frames between
    keyframes (short GOPs keep a review copy quick to scrub), HEVC tagged ``hvc1`` so
    Apple players open it. ``threads`` bounds CPU encoders; NVENC needs ~1 CPU thread.
    Unknown encoders get only ``-c:v`` (their own defaults)."""
    match encoder:
        case "libx264":
            return ["-c:v", encoder, "-preset", preset, "-crf", str(quality),
                    "-profile:v", "high", "-threads", str(threads), "-g", str(gop)]
        case "libx265":
            return ["-c:v", encoder, "-preset", preset, "-crf", str(quality), "-tag:v", "hvc1",
                    "-x265-params", f"log-level=error:pools={threads}:frame-threads={min(threads, 4)}",
                    "-g", str(gop)]
        case "h264_nvenc" | "hevc_nvenc":
            args = ["-c:v", encoder, "-preset", "p4", "-rc", "vbr", "-cq", str(quality),
                    "-b:v", "0", "-g", str(gop)]
            if encoder == "hevc_nvenc":
                args += ["-tag:v", "hvc1"]
            else:
                args += ["-profile:v", "high"]
            return args
        case _:
            return ["-c:v", encoder, "-g", str(gop)]




def is_editor_codec(value: str) -> TypeGuard[EditorCodec]:
    """True for a codec ``editor_codec_args`` knows (``EDITOR_CODECS``)."""
    return value in EDITOR_CODECS


def editor_codec_args(codec: EditorCodec, *, threads: int, gop: int) -> list[str]:
    """Video argv for an editor (relink) proxy, ffmpeg's own encoders only: H.264 (libx264,
    4:2:0, ``gop`` frames per GOP), ProRes 422 Proxy (``prores_ks -profile:v 0``, 10-bit 4:2:2,
    Apple's vendor tag) or DNxHR LB (``dnxhd -profile:v dnxhr_lb``, 8-bit 4:2:2). ProRes and
    DNxHR are intra-only: every frame decodes alone, the point of an edit proxy."""
    match codec:
        case "h264":
            return ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p",
                    "-profile:v", "high", "-threads", str(threads), "-g", str(gop)]
        case "prores_proxy":
            return ["-c:v", "prores_ks", "-profile:v", "0", "-pix_fmt", "yuv422p10le", "-vendor", "apl0",
                    "-threads", str(threads)]
        case "dnxhr_lb":
            return ["-c:v", "dnxhd", "-profile:v", "dnxhr_lb", "-pix_fmt", "yuv422p", "-threads", str(threads)]
        case _:
            raise ValueError(f"unknown editor proxy codec {codec!r}; use one of {', '.join(EDITOR_CODECS)}")


def detect_encoders(preference: tuple[str, ...], *, timeout_s: float = 30.0) -> EncoderPlan:
    """Detect usable encoders in ``preference`` order; cached per process and preference.

    Runs once: NVML for GPUs, ``ffmpeg -encoders``/``-filters``/``-hwaccels``, then a
    one-frame trial encode per compiled-in candidate (``timeout_s`` each; ~0.1-0.3 s).
    Logs one line naming the encoder chosen and why better ones were rejected (INFO on a
    machine without a GPU, where that is expected; WARNING when a GPU is present).
    Raises ``ToolMissing`` when ffmpeg is not installed.
    """
    key = tuple(preference)
    with _LOCK:
        cached = _CACHE.get(key)
        if cached is not None:
            return cached
        plan = _detect(key, timeout_s=timeout_s)
        _CACHE[key] = plan
        return plan


def clear_cache() -> None:
    """Forget detected plans (tests; or after a driver was installed under a live process)."""
    with _LOCK:
        _CACHE.clear()


_CACHE: dict[tuple[str, ...], EncoderPlan] = {}
_LOCK = threading.Lock()


def _detect(preference: tuple[str, ...], *, timeout_s: float) -> EncoderPlan:
    gpus, no_gpu_reason = list_gpus()
    compiled = ffmpeg_capabilities("-encoders", timeout_s=timeout_s)
    usable: list[str] = []
    rejected: list[tuple[str, str]] = []
    for name in preference:
        if name in usable:
            continue
        if name not in compiled:
            rejected.append((name, "not compiled into this ffmpeg (ffmpeg -encoders)"))
            continue
        error = _trial_encode(name, timeout_s=timeout_s)
        if error is None:
            usable.append(name)
            continue
        if name.endswith("_nvenc"):
            if not gpus:
                error = f"no NVIDIA GPU ({no_gpu_reason}); trial: {error}"
            elif any(_NO_NVENC.search(g) for g in gpus):
                error = f"{', '.join(sorted(set(gpus)))} has no NVENC engine; trial: {error}"
        rejected.append((name, error))
    tone_mapper = _detect_tone_mapper(timeout_s=timeout_s)
    nvdec = bool(gpus) and _trial_nvdec(timeout_s=timeout_s)
    plan = EncoderPlan(encoders=tuple(usable), rejected=tuple(rejected), nvdec_available=nvdec,
                       gpu_names=tuple(gpus), tone_mapper=tone_mapper)
    _log_plan(plan)
    return plan


def _log_plan(plan: EncoderPlan) -> None:
    why = "; ".join(f"{name} rejected: {reason}" for name, reason in plan.rejected)
    if not plan.encoders:
        log.error("proxy encoder: none usable; %s", why)
        return
    chosen = plan.encoders[0]
    kind = "hardware" if plan.hardware else "CPU"
    line = f"proxy encoder: {chosen} ({kind}), NVDEC {'on' if plan.nvdec_available else 'off'}, " \
           f"HDR tone-map {plan.tone_mapper}"
    if not plan.rejected:
        log.info("%s", line)
    elif plan.gpu_names and not plan.hardware:
        log.warning("%s; %s", line, why)
    else:
        log.info("%s; %s", line, why)


def list_gpus() -> tuple[list[str], str | None]:
    """NVML names of the GPUs, and why there are none when the list is empty.

    (The engine's ``detect_gpus`` gives more; this copy keeps the media layer free of
    engine imports.)"""
    try:
        import pynvml
    except ImportError:
        return [], "nvidia-ml-py is not installed"
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return [], f"no NVIDIA driver: {exc}"
    try:
        names = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i))
            names.append(name if isinstance(name, str) else name.decode())
        return names, None if names else "NVML reports 0 GPUs"
    except pynvml.NVMLError as exc:
        return [], f"NVML query failed: {exc}"
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            log.debug("nvmlShutdown failed", exc_info=True)


def ffmpeg_capabilities(flag: Literal["-encoders", "-filters", "-hwaccels"], *,
                        timeout_s: float = 30.0) -> frozenset[str]:
    """Names ffmpeg lists for ``-encoders`` (video only), ``-filters`` or ``-hwaccels``.

    An ffmpeg that runs but fails to list yields an empty set (logged); a missing ffmpeg
    raises ``ToolMissing``."""
    try:
        text = run_tool(["ffmpeg", "-hide_banner", flag], timeout_s=timeout_s).text
    except ToolMissing:
        raise
    except ToolError as exc:
        log.warning("cannot list ffmpeg %s: %s", flag, exc)
        return frozenset()
    names: set[str] = set()
    for line in text.splitlines():
        parts = line.split()
        match flag:
            case "-encoders":
                if len(parts) >= 2 and len(parts[0]) == 6 and parts[0][0] == "V":
                    names.add(parts[1])
            case "-filters":
                # " TSC zscale            V->V       Apply resizing, ..."
                if len(parts) >= 3 and len(parts[0]) == 3 and "->" in parts[2]:
                    names.add(parts[1])
            case "-hwaccels":
                if len(parts) == 1 and not line.endswith(":"):
                    names.add(parts[0])
    return frozenset(names)


def _trial_encode(encoder: str, *, timeout_s: float) -> str | None:
    """Encode one 256x256 frame with the real proxy arguments; None on success, else why."""
    argv = ["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-f", "lavfi", "-i", TRIAL_SOURCE,
            "-frames:v", "1", "-pix_fmt", "yuv420p",
            *encoder_args(encoder, quality=28, preset="veryfast", threads=1, gop=60),
            "-f", "null", "-"]
    try:
        out = run_tool(argv, timeout_s=timeout_s, check=False)
    except ToolError as exc:  # ToolTimeout: a wedged driver counts as unusable
        return str(exc)
    return None if out.returncode == 0 else _encoder_message(out.stderr, encoder)


def _trial_nvdec(*, timeout_s: float) -> bool:
    """Decode one H.264 frame with ``-hwaccel cuda`` and CUDA output frames (so a
    software fallback cannot pass for NVDEC). The frame is encoded by libx264 into a pipe."""
    if "cuda" not in ffmpeg_capabilities("-hwaccels", timeout_s=timeout_s):
        return False
    try:
        sample = run_tool(["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-f", "lavfi",
                           "-i", TRIAL_SOURCE, "-frames:v", "1", "-c:v", "libx264", "-f", "h264",
                           "pipe:1"], timeout_s=timeout_s)
        proc = subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-hwaccel", "cuda",
                               "-hwaccel_output_format", "cuda", "-f", "h264", "-i", "pipe:0",
                               "-f", "null", "-"], input=sample.stdout, capture_output=True,
                              timeout=timeout_s, check=False)
    except (ToolError, OSError, subprocess.TimeoutExpired) as exc:
        log.info("NVDEC trial failed: %s", exc)
        return False
    if proc.returncode != 0:
        log.info("NVDEC trial failed: %s", _encoder_message(proc.stderr, "cuda"))
    return proc.returncode == 0


def _detect_tone_mapper(*, timeout_s: float) -> ToneMapper:
    """zscale + tonemap when compiled in (CPU, exact); else libplacebo when a one-frame
    Vulkan trial passes; else none."""
    filters = ffmpeg_capabilities("-filters", timeout_s=timeout_s)
    if {"zscale", "tonemap"} <= filters:
        return "zscale"
    if "libplacebo" in filters and libplacebo_usable(timeout_s=timeout_s):
        return "libplacebo"
    return "none"


def libplacebo_usable(*, timeout_s: float = 30.0) -> bool:
    """One-frame libplacebo trial: needs a Vulkan device (a GPU, or Mesa's software lavapipe,
    which works but takes seconds per HD frame: a fallback, not a fast path)."""
    argv = ["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", *LIBPLACEBO_INPUT_ARGS,
            "-f", "lavfi", "-i", TRIAL_SOURCE, "-frames:v", "1",
            "-vf", libplacebo_filter(64, 64), "-f", "null", "-"]
    try:
        return run_tool(argv, timeout_s=timeout_s, check=False).returncode == 0
    except ToolError as exc:
        log.info("libplacebo trial failed: %s", exc)
        return False


LIBPLACEBO_INPUT_ARGS: tuple[str, ...] = ("-init_hw_device", "vulkan=vk", "-filter_hw_device", "vk")
"""Global options libplacebo needs in ffmpeg 5.1: a Vulkan device for the filter."""


def libplacebo_filter(width: int, height: int) -> str:
    """libplacebo chain: upload, scale + tone-map to SDR BT.709 limited yuv420p, download."""
    return (f"hwupload,libplacebo=w={width}:h={height}:tonemapping=auto:colorspace=bt709"
            f":color_primaries=bt709:color_trc=bt709:range=tv:format=yuv420p,hwdownload,format=yuv420p")


def _encoder_message(stderr: bytes, name: str, limit: int = 300) -> str:
    """The most telling stderr line: the first one from the encoder's own log context
    (``[h264_nvenc @ 0x..] Cannot load libcuda.so.1``), else the last line."""
    lines = [ln.strip() for ln in stderr.decode("utf-8", errors="replace").splitlines() if ln.strip()]
    own = [ln for ln in lines if ln.startswith(f"[{name} @")]
    if own:
        return re.sub(r"^\[[^\]]*\]\s*", "", own[0])[:limit]
    return (lines[-1] if lines else "no error output")[:limit]


__all__ = [
    "CONSUMER_NVENC_SESSIONS", "SESSIONS_PER_NVENC_ENGINE", "EncoderPlan", "ToneMapper",
    "clear_cache", "cpu_encode_threads", "cpu_encode_workers", "detect_encoders", "encoder_args",
    "ffmpeg_capabilities", "is_hardware_encoder", "libplacebo_filter", "libplacebo_usable", "list_gpus",
    "nvdec_supports", "nvenc_session_capacity",
]
