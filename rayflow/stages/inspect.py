"""The per-file stages one ``inspect`` task runs, in order: probe -> sample (decode once) ->
thumbnails, exposure, from a TABLE (``INSPECT``), as the analyze step composes its roles.

They share one ``FileItem``: each stage reads what the ones before it wrote. The engine runs
them in ONE coarse task per file (or per few small files: a Prefect task costs ~0.1 s here),
with one instance of each stage per worker process, set up once; its Ray options come from
``inspect_resources`` (never from literals). Tests and plain-Python users run the same list
with ``run_sequential``::

    stages = build_inspect(settings, steps)
    item = FileItem(path, clip_id, settings.clip_dir(clip_id))
    run_sequential(stages, [item])   # item.probe, .frames, .sample, .thumbnails, .exposure
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from rayflow.config import Settings
from rayflow.record import StepName
from rayflow.stages.base import FileItem, Resources, Stage
from rayflow.stages.exposure import ExposureStage
from rayflow.stages.frames import SampleStage
from rayflow.stages.probe import ProbeStage
from rayflow.stages.thumbnails import ThumbnailStage


def wants_strip(settings: Settings, steps: Collection[str]) -> bool:
    """Decode every frame small for the shot detector in the same pass only when shots will run;
    else the sampled frames alone (decord seeks to them: cheaper on long clips)."""
    return "analyze" in steps and settings.analysis.shots


@dataclass(frozen=True)
class PerFile:
    """One row of the inspect table: the stage class (its ``resources`` are read without
    building it) and how it is built from the run's settings and steps."""

    name: StepName
    kind: type[Stage[FileItem, Any]]
    build: Callable[[Settings, Collection[str]], Stage[FileItem, Any]]


INSPECT: tuple[PerFile, ...] = (
    PerFile("probe", ProbeStage, lambda s, steps: ProbeStage(s.timeouts)),
    PerFile("sample", SampleStage, lambda s, steps: SampleStage(
        s.sample, timeout_s=s.timeouts.decode_s, strip=wants_strip(s, steps))),
    PerFile("thumbnails", ThumbnailStage, lambda s, steps: ThumbnailStage(s.thumbnails)),
    PerFile("exposure", ExposureStage, lambda s, steps: ExposureStage()),
)
if any(row.name != row.kind.name for row in INSPECT):
    raise RuntimeError(f"INSPECT rows and their stages disagree on names: {[(r.name, r.kind.name) for r in INSPECT]}")


def build_inspect(settings: Settings, steps: Collection[str]) -> list[Stage[FileItem, Any]]:
    """The table's stages that ``steps`` enable, in order (not yet set up)."""
    return [row.build(settings, steps) for row in INSPECT if row.name in steps]


def inspect_resources(steps: Collection[str]) -> Resources:
    """What one inspect task asks Ray for: the enabled stages run one after another in it, so
    the larger of each (``Resources.then``); with none enabled, the task still takes a CPU."""
    chosen = [row.kind.resources for row in INSPECT if row.name in steps]
    return functools.reduce(Resources.then, chosen) if chosen else Resources()


__all__ = ["INSPECT", "PerFile", "build_inspect", "inspect_resources", "wants_strip"]
