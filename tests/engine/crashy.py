"""An analyze stage that kills its own process on a file named ``crash*`` (a stand-in for a
native decoder/model crash), and one whose model hangs on ``hang*``, used to test the
AnalyzerPool's restarts and retries."""

from __future__ import annotations

import os
import time
from typing import Any

from rayflow.ml.deadline import ModelTimeout, call_with_deadline
from rayflow.record import Analysis
from rayflow.stages.analyze import AnalyzeResult
from rayflow.stages.base import ClipInput, Resources, Stage


class CrashyAnalyzer(Stage[ClipInput, AnalyzeResult]):
    name = "analyze"
    resources = Resources(cpus=1, gpus=1)

    def __init__(self, settings: Any) -> None:
        self.loads = 0
        self.device = "cpu"
        self.models = {"faces": "crashy"}

    def setup(self, device: Any = None) -> None:
        self.loads += 1

    def process(self, item: ClipInput) -> AnalyzeResult:
        if os.path.basename(item.path).startswith("crash"):
            os._exit(1)
        return AnalyzeResult(Analysis(description=f"pid {os.getpid()}"))


class HangyAnalyzer(CrashyAnalyzer):
    """Like ``CrashyAnalyzer``, but a file named ``hang*`` hangs its model call, bounded by the
    real deadline (``Timeouts.model_call_s``) as in ``AnalyzeStage``."""

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.timeout_s = settings.timeouts.model_call_s
        self.stuck = False

    def process(self, item: ClipInput) -> AnalyzeResult:
        if not os.path.basename(item.path).startswith("hang"):
            return super().process(item)
        try:
            call_with_deadline(lambda: time.sleep(3600), self.timeout_s, what="faces")
        except ModelTimeout as exc:
            self.stuck = True
            return AnalyzeResult(Analysis(description=f"pid {os.getpid()}"), errors={"faces": str(exc)})
        raise AssertionError("a one-hour sleep returned")


class NoComebackAnalyzer(CrashyAnalyzer):
    """Like ``CrashyAnalyzer``, but once a ``crash*`` file killed it, its restart never ends
    (``setup`` waits for an hour): an actor whose restart cannot complete (its node is gone,
    its GPU never frees up)."""

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.marker = settings.output_dir / "crashed-once"

    def setup(self, device: Any = None) -> None:
        if self.marker.exists():
            time.sleep(3600)
        super().setup(device)

    def process(self, item: ClipInput) -> AnalyzeResult:
        if os.path.basename(item.path).startswith("crash"):
            self.marker.parent.mkdir(parents=True, exist_ok=True)
            self.marker.touch()
        return super().process(item)
