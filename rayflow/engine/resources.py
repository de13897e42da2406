"""Compute resources as Ray sees them: a stage's declared ``Resources`` as Ray options
(``ray_options``), custom resources that cap concurrent encodes (CPU encode slots, NVENC
sessions) and the options a proxy task asks for.

Detection itself (NVML, ``ffmpeg -encoders``, one-frame trials) lives in
``rayflow.media.encoders``; this module turns its answer into Ray resources.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

from rayflow.config import ProxySettings, Settings
from rayflow.media.encoders import EncoderPlan, cpu_encode_threads, cpu_encode_workers, is_hardware_encoder
from rayflow.stages.base import Resources
from rayflow.stages.proxy import ProxyStage

log = logging.getLogger(__name__)

ENCODE_SLOT = "rayflow_encode"
"""Ray custom resource: concurrent CPU encodes a node allows (``--encode-workers``)."""
NVENC = "nvenc"
"""Ray custom resource: concurrent NVENC sessions a node allows; hardware encodes take one."""


def ray_options(declared: Resources) -> dict[str, Any]:
    """Ray options for a task or actor from a stage's declared ``Resources``: its CPUs, its GPU
    share (only when it declares one) and NVENC sessions as the ``nvenc`` custom resource.

    NVDEC sessions are no Ray resource yet (no node advertises one: a task asking for it would
    pend forever), so a declaration of them is refused here, loudly."""
    if declared.nvdec:
        raise ValueError(f"no Ray resource stands for NVDEC sessions yet; cannot place {declared}")
    options: dict[str, Any] = {"num_cpus": declared.cpus}
    if declared.gpus:
        options["num_gpus"] = declared.gpus
    if declared.nvenc:
        options["resources"] = {NVENC: declared.nvenc}
    return options


def encode_options(kind: str) -> dict[str, object]:
    """Ray options for one proxy task taking a session of ``kind``: NVENC, what ``ProxyStage``
    declares for a hardware encode; a CPU encode slot, what it declares for a software encode
    plus the slot (the node's cap on concurrent CPU encodes, a property of the node, not the stage)."""
    if kind == NVENC:
        return ray_options(ProxyStage.hardware_resources)
    return {**ray_options(ProxyStage.resources), "resources": {kind: 1}}


@dataclass(frozen=True)
class EncodeResources:
    """How proxies are scheduled on a node: custom resources and ffmpeg threads."""

    node_resources: dict[str, float]
    threads: int
    hardware: bool

    def task_options(self) -> dict[str, object]:
        """Ray options for one proxy task."""
        return encode_options(NVENC if self.hardware else ENCODE_SLOT)

    def done(self, options: dict[str, object]) -> None:
        """One node decides alone: nothing to account for (``ClusterEncode`` counts)."""

    def refresh(self, cluster: dict[str, float], now: float) -> None:
        """One node: if it is lost, so is the run; nothing to follow."""

    def stranded(self, now: float, grace_s: float) -> set[str]:
        return set()

    def can_encode(self) -> bool:
        return True

    def settings_for(self, options: dict[str, object], settings: Settings) -> Settings:
        """The run's settings: on one node the encode plan already matches the resources."""
        return settings


def encode_resources(plan: EncoderPlan, settings: ProxySettings, cpus: int) -> EncodeResources:
    """Resources this node advertises for proxies, from its encoder plan and CPUs."""
    workers = cpu_encode_workers(cpus, settings.encode_workers)
    resources: dict[str, float] = {ENCODE_SLOT: float(workers)}
    sessions = plan.nvenc_sessions(settings.nvenc_sessions)
    if sessions:
        resources[NVENC] = float(sessions)
    return EncodeResources(resources, cpu_encode_threads(cpus, workers), hardware=bool(sessions))


@dataclass
class ClusterEncode:
    """Proxy scheduling on a cluster of many nodes (``--address``).

    Each node advertises its own ``nvenc`` sessions and ``rayflow_encode`` slots (set per
    node type in ray_cluster.yaml, or ``ray start --resources``); the driver only sees the
    totals. A proxy task asks for one NVENC session while the cluster's sessions are not
    all taken, else for a CPU slot, else whichever kind is less loaded — so NVENC work only
    lands on nodes advertising NVENC, and CPU nodes still encode when the GPUs are busy.
    A task holding a CPU slot is told to use software encoders only, even on a node that
    also has NVENC (its sessions belong to the tasks that asked for them).
    """

    nvenc_sessions: float
    cpu_slots: float
    threads: int = 2
    """ffmpeg threads per CPU encode (the default slot is two threads)."""
    in_flight: dict[str, int] = field(default_factory=lambda: {NVENC: 0, ENCODE_SLOT: 0})
    live: dict[str, float] | None = None
    """Totals the alive nodes offer now (``refresh``); None = as at the start."""
    gone_since: dict[str, float] = field(default_factory=dict)
    """Kind -> when the alive nodes stopped offering any of it (monotonic seconds)."""

    @property
    def node_resources(self) -> dict[str, float]:
        return {k: v for k, v in ((NVENC, self.nvenc_sessions), (ENCODE_SLOT, self.cpu_slots)) if v > 0}

    def _capacity(self) -> dict[str, float]:
        """Kinds to schedule on: those alive nodes offer now, else (all gone: wait for an
        autoscaler to bring a node back) those the cluster had at the start."""
        if self.live is None:
            return self.node_resources
        offered = {k: v for k, v in self.live.items() if v > 0 and k in self.node_resources}
        return offered or self.node_resources

    def refresh(self, cluster: dict[str, float], now: float) -> None:
        """Follow node loss: the alive nodes' totals of each kind this run schedules on."""
        self.live = {k: float(cluster.get(k, 0)) for k in self.node_resources}
        for kind, total in self.live.items():
            if total > 0:
                self.gone_since.pop(kind, None)
            else:
                self.gone_since.setdefault(kind, now)

    def stranded(self, now: float, grace_s: float) -> set[str]:
        """Kinds no alive node has offered for ``grace_s``: tasks asking for them cannot start
        (Ray keeps an infeasible task pending forever) and must be re-planned or failed."""
        return {kind for kind, since in self.gone_since.items() if now - since >= grace_s}

    def can_encode(self) -> bool:
        """True while some alive node offers an encode resource."""
        return self.live is None or any(v > 0 for v in self.live.values())

    @property
    def hardware(self) -> bool:
        return self.nvenc_sessions > 0

    def task_options(self) -> dict[str, object]:
        """Ray options for the next proxy task (counts it as in flight until ``done``)."""
        capacity = self._capacity()
        free = {k: cap - self.in_flight[k] for k, cap in capacity.items()}
        if free.get(NVENC, 0) > 0:
            kind = NVENC
        elif free.get(ENCODE_SLOT, 0) > 0:
            kind = ENCODE_SLOT
        else:
            kind = min(capacity, key=lambda k: self.in_flight[k] / capacity[k])
        self.in_flight[kind] += 1
        return encode_options(kind)

    def done(self, options: dict[str, object]) -> None:
        for kind in requested_resources(options):
            self.in_flight[kind] = max(0, self.in_flight.get(kind, 0) - 1)

    @staticmethod
    def settings_for(options: dict[str, object], settings: Settings) -> Settings:
        """Settings for a proxy task with ``options``: software encoders only without an NVENC session."""
        if NVENC in requested_resources(options):
            return settings
        software = tuple(e for e in settings.proxy.encoders if not is_hardware_encoder(e))
        if not software or software == settings.proxy.encoders:
            return settings
        return dataclasses.replace(settings, proxy=dataclasses.replace(settings.proxy, encoders=software))


def requested_resources(options: dict[str, object]) -> list[str]:
    """The custom resources Ray ``options`` ask for (``[]`` when they name none)."""
    resources = options.get("resources")
    return [str(kind) for kind in resources] if isinstance(resources, dict) else []


def cluster_encode(cluster: dict[str, float]) -> ClusterEncode | None:
    """Encode scheduling from a cluster's resource totals; None when no node advertises any."""
    found = ClusterEncode(float(cluster.get(NVENC, 0)), float(cluster.get(ENCODE_SLOT, 0)))
    return found if found.node_resources else None
