"""Every stage of the pipeline (per-file stages and analysis roles) is on the one contract of
``rayflow.stages.base``: a ``Stage`` with a ``StageName`` name, valid ``Resources`` as data, and
its own ``process`` (the engine's Ray options from them: tests/engine/test_declared_resources.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rayflow.config import load_settings
from rayflow.record import STAGE_NAMES, STEP_NAMES
from rayflow.stages.analyze import ROLES, AnalyzeStage
from rayflow.stages.base import Resources, Stage
from rayflow.stages.editor_proxy import EditorProxyStage
from rayflow.stages.embed import EmbedStage
from rayflow.stages.fingerprint import FingerprintStage
from rayflow.stages.inspect import INSPECT
from rayflow.stages.proxy import ProxyStage


def pipeline_stages(tmp_path: Path) -> list[Any]:
    """Every stage the pipeline runs: classes, or instances where resources come from settings."""
    settings = load_settings(env={}, home=tmp_path)
    return [FingerprintStage, *(row.kind for row in INSPECT), AnalyzeStage(settings), ProxyStage, EmbedStage,
            EditorProxyStage(threads=4), *(role.kind for role in ROLES)]


def test_every_pipeline_stage_is_a_stage_with_a_stage_name_and_valid_resources(tmp_path: Path) -> None:
    stages = pipeline_stages(tmp_path)
    names = [stage.name for stage in stages]
    assert len(names) == len(set(names)), names  # one stage per name
    # every step but "store" (the catalog writer, an actor of the engine) has its stage
    assert set(STEP_NAMES) - set(names) == {"store"}
    for stage in stages:
        kind = stage if isinstance(stage, type) else type(stage)
        assert issubclass(kind, Stage), kind
        assert stage.name in STAGE_NAMES, (kind, stage.name)
        declared = stage.resources
        assert isinstance(declared, Resources), kind
        assert Resources(cpus=declared.cpus, gpus=declared.gpus, gpu_memory_gb=declared.gpu_memory_gb,
                         nvdec=declared.nvdec, nvenc=declared.nvenc) == declared  # passes the checks again
        assert kind.process is not Stage.process, f"{kind.__name__} does not implement process()"
    roles = {role.kind for role in ROLES}
    for stage in stages:  # a stage the engine places itself (a task) asks for a CPU; a role shares its
        # analyzer's, and the embedder idles between batches (it asks for a GPU share only)
        if not any(stage is role for role in roles) and stage is not EmbedStage:
            assert stage.resources.cpus >= 1, stage
    assert EditorProxyStage(threads=4).resources.cpus == 4  # built from its fields, not a literal
