"""GpuMonitor: NVML sampling of busy share and memory; "no GPU" is an answer, not zeros."""

from __future__ import annotations

import time
from types import SimpleNamespace

from rayflow.ml.gpu_monitor import GpuMonitor


class FakeNvml:
    """Two GPUs whose busy share climbs 0, 50, 100 % per sample (unit test of the sampler only)."""

    def __init__(self) -> None:
        self.calls = 0

    def nvmlInit(self) -> None: ...

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetName(self, handle: int) -> bytes:
        return b"Fake GPU"

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(total=80 * 2**30, used=(handle + 1) * 2**30 + self.calls * 2**20)

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        self.calls += 1
        return SimpleNamespace(gpu=min(100, 50 * ((self.calls - 1) // 2)))


def test_summary_means_and_peaks() -> None:
    mon = GpuMonitor(interval_s=3600, nvml=FakeNvml())
    mon.start()
    for _ in range(3):
        mon.sample()
    mon.stop()
    summary = mon.summary()
    assert summary.unavailable is None
    first = summary.gpus[0]
    assert (first.samples, first.busy_mean_pct, first.busy_peak_pct) == (3, 50.0, 100.0)
    assert summary.gpus[1].memory_peak_mib > summary.gpus[0].memory_peak_mib > 1024
    assert "busy 50% (peak 100%)" in summary.line()


def test_real_nvml_answers_or_says_why() -> None:
    """Here (no driver) NVML raises at init and the summary says so; on a GPU it samples."""
    with GpuMonitor(interval_s=0.05) as mon:
        time.sleep(0.3)
    summary = mon.summary()
    if summary.unavailable:
        assert summary.gpus == [] or all(g.samples == 0 for g in summary.gpus)
        assert "not measured" in summary.line()
    else:
        assert summary.gpus and all(g.samples >= 2 for g in summary.gpus)
