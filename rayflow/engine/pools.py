"""Warm model actors: the AnalyzerPool and the embedder.

Each actor hosts a stage (``rayflow.stages.base``) built once (``setup()`` loads
every model) and kept warm across files. The Ray options come from the stage's
declared ``Resources``: GPUs are requested only when the stage can use one and the
cluster reports them, and a GPU request that can never be met fails at once with a
clear message instead of pending forever.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Literal

import ray

from rayflow import __version__
from rayflow.config import AnalysisSettings, EmbedSettings, Timeouts
from rayflow.engine.fleet_rules import (
    NAMESPACE,
    Retire,
    analyzer_name,
    autoscale_bundles,
    backlog,
    grow_by,
    idle_to_release,
)
from rayflow.stages.base import ClipInput, Resources

ANALYZE_STAGE = "rayflow.stages.analyze:AnalyzeStage"
"""The stage an analyzer actor hosts by default ("module:Class", built with the run's Settings)."""

log = logging.getLogger(__name__)


class NoGpuError(RuntimeError):
    """GPUs were required but the Ray cluster has none."""


@dataclass(frozen=True)
class PoolPlan:
    """How many analyzer actors, and what each asks Ray for."""

    workers: int
    num_gpus: float
    num_cpus: float
    reason: str


def plan_analyzers(settings: AnalysisSettings, cluster: dict[str, float],
                   resources: Resources | None = None, *, reserve_gpu: float = 0.0) -> PoolPlan:
    """Size the pool from the cluster's resources and what one analyzer declares
    (``resources``; default one CPU and one GPU). ``reserve_gpu`` is a GPU share another
    actor (the embedder) asks for on one GPU: the default analyzer share shrinks to leave it
    room, so no request waits forever behind the analyzers. Pure; tested without Ray."""
    declared = resources or Resources(cpus=1.0, gpus=1.0)
    gpus = float(cluster.get("GPU", 0))
    cpus = float(cluster.get("CPU", 1))
    if gpus > 0 and not declared.gpus and settings.gpus_per_worker is None and not settings.require_gpu:
        gpus = 0.0  # no enabled role can use a GPU: CPU actors, leaving the GPUs to others
    if gpus <= 0:
        asked = settings.require_gpu or (settings.gpus_per_worker is not None and settings.gpus_per_worker > 0)
        if asked and not (settings.cpu_fallback and not settings.require_gpu):
            flag = "--require-gpu" if settings.require_gpu else f"--gpus-per-worker {settings.gpus_per_worker:g}"
            raise NoGpuError(
                f"analysis asks for GPUs ({flag}) but the Ray cluster reports none; drop the flag "
                "(or add --cpu-fallback) to run the models on CPU, or join a cluster with GPUs (--address)"
            )
        workers = settings.workers or 1
        # A CPU actor that reserved a whole core would hold it while idle; on a small box
        # that starves the per-file tasks, so there it shares the cores instead.
        num_cpus = min(1.0, declared.cpus) if cpus > 4 else 0.0
        return PoolPlan(workers, 0.0, num_cpus, f"no GPU in the cluster: {workers} CPU actor(s)")
    per = settings.gpus_per_worker if settings.gpus_per_worker is not None else (declared.gpus or 1.0)
    if settings.gpus_per_worker is None and reserve_gpu > 0:
        per = min(per, 1.0 - reserve_gpu)
    if per <= 0:
        raise ValueError("--gpus-per-worker must be > 0 on a cluster with GPUs")
    # Ray places a fractional share on ONE GPU: count what fits per GPU, not on the total.
    fit = int(gpus) * int(1.0 // per + 1e-9) if per <= 1 and gpus >= 1 else int(gpus // per)
    if reserve_gpu > 0 and per <= 1 and 1.0 - per * int(1.0 // per + 1e-9) < reserve_gpu - 1e-9:
        fit -= 1  # one GPU keeps room for the reserved share
    if fit == 0:
        raise NoGpuError(
            f"each analyzer asks for {per:g} GPU but the cluster has {gpus:g}; lower --gpus-per-worker"
        )
    workers = settings.workers or fit
    if workers > fit:
        raise NoGpuError(
            f"{workers} analyzers x {per:g} GPU exceed the cluster's {gpus:g} GPU(s); "
            "lower --ai-workers or --gpus-per-worker"
        )
    return PoolPlan(workers, per, min(1.0, declared.cpus, cpus), f"{workers} GPU actor(s) x {per:g} GPU")


@dataclass
class GpuWatch:
    """Notices when the GPUs the analyzers need are gone from the cluster (their node was lost
    and no autoscaler replaced it). Ray keeps an actor restart that needs a GPU pending forever,
    and every analysis queued to it with it; the flow fails those files after a grace period.
    Pure: fed ``ray.cluster_resources()`` totals, tested without Ray."""

    need_gpus: float
    """GPUs one analyzer asks for (``PoolPlan.num_gpus``); 0 = CPU actors, never stranded."""
    gone_since: float | None = None

    def update(self, cluster: dict[str, float], now: float) -> None:
        if self.need_gpus > 0 and float(cluster.get("GPU", 0)) < self.need_gpus:
            self.gone_since = self.gone_since if self.gone_since is not None else now
        else:
            self.gone_since = None

    def stranded(self, now: float, grace_s: float) -> bool:
        return self.gone_since is not None and now - self.gone_since >= grace_s


class AnalyzerActor:
    """Hosts one warm analyze stage (``holder``); the device is chosen inside (CUDA when visible
    to an actor Ray gave a GPU, else the CPU).

    On a cluster it reads and writes through this node's view of the shared paths
    (``Settings.shared_prefix``) and hands back the driver's paths."""

    def __init__(self, settings: Any, holder: str = ANALYZE_STAGE, board: Any = None, name: str = "") -> None:
        import importlib

        from rayflow.engine.placement import PathMap

        if board is not None:  # a persistent analyzer: its process started (placed), models load next
            board.mark_placed.remote(name)
        self.paths = PathMap(tuple(getattr(settings, "shared_prefix", ())))
        module, _, name = holder.partition(":")
        self.settings = self.paths.settings_on_node(settings)
        self.analyzer = getattr(importlib.import_module(module), name)(self.settings)
        started = time.perf_counter()
        self.analyzer.setup(_device_from_ray())
        self.load_s = time.perf_counter() - started
        self.files = 0

    def analyze(self, path: str, clip_id: str, frames: Any, record: Any) -> Any:
        """Analysis for one file; a failing model is recorded in the result, never raised."""
        if getattr(self.analyzer, "stuck", False):
            _exit_now()  # the next file came before the timer fired; Ray retries it on the restart
        self.files += 1
        settings = self.settings
        item = ClipInput.from_record(self.paths.to_node(path), frames, record, clip_id=clip_id,
                                     out_dir=settings.clip_dir(clip_id), timeout_s=settings.timeouts.analyze_s)
        result = self.analyzer.process(item)
        if self.paths.active() and getattr(result, "analysis", None) is not None:
            result.analysis = self.paths.paths_to_driver(result.analysis)
        if getattr(self.analyzer, "stuck", False):
            _exit_soon()
        return result

    @ray.method(concurrency_group="info")
    def node(self) -> Any:
        """The Ray node this actor runs on (a ``StagePlacement`` for the record); answered on
        its own thread ("info" group), never queued behind a long ``analyze``."""
        from rayflow.engine.placement import node_placement

        return node_placement("analyze")

    @ray.method(concurrency_group="info")
    def stats(self) -> dict[str, Any]:
        """Counters and what the roles OBSERVED: ``roles`` (role -> device, model, fell_back,
        reason) and ``device``, the GPU when any role runs on one, else cpu (never the intent)."""
        runs = getattr(self.analyzer, "runs", {})
        gpus = sorted({run.device for run in runs.values() if run.device.startswith("cuda")})
        return {"loads": self.analyzer.loads, "load_s": self.load_s, "files": self.files,
                "device": gpus[0] if gpus else ("cpu" if runs else self.analyzer.device),
                "models": self.analyzer.models,
                "roles": {name: run.model_dump() for name, run in runs.items()},
                "fell_back": {name: run.reason for name, run in runs.items() if run.fell_back}}


class EmbedderActor:
    """Hosts one warm ``EmbedStage``; embeds many records per call (texts batched across files)."""

    def __init__(self, settings: EmbedSettings, timeout_s: float = Timeouts.model_call_s,
                 model_dirs: tuple[Any, ...] | None = None) -> None:
        from rayflow.stages.embed import EmbedStage

        self.stage = EmbedStage(settings, model_dirs=model_dirs)
        self.stage.setup(_device_from_ray())
        self.encoder = self.stage.encoder
        self.calls = 0
        self.timeout_s = timeout_s

    def embed(self, records: list[Any]) -> list[Any]:
        """Vectors for ``records``; a call past ``timeout_s`` raises ``ModelTimeout`` (the batch
        is stored without vectors, with the reason) and the actor restarts, as analyzers do."""
        from rayflow.ml.deadline import ModelTimeout, call_with_deadline

        self.calls += 1
        try:
            return call_with_deadline(lambda: self.stage.process(records), self.timeout_s, what="embed")
        except ModelTimeout:
            _exit_soon()
            raise

    def model(self) -> dict[str, Any]:
        return {"model_id": self.encoder.model_id, "dim": self.encoder.dim}


def _device_from_ray() -> Literal["cpu", "cuda"]:
    """An actor's device: "cuda" when Ray gave it a GPU (share) and torch sees it, else "cpu".
    Without a GPU from Ray (CUDA_VISIBLE_DEVICES is then empty) torch is not even imported to
    ask: 1.3 s of CPU and ~0.3 GB per actor."""
    from rayflow.ml.device import torch_device

    return "cuda" if ray.get_gpu_ids() and torch_device() == "cuda" else "cpu"


STUCK_EXIT_DELAY_S = 1.0
"""After a model call hung, the actor answers the file first, then exits this long after."""


def _exit_soon() -> None:
    """Exit the actor's process shortly after this reply is sent: a hung model thread cannot
    be stopped any other way. An unexpected exit (not ``exit_actor``) makes Ray restart the
    actor (``max_restarts``) with fresh models and retry calls already queued to it
    (``max_task_retries``: a queued file spends one of its ``max_attempts`` on this)."""
    import threading

    log.error("a model call hung: restarting this analyzer process")
    threading.Timer(STUCK_EXIT_DELAY_S, _exit_now).start()


def _exit_now() -> None:
    import os

    os._exit(75)


# Small queries (node, stats) run in their own one-thread group beside the one analyze at a time.
# Ray's keyword overloads of ``ray.remote`` omit the documented actor option ``concurrency_groups``.
_REMOTE_ANALYZER = ray.remote(concurrency_groups={"info": 1})(AnalyzerActor)  # type: ignore[call-overload]


@dataclass
class AnalyzerPool:
    """Least-loaded dispatch over warm analyzer actors, sized to the cluster as it changes.

    While analyses wait behind busy analyzers, the pool adds analyzers as GPUs become free
    (nodes joined) up to what the plan allows there, and asks the autoscaler for the GPU
    bundles the backlog needs; analyzers it added are released after
    ``timeouts.analyzer_idle_s`` without work (never below the size it started with).
    Actor indexes are stable: a released or retired actor leaves ``in_flight``, the live set."""

    actors: list[Any]
    plan: PoolPlan
    in_flight: dict[int, int] = field(default_factory=dict)
    persistent: bool = False
    """Detached actors on a long-lived cluster: kept warm across runs, not killed at the end."""
    settings: Any = None
    holder: str = ANALYZE_STAGE
    options: dict[str, Any] = field(default_factory=dict)
    key: str = ""
    """The persistent actors' settings key (their names: ``fleet_rules.analyzer_name``)."""
    leases: Any = None
    """``analyzer_leases.Leases`` of a persistent pool (None otherwise)."""
    keep: int = 0
    """The size at the start: the pool never shrinks below it."""
    idle_since: dict[int, float | None] = field(default_factory=dict)
    answered: set[int] = field(default_factory=set)
    """Actors known to be placed: they answered a call."""
    requested: int = 0
    """GPU bundles asked of the autoscaler now (0 = no request standing)."""
    events: list[str] = field(default_factory=list)
    """What changed the pool during the run (grew, released, retired), for the summary."""

    @classmethod
    def start(cls, settings: Any, *, holder: str = ANALYZE_STAGE) -> AnalyzerPool:
        """Start the actors; ``holder`` ("module:Class") is the warm stage they host, and its
        ``resources`` (as built from ``settings``) are what each actor asks Ray for. On a
        long-lived cluster (``--address``) they are detached and named after what they were
        built with (reused by the next run with the same settings); persistent analyzers built
        with other settings, and not in use by another run, are killed first."""
        plan = plan_analyzers(settings.analysis, ray.cluster_resources(), _declared(settings, holder),
                              reserve_gpu=_embed_share(settings))
        options: dict[str, Any] = {
            "num_cpus": plan.num_cpus,
            # Restarts are counted over the actor's whole life, so allow plenty (every
            # hostile file may cost max_attempts of them); retries per file stay bounded.
            "max_restarts": 1000,
            "max_task_retries": max(0, settings.analysis.max_attempts - 1),
        }
        if plan.num_gpus:
            options["num_gpus"] = plan.num_gpus
        pool = cls([], plan, persistent=bool(settings.address), settings=settings, holder=holder,
                   options=options, keep=plan.workers)
        retired = ""
        if pool.persistent:
            from rayflow.engine.analyzer_leases import Leases

            # The name carries what the actor was built with (analysis settings, output dir,
            # shared prefixes, version): a change gets fresh actors, and the old ones go.
            built_with = (settings.analysis, str(settings.output_dir), settings.shared_prefix, holder, __version__)
            pool.key = hashlib.blake2s(repr(built_with).encode(), digest_size=4).hexdigest()
            pool.leases = Leases()
            pool.leases.take([analyzer_name(pool.key, i) for i in range(plan.workers)])
            try:
                gone = pool.leases.retire_unused(pool.key, plan.workers)
            except ray.exceptions.RayError as exc:  # the run can go on; old analyzers may hold GPUs
                log.warning("could not retire persistent analyzers built with other settings: %s", exc)
                gone = Retire()
            if gone.kill:
                retired = f"; retired {len(gone.kill)} idle persistent analyzer(s) built with other settings"
            if gone.in_use:
                retired += (f"; {len(gone.in_use)} analyzer(s) with other settings left running, in use by "
                            + ", ".join(sorted({h for hs in gone.in_use.values() for h in hs})))
        for _ in range(plan.workers):
            pool._add()
        if retired:
            pool.events.append(retired[2:])
        log.info("AnalyzerPool: %s%s%s", plan.reason, " (persistent across runs)" if pool.persistent else "", retired)
        return pool

    def _add(self) -> int:
        index = len(self.actors)
        opts = dict(self.options)
        args: tuple[Any, ...] = (self.settings, self.holder)
        if self.persistent:
            name = analyzer_name(self.key, index)
            if index >= self.keep:
                self.leases.take([name])
            opts.update(name=name, namespace=NAMESPACE, lifetime="detached", get_if_exists=True)
            args = (*args, self.leases.board, name)
        self.actors.append(_REMOTE_ANALYZER.options(**opts).remote(*args))
        self.in_flight[index] = 0
        self.idle_since[index] = time.monotonic()
        return index

    def live(self) -> list[int]:
        return sorted(self.in_flight)

    def has_room(self, depth: int, *, avoid: Collection[int] = ()) -> bool:
        """Whether some live actor not in ``avoid`` has fewer than ``depth`` analyses sent to it."""
        loads = [n for i, n in self.in_flight.items() if i not in avoid] or list(self.in_flight.values())
        return bool(loads) and min(loads) < depth

    def submit(self, path: str, clip_id: str, frames_ref: Any, record: Any, *,
               avoid: Collection[int] = ()) -> tuple[Any, int]:
        """Send one analysis to the least-loaded actor not in ``avoid`` (restarting ones)."""
        candidates = [i for i in self.in_flight if i not in avoid] or list(self.in_flight)
        index = min(candidates, key=self.in_flight.__getitem__)
        self.in_flight[index] += 1
        self.idle_since[index] = None
        return self.actors[index].analyze.remote(path, clip_id, frames_ref, record), index

    def done(self, index: int) -> None:
        if index not in self.in_flight:
            return  # released or retired meanwhile
        self.in_flight[index] = max(0, self.in_flight[index] - 1)
        if not self.in_flight[index]:
            self.idle_since[index] = time.monotonic()

    def unplaced(self) -> list[int]:
        """Live actors whose process has not started (Ray has not placed them: e.g. no GPU free).
        Known only for persistent pools (their start is reported to the lease board)."""
        if self.leases is None:
            return []
        waiting = [i for i in self.live() if i not in self.answered]
        if not waiting:
            return []
        try:
            placed = self.leases.placed([analyzer_name(self.key, i) for i in waiting])
        except ray.exceptions.RayError as exc:  # the board is unreachable now: nothing known, ask later
            log.warning("could not ask which analyzers are placed: %s", exc)
            return []
        self.answered |= {i for i in waiting if analyzer_name(self.key, i) in placed}
        return [i for i in waiting if i not in self.answered]

    def in_use_elsewhere(self) -> dict[str, list[str]]:
        """Persistent analyzers built with other settings that another run holds (name -> runs)."""
        if self.leases is None:
            return {}
        try:
            return self.leases.others_in_use(self.key)
        except ray.exceptions.RayError:
            return {}

    def adjust(self, queued: int, now: float) -> None:
        """Grow while ``queued`` analyses (sent and not finished, plus waiting) outnumber the
        live actors, ask the autoscaler for the GPU bundles that backlog needs (withdrawn when
        it is gone), and release added actors idle for ``timeouts.analyzer_idle_s``."""
        live = self.live()
        waiting = backlog(queued, len(live))
        auto = self.settings is not None and not self.settings.analysis.workers and self.plan.num_gpus > 0
        if waiting and auto:
            added = grow_by(current=len(live), fit=self._fit(), waiting=waiting,
                            free_gpus=float(ray.available_resources().get("GPU", 0)), per_gpu=self.plan.num_gpus)
            for _ in range(added):
                self._add()
            if added:
                self.events.append(f"grew to {len(self.live())} analyzer(s): GPUs free while files waited")
                log.info("AnalyzerPool: %s", self.events[-1])
        if auto and self.persistent:  # an autoscaler exists only on a long-lived cluster (`ray up`)
            self._ask_autoscaler(autoscale_bundles(current=len(self.live()), waiting=backlog(queued, len(self.live())),
                                                   per_gpu=self.plan.num_gpus, cpus=self.plan.num_cpus))
        idle_s = self.settings.timeouts.analyzer_idle_s if self.settings is not None else 120.0
        for index in idle_to_release(self.idle_since, keep=self.keep, now=now, idle_s=idle_s):
            if self.release(index, why=f"idle {idle_s:g} s"):
                self.events.append(f"released analyzer {index} (idle {idle_s:g} s)")

    def _fit(self) -> int:
        """Analyzers the plan allows on the cluster as it is now (0 when it allows none)."""
        try:
            now = plan_analyzers(self.settings.analysis, ray.cluster_resources(),
                                 _declared(self.settings, self.holder), reserve_gpu=_embed_share(self.settings))
        except (NoGpuError, ValueError):
            return 0
        return now.workers if now.num_gpus == self.plan.num_gpus else 0

    def _ask_autoscaler(self, bundles: list[dict[str, float]]) -> None:
        if len(bundles) == self.requested:
            return
        from ray.autoscaler.sdk import request_resources

        try:
            request_resources(bundles=bundles)
        except Exception as exc:  # noqa: BLE001 - a hint to the autoscaler; the run goes on without it
            log.warning("could not ask the autoscaler for %d GPU bundle(s): %s", len(bundles), exc)
            return
        self.requested = len(bundles)
        if bundles:
            log.info("AnalyzerPool: asked the autoscaler for %d bundle(s) of %s", len(bundles), bundles[0])

    def release(self, index: int, *, why: str) -> bool:
        """Kill live actor ``index`` (idle, or never placed); False when another run holds it."""
        if index not in self.in_flight:
            return False
        if self.persistent:
            name = analyzer_name(self.key, index)
            try:
                if self.leases.holders([name]).get(name):
                    return False  # a same-settings run beside this one uses it
            except ray.exceptions.RayError:
                return False  # who uses it is unknown now: keep it
            self.leases.release([name])
            self.leases.kill([name])
        else:
            ray.kill(self.actors[index], no_restart=True)
        del self.in_flight[index]
        self.idle_since.pop(index, None)
        log.info("AnalyzerPool: released analyzer %d (%s)", index, why)
        return True

    def stats(self, timeout_s: float = 30.0) -> list[dict[str, Any]]:
        """Each reachable live actor's counters; an actor that does not answer in ``timeout_s``
        (its node was lost and its restart waits for a GPU) is left out rather than waited for."""
        refs = [self.actors[i].stats.remote() for i in self.live()]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
        answers = []
        for ref in ready:
            try:
                answers.append(ray.get(ref))
            except ray.exceptions.RayError:
                continue
        return answers

    def where(self, index: int) -> Any:
        """The node actor ``index`` runs on now (it just served a file), or None if it is gone."""
        try:
            return ray.get(self.actors[index].node.remote(), timeout=10)
        except (ray.exceptions.RayError, TimeoutError, AttributeError):  # AttributeError: older actor
            return None

    def stop(self) -> None:
        """End of the run: withdraw the autoscaler request; a persistent pool keeps its first
        ``keep`` actors warm for the next run (``ray stop``, or a run with other settings, ends
        them), releases the ones it added and drops its leases; otherwise all are killed."""
        if self.requested:
            self._ask_autoscaler([])
        if not self.persistent:
            for index in self.live():
                ray.kill(self.actors[index], no_restart=True)
            return
        for index in self.live():
            if index >= self.keep:
                self.release(index, why="added for this run's backlog")
        self.leases.release()


def _declared(settings: Any, holder: str) -> Resources | None:
    """The ``resources`` the holder stage declares for these settings (None when it declares none)."""
    import importlib

    module, _, name = holder.partition(":")
    kind = getattr(importlib.import_module(module), name)
    resources_for = getattr(kind, "resources_for", None)  # resources that depend on the settings
    declared = resources_for(settings) if resources_for is not None else getattr(kind, "resources", None)
    return declared if isinstance(declared, Resources) else None


def embedder_options(cluster: dict[str, float]) -> dict[str, Any]:
    """Ray options for the embedder from ``EmbedStage.resources``: its GPU share only where the
    cluster has GPUs (so Ray counts it beside the analyzers' shares instead of letting it use a
    GPU unasked). A timed-out call is not retried (it raised), but the restart after it must be
    allowed. Pure; tested without Ray."""
    from rayflow.stages.embed import EmbedStage

    declared = EmbedStage.resources
    options: dict[str, Any] = {"num_cpus": declared.cpus, "max_restarts": 100, "max_task_retries": 1}
    if float(cluster.get("GPU", 0)) > 0 and declared.gpus:
        options["num_gpus"] = declared.gpus
    return options


def _embed_share(settings: Any) -> float:
    """The embedder's GPU share when this run's steps include embed (0 otherwise)."""
    from rayflow.stages.embed import EmbedStage
    from rayflow.stages.steps import plan_steps

    try:
        steps = plan_steps(skip=tuple(settings.skip), only=tuple(settings.only)).enabled
    except (AttributeError, ValueError):
        return 0.0
    return EmbedStage.resources.gpus if "embed" in steps else 0.0


def start_embedder(settings: EmbedSettings, timeouts: Timeouts | None = None,
                   model_dirs: tuple[Any, ...] | None = None, *, persistent: bool = False) -> Any:
    """The embedder actor (``model_dirs``: ``Settings.model_dirs()``; None = the default folders).
    ``persistent``: a detached actor named after what it is built with, kept warm across runs on a
    long-lived cluster (as the analyzers are); the caller then leaves it running."""
    timeout_s = (timeouts or Timeouts()).model_call_s
    options = embedder_options(ray.cluster_resources())
    if persistent:
        key = hashlib.blake2s(repr((settings, timeout_s, model_dirs, __version__)).encode(),
                              digest_size=4).hexdigest()
        options.update(name=f"rayflow-embedder-{key}", namespace="rayflow", lifetime="detached",
                       get_if_exists=True)
    return ray.remote(EmbedderActor).options(**options).remote(settings, timeout_s, model_dirs)
