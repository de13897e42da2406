"""Compute resources as Ray sees them: custom resources that cap concurrent encodes
(CPU encode slots, NVENC sessions) and the options a proxy task asks for.

Detection itself (NVML, ``ffmpeg -encoders``, one-frame trials) lives in
``rayflow.media.encoders``; this module turns its answer into Ray resources.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from rayflow.config import ProxySettings
from rayflow.media.encoders import EncoderPlan, cpu_encode_threads, cpu_encode_workers

ENCODE_SLOT = "rayflow_encode"
"""Ray custom resource: concurrent CPU encodes a node allows (``--encode-workers``)."""
NVENC = "nvenc"
"""Ray custom resource: concurrent NVENC sessions a node allows; hardware encodes take one."""


@dataclass(frozen=True)
class EncodeResources:
    """How proxies are scheduled on a node: custom resources and ffmpeg threads."""

    node_resources: dict[str, float]
    threads: int
    hardware: bool

    def task_options(self) -> dict[str, object]:
        """Ray options for one proxy task."""
        if self.hardware:
            return {"num_cpus": 1, "resources": {NVENC: 1}}
        return {"num_cpus": 1, "resources": {ENCODE_SLOT: 1}}


def encode_resources(plan: EncoderPlan, settings: ProxySettings, cpus: int) -> EncodeResources:
    """Resources this node advertises for proxies, from its encoder plan and CPUs."""
    workers = cpu_encode_workers(cpus, settings.encode_workers)
    resources: dict[str, float] = {ENCODE_SLOT: float(workers)}
    sessions = plan.nvenc_sessions(settings.nvenc_sessions)
    if sessions:
        resources[NVENC] = float(sessions)
    return EncodeResources(resources, cpu_encode_threads(cpus, workers), hardware=bool(sessions))

log = logging.getLogger(__name__)
