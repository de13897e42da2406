"""Encoder detection: NVML + ``ffmpeg -encoders`` + a one-frame trial, and the capacity tables.

Detection runs for real: on a machine without a GPU the NVENC trials must fail and
libx264 be chosen, each rejection with its reason.
"""

from __future__ import annotations

import logging
import sys
import time
import types
from collections.abc import Iterator

import pytest

from rayflow.config import ProxySettings
from rayflow.media import encoders
from rayflow.media.encoders import (
    EncoderPlan,
    clear_cache,
    cpu_encode_threads,
    cpu_encode_workers,
    detect_encoders,
    encoder_args,
    ffmpeg_capabilities,
    is_hardware_encoder,
    list_gpus,
    nvdec_supports,
    nvenc_session_capacity,
)

DEFAULT = ProxySettings().encoders
HAS_GPU = bool(list_gpus()[0])


@pytest.fixture
def fresh() -> Iterator[None]:
    clear_cache()
    yield
    clear_cache()


@pytest.mark.skipif(HAS_GPU, reason="asserts the no-GPU answer")
def test_no_gpu_rejects_nvenc_by_trial_and_picks_libx264(
    fresh: None, caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="rayflow.media.encoders"):
        plan = detect_encoders(DEFAULT, timeout_s=30)
    assert plan.encoders == ("libx264",) and not plan.hardware
    assert [name for name, _ in plan.rejected] == ["hevc_nvenc", "h264_nvenc"]
    for reason in plan.reasons.values():
        # Both facts: NVML's "no GPU" answer, and what the real trial encode said.
        assert reason.startswith("no NVIDIA GPU (") and "; trial: " in reason
        assert "libcuda" in reason or "nvenc" in reason.lower() or "device" in reason.lower()
    assert plan.gpu_names == () and not plan.nvdec_available and plan.nvenc_sessions() == 0
    lines = [r for r in caplog.records if r.name == "rayflow.media.encoders"]
    assert len(lines) == 1 and "libx264 (CPU)" in lines[0].getMessage()
    assert "hevc_nvenc rejected" in lines[0].getMessage()


def test_detection_is_cached_per_process(fresh: None) -> None:
    first = detect_encoders(DEFAULT, timeout_s=30)
    started = time.monotonic()
    assert detect_encoders(DEFAULT, timeout_s=30) is first
    assert time.monotonic() - started < 0.01


def test_missing_and_duplicate_encoders(fresh: None) -> None:
    plan = detect_encoders(("not_an_encoder", "libx264", "libx264"), timeout_s=30)
    assert plan.encoders == ("libx264",)
    assert plan.reasons == {"not_an_encoder": "not compiled into this ffmpeg (ffmpeg -encoders)"}


def test_trial_failure_is_a_reason(fresh: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A compiled-in encoder whose trial fails is rejected with the encoder's own message
    (libx264 refuses an unknown preset at open, as NVENC refuses a missing engine)."""
    real_args = encoders.encoder_args

    def bad_preset(name: str, **kw: object) -> list[str]:
        args = real_args(name, **kw)  # type: ignore[arg-type]
        if name == "libx264":
            args[args.index("-preset") + 1] = "no-such-preset"
        return args

    monkeypatch.setattr(encoders, "encoder_args", bad_preset)
    plan = detect_encoders(("libx264",), timeout_s=30)
    assert plan.encoders == () and "libx264" in plan.reasons
    assert "preset" in plan.reasons["libx264"].lower()


def test_ffmpeg_capabilities_lists_encoders_filters_hwaccels() -> None:
    assert {"libx264", "libx265"} <= ffmpeg_capabilities("-encoders")
    assert "aac" not in ffmpeg_capabilities("-encoders")  # video only
    assert {"scale", "tonemap"} <= ffmpeg_capabilities("-filters")
    assert "cuda" in ffmpeg_capabilities("-hwaccels")  # compiled in, even with no GPU here


def test_tone_mapper_prefers_zscale(fresh: None) -> None:
    plan = detect_encoders(DEFAULT, timeout_s=30)
    expected = "zscale" if "zscale" in ffmpeg_capabilities("-filters") else plan.tone_mapper
    assert plan.tone_mapper == expected


def test_nvml_error_means_no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    class NVMLError(Exception):
        pass

    def init() -> None:
        raise NVMLError("Driver Not Loaded")

    fake = types.SimpleNamespace(NVMLError=NVMLError, nvmlInit=init)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    names, why = list_gpus()
    assert names == [] and why is not None and "Driver Not Loaded" in why


@pytest.mark.parametrize(("gpu", "sessions"), [
    ("NVIDIA H200", 0), ("NVIDIA H100 80GB HBM3", 0), ("NVIDIA A100-SXM4-80GB", 0), ("NVIDIA A30", 0),
    ("NVIDIA GeForce RTX 4090", 8), ("NVIDIA GeForce RTX 3060", 8), ("NVIDIA TITAN RTX", 8),
    ("NVIDIA L4", 6), ("NVIDIA L40S", 9), ("NVIDIA L40", 9), ("Tesla T4", 3), ("NVIDIA A10G", 3),
    ("NVIDIA RTX 6000 Ada Generation", 9), ("NVIDIA RTX A6000", 3), ("Some Future GPU", 3),
])
def test_nvenc_session_capacity(gpu: str, sessions: int) -> None:
    assert nvenc_session_capacity(gpu) == sessions


@pytest.mark.parametrize(("cpus", "workers", "threads"), [
    (2, 1, 2), (2, 2, 1), (16, 8, 2), (16, 3, 5), (1, 4, 1), (8, 0, 8),
])
def test_cpu_encode_threads_never_oversubscribe(cpus: int, workers: int, threads: int) -> None:
    assert cpu_encode_threads(cpus, workers) == threads
    assert cpu_encode_threads(cpus, workers) * max(1, workers) <= max(cpus, max(1, workers))


def test_cpu_encode_workers_default_is_half_the_cpus() -> None:
    assert cpu_encode_workers(16) == 8 and cpu_encode_workers(1) == 1 and cpu_encode_workers(16, 3) == 3


@pytest.mark.parametrize(("codec", "gpu", "pix_fmt", "ok"), [
    ("h264", "NVIDIA H200", "yuv420p", True),
    ("hevc", "NVIDIA H100 80GB HBM3", "yuv420p10le", True),
    ("av1", "NVIDIA H200", "yuv420p", False),          # Hopper: treated as no AV1 (conservative)
    ("av1", "NVIDIA A100-SXM4-40GB", "yuv420p", False),  # GA100 has no AV1 decode
    ("av1", "Tesla T4", "yuv420p", False),             # Turing
    ("av1", "NVIDIA L4", "yuv420p", True),             # Ada
    ("av1", "NVIDIA GeForce RTX 3080", "yuv420p", True),
    ("av1", "NVIDIA A10G", None, True),
    ("h264", "NVIDIA L4", "yuv422p", False),           # 4:2:2 stays on the CPU
    ("vp8", "NVIDIA L4", "yuv420p", False),
    ("mjpeg", "NVIDIA L4", "yuvj422p", False),
    ("h264", "", "yuv420p", False),
    (None, "NVIDIA L4", "yuv420p", False),
])
def test_nvdec_supports_is_conservative(codec: str | None, gpu: str, pix_fmt: str | None, ok: bool) -> None:
    assert nvdec_supports(codec, gpu, pix_fmt) is ok


def test_encoder_args() -> None:
    x264 = encoder_args("libx264", quality=23, preset="fast", threads=3, gop=50)
    assert x264[:2] == ["-c:v", "libx264"] and x264[x264.index("-crf") + 1] == "23"
    assert x264[x264.index("-threads") + 1] == "3" and x264[x264.index("-g") + 1] == "50"
    hevc = encoder_args("hevc_nvenc", quality=30, preset="fast", threads=3, gop=50)
    assert hevc[hevc.index("-cq") + 1] == "30" and hevc[hevc.index("-preset") + 1] == "p4"
    assert "hvc1" in hevc and "-crf" not in hevc
    x265 = encoder_args("libx265", quality=28, preset="fast", threads=2, gop=50)
    assert "pools=2" in x265[x265.index("-x265-params") + 1]
    assert encoder_args("weird", quality=1, preset="x", threads=1, gop=5) == ["-c:v", "weird", "-g", "5"]


def test_plan_helpers() -> None:
    assert is_hardware_encoder("h264_nvenc") and is_hardware_encoder("hevc_vaapi")
    assert not is_hardware_encoder("libx264")
    l4 = EncoderPlan(encoders=("hevc_nvenc", "libx264"), gpu_names=("NVIDIA L4",))
    assert l4.hardware and l4.nvenc_sessions() == 6 and l4.nvenc_sessions(configured=2) == 2
    h200 = EncoderPlan(encoders=("libx264",), rejected=(("hevc_nvenc", "no engine"),),
                       gpu_names=("NVIDIA H200",))
    assert not h200.hardware and h200.nvenc_sessions() == 0 and h200.reasons == {"hevc_nvenc": "no engine"}


@pytest.mark.gpu
def test_gpu_detection_matches_the_gpu(fresh: None) -> None:
    """On a GPU node: NVENC usable exactly where the GPU has it (trial, not the name), and
    NVDEC's trial passes on every NVIDIA GPU rayflow targets."""
    plan = detect_encoders(DEFAULT, timeout_s=60)
    assert plan.gpu_names, "NVML saw no GPU"
    gpu = plan.gpu_names[0]
    if nvenc_session_capacity(gpu) == 0:
        assert plan.encoders == ("libx264",)
        assert "no NVENC engine" in plan.reasons["hevc_nvenc"]
    else:
        assert plan.encoders[0] in ("hevc_nvenc", "h264_nvenc"), plan.reasons
    assert plan.nvdec_available
