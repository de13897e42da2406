"""Analyses in flight on the warm AnalyzerPool, and what happens when they fail.

The scheduler hands each usable file's frames here (``submit``) and gets back
``AnalysisDone`` values: the analysis, or why it failed for good. The GPU watch
fails analyses queued to GPU actors whose GPUs left the cluster.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

import ray

from rayflow.config import Settings
from rayflow.engine.outcomes import describe
from rayflow.engine.pools import GpuWatch
from rayflow.engine.progress import Progress
from rayflow.record import ClipRecord

WATCH_EVERY_S = 2.0


@dataclass
class AnalysisDone:
    """The analysis part of one file, finished: ``result`` (an ``AnalysisResult``) or ``error``."""

    key: str
    result: Any | None
    error: str | None
    where: Any | None = None
    """The ``StagePlacement`` of the actor that served it, when known."""


@dataclass
class AnalysisCall:
    key: str
    record: ClipRecord
    frames_ref: Any
    index: int
    """The pool's actor index it was sent to."""


class AnalysisQueue:
    """Submits analyses to the pool and collects them."""

    def __init__(self, pool: Any, settings: Settings, progress: Progress) -> None:
        self.pool, self.settings, self.progress = pool, settings, progress
        self.pending: dict[Any, AnalysisCall] = {}
        plan = getattr(pool, "plan", None)
        self.gpu_watch = GpuWatch(plan.num_gpus if plan is not None else 0.0)
        self.last_gpu_check = time.monotonic()

    def busy(self) -> bool:
        return bool(self.pending)

    def refs(self) -> list[Any]:
        return list(self.pending)

    def owns(self, ref: Any) -> bool:
        return ref in self.pending

    def submit(self, key: str, record: ClipRecord, frames_ref: Any) -> None:
        ref, index = self.pool.submit(key, record.clip_id, frames_ref, record)
        self.pending[ref] = AnalysisCall(key, record, frames_ref, index)
        self.progress.stage_started("analyze")

    def collect(self, ref: Any) -> AnalysisDone | None:
        call = self.pending.pop(ref)
        self.pool.done(call.index)
        try:
            result = ray.get(ref)
        except ray.exceptions.RayError as exc:
            attempts = self.settings.analysis.max_attempts
            return AnalysisDone(call.key, None,
                                f"analyzer crashed or was lost after {attempts} attempt(s): {describe(exc)}",
                                self._where(call.index))
        return AnalysisDone(call.key, result, None, self._where(call.index))

    def _where(self, index: int) -> Any | None:
        return self.pool.where(index) if hasattr(self.pool, "where") else None

    def watch(self) -> list[AnalysisDone]:
        """Analyses queued to GPU actors whose GPUs left the cluster (node lost, not replaced)
        would pend forever: after ``timeouts.lost_resource_s`` fail them with the reason."""
        now, grace = time.monotonic(), self.settings.timeouts.lost_resource_s
        if not self.gpu_watch.need_gpus or not self.pending or now - self.last_gpu_check < WATCH_EVERY_S:
            return []
        self.last_gpu_check = now
        self.gpu_watch.update(ray.cluster_resources(), now)
        if not self.gpu_watch.stranded(now, grace):
            return []
        failed = []
        for ref, call in list(self.pending.items()):
            with contextlib.suppress(Exception):  # already finished or its actor is gone: nothing to stop
                ray.cancel(ref)
            del self.pending[ref]
            self.pool.done(call.index)
            failed.append(AnalysisDone(call.key, None, (
                f"no GPU left in the cluster for {grace:g} s (the analyzers need "
                f"{self.gpu_watch.need_gpus:g} GPU each; was their node lost?)")))
        return failed
