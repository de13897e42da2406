"""What compute this node has: GPUs through NVML and NVENC through ffmpeg.

pynvml raises ``NVMLError`` at init on machines without a driver; that is the
"no GPU" answer, not a crash.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from rayflow.media.tools import ToolError, ToolMissing, run_tool

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    memory_mib: int


def detect_gpus() -> tuple[list[GpuInfo], str | None]:
    """GPUs visible to NVML, and why there are none when the list is empty."""
    try:
        import pynvml
    except ImportError:
        return [], "nvidia-ml-py is not installed"
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return [], f"no NVIDIA driver ({exc})"
    try:
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(handle)
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            gpus.append(GpuInfo(i, name if isinstance(name, str) else name.decode(),
                                int(mem.total // (1024 * 1024))))
        return gpus, None if gpus else "NVML reports 0 GPUs"
    finally:
        pynvml.nvmlShutdown()


def ffmpeg_encoders() -> set[str]:
    """Video encoders compiled into this ffmpeg (``ffmpeg -encoders``)."""
    try:
        out = run_tool(["ffmpeg", "-hide_banner", "-encoders"], timeout_s=20)
    except (ToolError, ToolMissing) as exc:
        log.warning("cannot list ffmpeg encoders: %s", exc)
        return set()
    names = set()
    for line in out.text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and len(parts[0]) == 6 and parts[0][0] == "V":
            names.add(parts[1])
    return names
