"""A stand-in analyze stage for the AnalyzerPool's cluster tests: it asks for one GPU (the
nodes' GPU counts are stand-ins too) and loads nothing; each file waits while a ``gate`` file
sits beside it (so a test holds the analyses until the pool has grown), then takes 0.3 s,
and answers with the Ray node and process that served it."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import ray

from rayflow.record import Analysis
from rayflow.stages.analyze import AnalyzeResult
from rayflow.stages.base import ClipInput, Resources, Stage

GATE_MAX_S = 120.0


class GatedAnalyzer(Stage[ClipInput, AnalyzeResult]):
    name = "analyze"
    resources = Resources(cpus=1, gpus=1)

    def __init__(self, settings: Any) -> None:
        self.loads = 0
        self.device = "cpu"
        self.models = {"faces": "stand-in"}

    def setup(self, device: Any = None) -> None:
        self.loads += 1

    def process(self, item: ClipInput) -> AnalyzeResult:
        gate = Path(item.path).parent / "gate"
        deadline = time.monotonic() + GATE_MAX_S
        while gate.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.3)
        node = ray.get_runtime_context().get_node_id()
        return AnalyzeResult(Analysis(description=f"{node} {os.getpid()}"))
