"""An analyzer that kills its own process on a file named ``crash*`` (a stand-in for a
native decoder/model crash), used to test the AnalyzerPool's restarts and retries."""

from __future__ import annotations

import os
from typing import Any

from rayflow.ml.analyzer import AnalyzeResult
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
