"""Ray options come from the stages' declared resources (pure: no Ray started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rayflow.config import AnalysisSettings, load_settings
from rayflow.engine.pools import embedder_options, plan_analyzers
from rayflow.stages.analyze import analyze_resources
from rayflow.stages.base import Resources
from rayflow.stages.embed import EmbedStage


def test_resources_are_validated_data() -> None:
    assert Resources(cpus=1, gpus=0.25).needs_gpu and not Resources(cpus=2).needs_gpu
    assert Resources(nvenc=1).needs_gpu
    with pytest.raises(ValueError, match="gpus"):
        Resources(gpus=-1)
    with pytest.raises(ValueError, match="whole GPUs"):
        Resources(gpus=1.5)
    both = Resources(cpus=1, gpus=0.25, nvdec=1).plus(Resources(cpus=2, gpus=0.5))
    assert (both.cpus, both.gpus, both.nvdec) == (3, 0.5, 1)


def test_the_analyzer_declares_a_gpu_only_when_an_enabled_role_can_use_one(tmp_path: Path) -> None:
    every = load_settings(env={}, home=tmp_path)
    assert analyze_resources(every).gpus == 1.0
    cpu_only = load_settings(env={}, home=tmp_path, analysis={"speech": False, "screen_text": False,
                                                              "shots": False, "faces": False})
    declared = analyze_resources(cpu_only)  # thumbnails, focal, describe: CPU work
    assert declared.gpus == 0 and not declared.needs_gpu
    plan = plan_analyzers(cpu_only.analysis, {"CPU": 16, "GPU": 2}, declared)
    assert plan.num_gpus == 0  # the GPUs stay free for others


def test_the_embedder_asks_for_its_gpu_share_and_the_analyzers_leave_it_room() -> None:
    assert embedder_options({"CPU": 8})  .get("num_gpus") is None
    assert embedder_options({"CPU": 8, "GPU": 1})["num_gpus"] == EmbedStage.resources.gpus > 0
    share = EmbedStage.resources.gpus
    for gpus in (1, 2, 4):
        plan = plan_analyzers(AnalysisSettings(), {"CPU": 16, "GPU": gpus}, Resources(gpus=1), reserve_gpu=share)
        assert plan.workers == gpus and plan.num_gpus + share <= 1.0  # one analyzer per GPU, embedder beside one
    half = plan_analyzers(AnalysisSettings(gpus_per_worker=0.5), {"CPU": 16, "GPU": 1}, reserve_gpu=share)
    assert half.workers == 1  # two halves would leave the embedder no room on the only GPU
