"""An analyzer that kills its own process on a file named ``crash*`` (a stand-in for a
native decoder/model crash), and one whose model hangs on ``hang*``, used to test the
AnalyzerPool's restarts and retries."""

from __future__ import annotations

import os
import time
from typing import Any

from rayflow.ml.analyzer import AnalyzeResult, ModelTimeout, call_with_deadline
from rayflow.record import Analysis


class CrashyAnalyzer:
    def __init__(self, settings: Any) -> None:
        self.loads = 0
        self.device = "cpu"
        self.models = {"fake": "crashy"}

    def setup(self) -> None:
        self.loads += 1

    def process(self, path: str, clip_id: str, frames: Any, record: Any) -> AnalyzeResult:
        if os.path.basename(path).startswith("crash"):
            os._exit(1)
        return AnalyzeResult(Analysis(description=f"pid {os.getpid()}"))


class HangyAnalyzer(CrashyAnalyzer):
    """Like ``CrashyAnalyzer``, but a file named ``hang*`` hangs its model call, bounded by the
    real deadline (``Timeouts.model_call_s``) as in ``ClipAnalyzer``."""

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.timeout_s = settings.timeouts.model_call_s
        self.stuck = False

    def process(self, path: str, clip_id: str, frames: Any, record: Any) -> AnalyzeResult:
        if not os.path.basename(path).startswith("hang"):
            return super().process(path, clip_id, frames, record)
        try:
            call_with_deadline(lambda: time.sleep(3600), self.timeout_s, what="fake")
        except ModelTimeout as exc:
            self.stuck = True
            return AnalyzeResult(Analysis(description=f"pid {os.getpid()}"), errors={"fake": str(exc)})
        raise AssertionError("a one-hour sleep returned")
