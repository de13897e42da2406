"""Ray options come from the stages' declared resources (pure: no Ray started)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rayflow.config import AnalysisSettings, load_settings
from rayflow.engine.pools import embedder_options, plan_analyzers
from rayflow.engine.resources import ENCODE_SLOT, NVENC, encode_options, ray_options
from rayflow.stages.analyze import analyze_resources
from rayflow.stages.base import Resources, Stage
from rayflow.stages.embed import EmbedStage
from rayflow.stages.inspect import INSPECT, inspect_resources
from rayflow.stages.proxy import ProxyStage
from rayflow.stages.steps import plan_steps


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


def test_ray_options_come_from_the_declared_resources() -> None:
    assert ray_options(Resources(cpus=2)) == {"num_cpus": 2}
    assert ray_options(Resources(cpus=1, gpus=0.25)) == {"num_cpus": 1, "num_gpus": 0.25}
    assert ray_options(Resources(cpus=1, nvenc=1)) == {"num_cpus": 1, "resources": {NVENC: 1}}
    with pytest.raises(ValueError, match="NVDEC"):  # no node advertises it: never a task that pends forever
        ray_options(Resources(nvdec=1))
    assert encode_options(NVENC) == ray_options(ProxyStage.hardware_resources)
    assert encode_options(ENCODE_SLOT) == {"num_cpus": ProxyStage.resources.cpus, "resources": {ENCODE_SLOT: 1}}


def test_an_inspect_task_asks_for_its_stages_in_turn_not_their_sum() -> None:
    every = plan_steps().enabled
    declared = inspect_resources(every)
    # probe, sample, thumbnails and exposure run one after another in ONE task: the largest of each
    assert declared == Resources(cpus=max(row.kind.resources.cpus for row in INSPECT))
    assert ray_options(declared) == {"num_cpus": 1}  # as before the contract: one CPU per inspect task
    assert inspect_resources(plan_steps(only=("probe",)).enabled) == INSPECT[0].kind.resources
    assert inspect_resources(()) == Resources()  # nothing enabled: the task still takes its CPU
    one_after = Resources(cpus=1, gpus=0.25, gpu_memory_gb=2, nvdec=1).then(Resources(cpus=2, gpu_memory_gb=1))
    assert (one_after.cpus, one_after.gpus, one_after.gpu_memory_gb, one_after.nvdec) == (2, 0.25, 3, 1)


def test_a_worker_sets_its_stages_up_once_per_settings(tmp_path: Path) -> None:
    from rayflow.engine import tasks

    built: list[str] = []

    class Counting(Stage[str, str]):
        name = "probe"

        def __init__(self) -> None:
            self.setups = 0

        def setup(self, device: Any) -> None:
            self.setups += 1
            built.append(device)

        def process(self, item: str) -> str:
            return item

    first = tasks.warm_stages(("test", tmp_path), lambda: [Counting()])
    again = tasks.warm_stages(("test", tmp_path), lambda: [Counting()])
    assert first is again and first[0].setups == 1 and built == ["cpu"]
    other = tasks.warm_stages(("test", tmp_path / "other"), lambda: [Counting()])
    assert other is not first and built == ["cpu", "cpu"]
    unhashable = tasks.warm_stages(("test", [1]), lambda: [Counting()])  # built, not kept
    assert unhashable[0].setups == 1 and len(built) == 3
    settings = load_settings(env={}, home=tmp_path)
    stages = tasks.inspect_stages(settings, plan_steps().enabled)
    assert list(stages) == ["probe", "sample", "thumbnails", "exposure"]
    assert tasks.inspect_stages(settings, plan_steps().enabled)["sample"] is stages["sample"]
