"""GPU use measured, not assumed: NVML sampling of busy share and memory per GPU.

``GpuMonitor`` polls NVML on a daemon thread (every ``interval_s``, default 0.2 s: NVML's
utilisation counter itself averages over ~1/6 s to 1 s depending on the GPU) while a run
or a benchmark works, and ``summary()`` gives per GPU the mean and peak busy share
(``nvmlDeviceGetUtilizationRates().gpu``: the share of the sample period in which a kernel
ran) and the peak memory used. On a machine without an NVIDIA driver ``nvmlInit`` raises
``NVMLError``: that is the "no GPU" answer, and the summary says so instead of inventing
zeros. Plain Python (no Ray), so the GPU benchmark runs it where Ray is not installed.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class GpuUse:
    """What NVML reported for one GPU over the sampled window."""

    index: int
    name: str
    samples: int = 0
    busy_mean_pct: float = 0.0
    busy_peak_pct: float = 0.0
    memory_peak_mib: float = 0.0
    memory_total_mib: float = 0.0
    _busy_sum: float = field(default=0.0, repr=False)

    def add(self, busy_pct: float, used_mib: float) -> None:
        self.samples += 1
        self._busy_sum += busy_pct
        self.busy_mean_pct = round(self._busy_sum / self.samples, 1)
        self.busy_peak_pct = max(self.busy_peak_pct, busy_pct)
        self.memory_peak_mib = max(self.memory_peak_mib, round(used_mib, 1))

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "name": self.name, "samples": self.samples,
                "busy_mean_pct": self.busy_mean_pct, "busy_peak_pct": self.busy_peak_pct,
                "memory_peak_mib": self.memory_peak_mib, "memory_total_mib": self.memory_total_mib}


@dataclass
class GpuUseSummary:
    """The monitor's answer: per-GPU use, or why there is none (``unavailable``)."""

    gpus: list[GpuUse]
    seconds: float
    unavailable: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"seconds": round(self.seconds, 2), "unavailable": self.unavailable,
                "gpus": [g.as_dict() for g in self.gpus]}

    def line(self) -> str:
        """One line for a run summary: ``GPU 0 H100: busy 71% (peak 99%), 12.1 GiB peak``."""
        if self.unavailable:
            return f"GPU use: not measured ({self.unavailable})"
        parts = [f"GPU {g.index} {g.name}: busy {g.busy_mean_pct:.0f}% (peak {g.busy_peak_pct:.0f}%), "
                 f"{g.memory_peak_mib / 1024:.1f} GiB peak" for g in self.gpus]
        return "; ".join(parts) if parts else "GPU use: no GPU"


class GpuMonitor:
    """Sample NVML while a block of work runs: ``with GpuMonitor() as mon: ...; mon.summary()``."""

    def __init__(self, interval_s: float = 0.2, *, nvml: Any | None = None) -> None:
        self.interval_s = interval_s
        self._nvml = nvml
        self._handles: list[Any] = []
        self._gpus: list[GpuUse] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0
        self._seconds = 0.0
        self.unavailable: str | None = None

    def __enter__(self) -> GpuMonitor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        nvml: Any = self._nvml
        try:
            if nvml is None:
                import pynvml

                nvml = pynvml
            nvml.nvmlInit()
            count = nvml.nvmlDeviceGetCount()
            for i in range(count):
                handle = nvml.nvmlDeviceGetHandleByIndex(i)
                name = nvml.nvmlDeviceGetName(handle)
                total = nvml.nvmlDeviceGetMemoryInfo(handle).total / 2**20
                self._handles.append(handle)
                self._gpus.append(GpuUse(i, name.decode() if isinstance(name, bytes) else str(name),
                                         memory_total_mib=round(total, 1)))
        except ImportError:
            self.unavailable = "nvidia-ml-py is not installed"
            return
        except Exception as exc:  # pynvml.NVMLError: no driver, no GPU: the "no GPU" answer
            self.unavailable = f"NVML: {exc}"
            return
        self._nvml = nvml
        if not self._handles:
            self.unavailable = "NVML sees no GPU"
            return
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="gpu-monitor", daemon=True)
        self._thread.start()

    def sample(self) -> None:
        """Take one sample of every GPU now (the thread calls this every ``interval_s``)."""
        assert self._nvml is not None, "start() first"
        for gpu, handle in zip(self._gpus, self._handles, strict=True):
            util = self._nvml.nvmlDeviceGetUtilizationRates(handle)
            mem = self._nvml.nvmlDeviceGetMemoryInfo(handle)
            gpu.add(float(util.gpu), mem.used / 2**20)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.sample()
            except Exception as exc:  # a GPU that fell off the bus: stop sampling, say why
                self.unavailable = f"NVML sampling stopped: {exc}"
                return

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=5)
            self._thread = None
            self._seconds = time.monotonic() - self._started

    def summary(self) -> GpuUseSummary:
        return GpuUseSummary(self._gpus, self._seconds, self.unavailable)
