from __future__ import annotations

import pytest

from rayflow.config import AnalysisSettings
from rayflow.engine.pools import NoGpuError, plan_analyzers


def test_cpu_cluster_gets_cpu_actors_without_gpu_requests() -> None:
    plan = plan_analyzers(AnalysisSettings(), {"CPU": 2})
    assert plan.workers == 1 and plan.num_gpus == 0


def test_gpu_required_on_cpu_cluster_fails_fast_with_the_fix() -> None:
    with pytest.raises(NoGpuError, match="--require-gpu"):
        plan_analyzers(AnalysisSettings(require_gpu=True), {"CPU": 8})
    with pytest.raises(NoGpuError, match="--cpu-fallback"):
        plan_analyzers(AnalysisSettings(gpus_per_worker=0.5), {"CPU": 8})
    fallback = plan_analyzers(AnalysisSettings(gpus_per_worker=0.5, cpu_fallback=True), {"CPU": 8})
    assert fallback.num_gpus == 0 and fallback.workers == 1


def test_gpu_cluster_sizes_by_gpus_and_fractions() -> None:
    assert plan_analyzers(AnalysisSettings(), {"CPU": 16, "GPU": 2}).workers == 2
    half = plan_analyzers(AnalysisSettings(gpus_per_worker=0.5), {"CPU": 16, "GPU": 1})
    assert (half.workers, half.num_gpus) == (2, 0.5)


def test_requests_that_can_never_be_met_are_refused() -> None:
    with pytest.raises(NoGpuError, match="exceed"):
        plan_analyzers(AnalysisSettings(workers=3), {"CPU": 16, "GPU": 2})
    with pytest.raises(NoGpuError, match="lower --gpus-per-worker"):
        plan_analyzers(AnalysisSettings(gpus_per_worker=2), {"CPU": 16, "GPU": 1})


def test_gpu_watch_strands_gpu_analyzers_only_after_the_grace_period() -> None:
    from rayflow.engine.pools import GpuWatch

    watch = GpuWatch(need_gpus=1.0)
    watch.update({"CPU": 4, "GPU": 1}, now=0)
    assert not watch.stranded(now=1000, grace_s=5)  # the GPU is there
    watch.update({"CPU": 4}, now=10)  # its node was lost
    assert not watch.stranded(now=14, grace_s=5)
    watch.update({"CPU": 4}, now=14)  # still gone: the clock runs from the first miss
    assert watch.stranded(now=15, grace_s=5)
    watch.update({"CPU": 4, "GPU": 2}, now=16)  # an autoscaler brought one back
    assert not watch.stranded(now=100, grace_s=5)

    cpu_only = GpuWatch(need_gpus=0.0)
    cpu_only.update({"CPU": 4}, now=0)
    assert not cpu_only.stranded(now=1000, grace_s=5)
