"""One ingest run end to end: the Prefect API, Ray, the catalog writer, the flow.

This is what the CLI (and benchmarks, and tests) call. Startup overlaps: the
Prefect server migrates its database while Ray starts.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rayflow.catalog.local_records import CatalogBusy
from rayflow.config import Settings
from rayflow.engine import runtime
from rayflow.engine.progress import LIVE_FILE, Progress, publish_live
from rayflow.record import RunSummary

if TYPE_CHECKING:
    from rayflow.engine.service import RayService

log = logging.getLogger(__name__)


@dataclass
class RunTimings:
    """Seconds spent before the first file could start, by part."""

    prefect_s: float = 0.0
    ray_s: float = 0.0
    writer_s: float = 0.0
    flow_s: float = 0.0
    total_s: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)


def runs_dir(home: Path) -> Path:
    return home / "runs"


def save_summary(summary: RunSummary, home: Path) -> Path:
    """Keep each run's summary under ``<home>/runs/<run_id>.json`` (atomic write)."""
    folder = runs_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{summary.run_id}.json"
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(summary.model_dump_json(indent=2), encoding="utf-8")
    os.replace(tmp, target)
    return target


class HomeBusy(RuntimeError):
    """Another ingest is running on the same home."""


@contextlib.contextmanager
def home_lock(home: Path) -> Iterator[None]:
    """Hold ``<home>/ingest.lock`` for a run: a second ingest on the same home is
    refused at once with a clear message instead of fighting over the catalog."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "ingest.lock"
    with path.open("a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise HomeBusy(
                f"another rayflow ingest is running on {home} ({holder}); wait for it, or use "
                "a different --home"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        try:
            yield
        finally:
            fh.seek(0)
            fh.truncate()
            fcntl.flock(fh, fcntl.LOCK_UN)


def ingest(
    paths: list[str], settings: Settings, *, progress: Progress | None = None,
    run_id: str | None = None, timings: RunTimings | None = None,
) -> RunSummary:
    """Run the ingest flow over ``paths`` with ``settings``; returns the run summary.

    Raises ``HomeBusy`` when another ingest holds the home, ``CatalogBusy`` when the
    embedded catalog is open elsewhere.
    """
    with home_lock(settings.home):
        # A run killed with -9 leaves its Prefect server (and maybe Ray) running: stop them.
        import ray

        from rayflow.engine.orphans import stop_leftovers

        stop_leftovers(settings.home, ray=not settings.address and not ray.is_initialized())
        progress = progress or Progress()
        with publish_live(progress, settings.home):  # <home>/runs/live.json for `rayflow serve`
            return _ingest(paths, settings, progress=progress, run_id=run_id, timings=timings)


@dataclass
class RunActors:
    """The long-lived actors of one run, started before the flow and stopped after it."""

    writer: Any
    writer_ready: Any
    analyzers: Any = None
    embedder: Any = None
    warm_refs: list[Any] = field(default_factory=list)
    persistent: bool = False
    """The model actors are detached (a long-lived cluster): left running after the run."""


def _ingest(
    paths: list[str], settings: Settings, *, progress: Progress | None,
    run_id: str | None, timings: RunTimings | None,
) -> RunSummary:
    runtime.apply_quiet_env()
    timings = timings or RunTimings()
    started = time.monotonic()
    from rayflow.engine.placement import local_path

    paths = [local_path(p) for p in paths]  # file:// URLs; other schemes raise UnsupportedUrl
    _check_cluster_settings(settings)
    settings.home.mkdir(parents=True, exist_ok=True)
    server, api_url = _prefect_api(settings)
    previous_api = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = api_url
    runtime.preload_prefect(api_url)  # the flow's imports (~1.5 s) overlap Ray's start from here
    import ray

    owns_ray = not ray.is_initialized()  # tests and benchmarks may keep one cluster warm
    try:
        summary = _run_on_ray(paths, settings, progress=progress, run_id=run_id, timings=timings,
                              server=server, api_url=api_url, owns_ray=owns_ray)
    finally:
        _shut_down(settings, server, owns_ray=owns_ray, previous_api=previous_api, timings=timings)
    summary.prefect_api_url = api_url
    timings.total_s = time.monotonic() - started
    save_summary(summary, settings.home)
    return summary


def _prefect_api(settings: Settings) -> tuple[runtime.PrefectServer | None, str]:
    """The Prefect API this run reports to: the configured one, a running local server, or a
    new one (started without waiting: it migrates its database while Ray starts)."""
    if settings.prefect_api_url:
        return None, settings.prefect_api_url
    # On a cluster, workers on other machines report to this API: it listens on the
    # address they reach this machine by, not on loopback.
    host = runtime.cluster_host(settings.address)
    server = runtime.running_server(settings.home)
    if server is not None and runtime.is_loopback(server.url.split("//")[-1].split(":")[0]) \
            and not runtime.is_loopback(host):
        log.warning("the running Prefect server at %s is loopback-only; remote Ray workers could "
                    "not reach it, so this run starts its own on %s", server.url, host)
        server = None
    server = server or runtime.start_prefect_server(settings.home, wait=False, host=host)
    return server, server.url


def _run_on_ray(
    paths: list[str], settings: Settings, *, progress: Progress | None, run_id: str | None,
    timings: RunTimings, server: runtime.PrefectServer | None, api_url: str, owns_ray: bool,
) -> RunSummary:
    """Start Ray (unless running), the actors, then the flow; actors stop whatever happens."""
    import ray

    from rayflow.stages.steps import plan_steps

    steps = plan_steps(skip=settings.skip, only=settings.only).enabled
    t = time.monotonic()
    svc = _attach_to_service(settings, api_url) if owns_ray else None
    actors: RunActors | None = None
    if svc is not None:
        settings = replace(settings, address=svc.address)
        actors = _start_first(settings, timings)  # first: their start overlaps with all that follows
    timings.ray_s = time.monotonic() - t
    try:
        # Attached: the encoders the service found when it started (its node's encode slots come
        # from them), instead of trying ffmpeg's encoders again (~0.3 s alone, ~1 s beside the warm-ups).
        plan, encode = _plan_encodes(steps, settings,
                                     known=svc.encoder_plan(settings.proxy.encoders) if svc else None)
        if actors is None:
            t = time.monotonic()
            if owns_ray:
                runtime.start_ray(settings.home, address=settings.address, prefect_api_url=api_url,
                                  resources=encode.node_resources if encode and not settings.address else None)
            timings.ray_s += time.monotonic() - t
            actors = _start_first(settings, timings)
        if settings.preflight and len([n for n in ray.nodes() if n.get("Alive")]) > 1:
            t = time.monotonic()
            _preflight(paths, settings)
            timings.extra["preflight_s"] = time.monotonic() - t
        encode = _cluster_encode(encode, settings)
        _start_model_actors(actors, settings, steps)
        if server is not None:
            t = time.monotonic()
            server.wait_ready()
            timings.prefect_s = time.monotonic() - t
        catalog_ready = _catalog_check(actors, settings, timings)
        t = time.monotonic()
        from rayflow.engine.flow import new_run_id, run_ingest_flow
        from rayflow.engine.scheduler import RunHandles

        handles = RunHandles(writer=actors.writer, progress=progress, encode=encode,
                             encoder_note=_encoder_note(plan), analyzers=actors.analyzers,
                             embedder=actors.embedder, catalog_ready=catalog_ready)
        from rayflow.ml.gpu_monitor import GpuMonitor

        with GpuMonitor() as gpu_use:  # NVML busy share and memory of this machine's GPUs
            summary = run_ingest_flow(paths, settings, handles, run_id=run_id or new_run_id())
        if problem := catalog_ready():  # asked by the flow, or now for a run with no file to look up
            raise problem
        if not gpu_use.unavailable:
            summary.notes.append(gpu_use.summary().line())
        if svc is not None:
            summary.notes.append(f"attached to the rayflow service's Ray at {svc.address} "
                                 "(`rayflow server start`): models stay loaded for the next run")
        _note_analyzers(summary, actors.analyzers, timings)
        timings.flow_s = time.monotonic() - t
    finally:
        t = time.monotonic()
        if actors is not None:
            _stop_actors(actors)
        timings.extra["writer_stop_s"] = time.monotonic() - t
    return summary


def _plan_encodes(steps: frozenset[str], settings: Settings, *, known: Any = None) -> tuple[Any, Any]:
    """The proxy encoders this machine has (``known``, else ``detect_encoders``) and the encode
    slots they give (``encode_resources``); (None, None) when proxies are not made."""
    if "proxy" not in steps:
        return None, None
    from rayflow.engine.resources import encode_resources
    from rayflow.media.encoders import detect_encoders

    plan = known or detect_encoders(settings.proxy.encoders, timeout_s=60)
    return plan, encode_resources(plan, settings.proxy, os.cpu_count() or 1)


def _attach_to_service(settings: Settings, api_url: str) -> RayService | None:
    """Join the home's running service (``rayflow server start``) when no ``--address`` was
    given: the run then uses its Ray as a cluster, so the analyzers are its persistent, warm
    actors. Returns the service attached to, or None (no service: the caller starts a private
    Ray). A service that does not answer (stale record) only logs a warning."""
    from rayflow.engine import service

    svc = None if settings.address else service.running(settings.home)
    if svc is None:
        return None
    try:
        runtime.start_ray(settings.home, address=svc.address, prefect_api_url=api_url)
    except runtime.ClusterUnreachable as exc:
        log.warning("the rayflow service's Ray did not answer (%s); this run starts its own", exc)
        return None
    log.info("attached to the rayflow service's Ray at %s", svc.address)
    return svc


def _start_first(settings: Settings, timings: RunTimings) -> RunActors:
    """What takes a new process, sent the moment Ray is up, so that it starts while this
    process detects encoders and imports the flow: the catalog writer (it opens the catalog)
    and one warm-up task (a new Ray worker imports prefect, stages, decord: ~2 s). The
    warm-up is not waited for: the first task queues behind it and reuses its worker. One,
    not one per CPU: on 2 cores each more was as much CPU taken from this process's own
    start-up (first stage 3.4 s attached to the service with two, 2.7 s with one); the
    other workers start as tasks queue, while the first file is under way."""
    import ray

    from rayflow.engine.actors import start_catalog_writer
    from rayflow.engine.warmup import warm_worker

    t = time.monotonic()
    writer, writer_ready = start_catalog_writer(
        catalog_dir=None if settings.qdrant_url else settings.catalog_dir,
        qdrant_url=settings.qdrant_url, api_key=settings.qdrant_api_key,
        records_dir=settings.records_dir,
    )
    timings.writer_s = time.monotonic() - t
    warm = [ray.remote(warm_worker).options(num_cpus=1).remote()]
    return RunActors(writer, writer_ready, warm_refs=warm, persistent=bool(settings.address))


def _cluster_encode(encode: Any, settings: Settings) -> Any:
    """The encode slots to schedule on: each node's own on a cluster; None (CPUs only) when the
    cluster advertises none of rayflow's encode resources (a task asking would pend forever)."""
    if encode is not None and settings.address:
        # Each node advertises its own NVENC sessions / CPU encode slots; schedule on the totals.
        from rayflow.engine.resources import cluster_encode

        encode = cluster_encode(_cluster_resources()) or encode
    if encode is not None and not _cluster_has(encode.node_resources):
        log.warning("Ray cluster advertises no %s resources; proxy encodes are capped by CPUs only",
                    ", ".join(encode.node_resources))
        return None
    return encode


def _start_model_actors(actors: RunActors, settings: Settings, steps: frozenset[str]) -> None:
    """The model actors (they load their weights while the Prefect server finishes starting);
    on a long-lived cluster (the service's) they are its persistent, already warm ones."""
    from rayflow.engine.pools import AnalyzerPool, start_embedder

    actors.analyzers = AnalyzerPool.start(settings) if "analyze" in steps else None
    actors.embedder = (start_embedder(settings.embed, settings.timeouts, persistent=actors.persistent)
                       if "embed" in steps else None)


def _catalog_check(actors: RunActors, settings: Settings,
                   timings: RunTimings) -> Callable[[], Exception | None]:
    """The check the flow makes before its first look at the catalog (after the first
    fingerprints: the writer opens the catalog meanwhile). Returns the problem, or None: the
    catalog could not be opened (CatalogBusy when it is open elsewhere) or was built with
    another text model (ModelMismatch). Nothing is loaded for it: the model is known by name
    (the catalog checks every write's vectors as well). The answer is kept: the run asks again
    after the flow, for a run that had no file to look up, and raises the problem."""
    @functools.cache
    def check() -> Exception | None:
        t = time.monotonic()
        problem = _catalog_problem(actors, settings)
        timings.extra["catalog_wait_s"] = time.monotonic() - t
        return problem

    return check


def _catalog_problem(actors: RunActors, settings: Settings) -> Exception | None:
    import ray

    try:
        ray.get(actors.writer_ready)
    except ray.exceptions.RayError as exc:
        ray.kill(actors.writer, no_restart=True)
        if "already accessed" in str(exc):
            return CatalogBusy(f"the catalog at {settings.catalog_dir} is open in another process "
                               "(embedded Qdrant allows one at a time); close it, or use --qdrant-url")
        return RuntimeError(f"cannot open the catalog: {exc}")
    if actors.embedder is None:
        return None
    from rayflow.ml.text_encoder import TextEncoder

    configured = TextEncoder(settings.embed.text_model)  # names the model: nothing loads
    try:
        dim: int | None = configured.dim  # the packaged default's; others are known once loaded
    except RuntimeError:
        dim = None
    try:
        ray.get(actors.writer.check_model.remote(configured.model_id, dim))
    except ray.exceptions.RayTaskError as exc:
        cause = exc.as_instanceof_cause()
        from rayflow.catalog.errors import ModelMismatch

        if isinstance(cause, ModelMismatch):
            return ModelMismatch(str(cause).splitlines()[-1])
        raise
    return None


def _encoder_note(plan: Any) -> str | None:
    if plan is None:
        return None
    chosen = plan.encoders[0] if plan.encoders else "none"
    return f"encoder {chosen}: {'GPU' if plan.hardware else 'CPU'}" + "".join(
        f"; {name} not used: {reason}" for name, reason in plan.rejected)


def _note_analyzers(summary: RunSummary, analyzers: Any, timings: RunTimings) -> None:
    """How the analysis ran (plan, model loads per file, unreachable actors) into the summary."""
    if analyzers is None:
        return
    stats = analyzers.stats()
    gone = len(analyzers.live()) - len(stats)
    summary.notes.append(
        f"analysis: {analyzers.plan.reason}; model loads {sum(x['loads'] for x in stats)} "
        f"for {sum(x['files'] for x in stats)} file(s)"
        + (f"; {gone} analyzer(s) unreachable (node lost?)" if gone else "")
        + _pool_events(list(getattr(analyzers, "events", ()))))
    by_device: dict[str, set[str]] = {}
    for x in stats:  # what each role OBSERVED (after any fallback), never what was asked for
        for role, run in x.get("roles", {}).items():
            by_device.setdefault(str(run["device"]), set()).add(role)
    if by_device:
        summary.notes.append("roles ran on " + "; ".join(
            f"{device}: {', '.join(sorted(roles))}" for device, roles in sorted(by_device.items())))
    fell_back = {role: reason for x in stats for role, reason in x.get("fell_back", {}).items()}
    for role, reason in sorted(fell_back.items()):
        summary.notes.append(f"GPU fallback: {role} ran on the CPU ({reason})")
    if stats:
        timings.extra["analyzer_load_s"] = max(x["load_s"] for x in stats)


def _pool_events(events: list[str], most: int = 4) -> str:
    """What changed the analyzer pool (retired, grew, released), the first ``most`` of them."""
    more = f"; and {len(events) - most} more pool change(s)" if len(events) > most else ""
    return "".join(f"; {event}" for event in events[:most]) + more


def _stop_actors(actors: RunActors) -> None:
    import ray

    from rayflow.engine.actors import stop_catalog_writer

    if actors.analyzers is not None:
        actors.analyzers.stop()
    if actors.embedder is not None and not actors.persistent:  # detached: warm for the next run
        ray.kill(actors.embedder, no_restart=True)
    stop_catalog_writer(actors.writer)


def _shut_down(settings: Settings, server: runtime.PrefectServer | None, *, owns_ray: bool,
               previous_api: str | None, timings: RunTimings) -> None:
    """Stop Ray (when this run started it) and the Prefect server it owns; restore the env."""
    t = time.monotonic()
    if owns_ray:
        runtime.stop_ray()
    timings.extra["ray_stop_s"] = time.monotonic() - t
    if previous_api is None:
        os.environ.pop("PREFECT_API_URL", None)
    else:
        os.environ["PREFECT_API_URL"] = previous_api
    t = time.monotonic()
    if server is not None:
        if settings.prefect_retention_days > 0 and server.owned:
            prune_prefect_runs(settings.prefect_retention_days)
        server.stop()
    timings.extra["prefect_stop_s"] = time.monotonic() - t


def _cluster_resources() -> dict[str, float]:
    import ray

    return dict(ray.cluster_resources())


def prune_prefect_runs(days: int, *, limit: int = 200) -> int:
    """Delete flow runs (and their task runs) older than ``days`` from the current API.

    Housekeeping for the local server rayflow manages; bounded per call so it never
    delays a run by much (200 is also the API's page limit). Returns how many were deleted."""
    from datetime import UTC, datetime, timedelta

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterStartTime

    cutoff = datetime.now(UTC) - timedelta(days=days)
    deleted = 0
    try:
        with get_client(sync_client=True) as client:
            old = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(before_=cutoff)),
                limit=limit)
            for run in old:
                client.delete_flow_run(run.id)
                deleted += 1
    except Exception as exc:  # housekeeping must never fail a finished run
        log.warning("could not prune old Prefect runs: %s", exc)
    if deleted:
        log.info("pruned %d Prefect flow run(s) older than %d days", deleted, days)
    return deleted


class ClusterSetupError(RuntimeError):
    """Settings that cannot work on the requested cluster (the message says what to change)."""


def _check_cluster_settings(settings: Settings) -> None:
    """Refuse combinations that would fail later and less clearly.

    With Ray Client (``ray://``) the CLI is not on a cluster node: the catalog writer
    actor runs on the cluster, so an embedded catalog under this machine's home cannot be
    reached by it, and a Prefect API on this machine is usually not reachable from there.
    """
    if settings.address and settings.address.startswith("ray://"):
        missing = []
        if not settings.qdrant_url:
            missing.append("--qdrant-url (a Qdrant server the cluster can reach; the embedded catalog "
                           "lives on this machine, the writer actor on the cluster)")
        if not settings.prefect_api_url:
            missing.append("PREFECT_API_URL (a Prefect server or Cloud the cluster's workers can reach)")
        if missing:
            raise ClusterSetupError(
                f"{settings.address} is a Ray Client address: this process is not a cluster node. Set "
                + " and ".join(missing) + "; or run rayflow on the head node with --address auto")


def _preflight(paths: list[str], settings: Settings) -> None:
    """Every node must see the inputs (those that exist here) and write the output dir."""
    from rayflow.engine.preflight import check_nodes

    # Absolute (other nodes have another cwd); missing ones get the per-file discover error.
    present = [os.path.abspath(p) for p in paths if os.path.lexists(p)]
    check_nodes(present, str(settings.output_dir), settings.shared_prefix)


def _cluster_has(wanted: dict[str, float]) -> bool:
    available = _cluster_resources()
    return all(available.get(name, 0) >= 1 for name in wanted)


def last_summaries(home: Path, limit: int = 10) -> list[RunSummary]:
    folder = runs_dir(home)
    if not folder.is_dir():
        return []
    files = sorted((f for f in folder.glob("*.json") if f.name != LIVE_FILE), reverse=True)[:limit]
    out = []
    for f in files:
        try:
            out.append(RunSummary.model_validate(json.loads(f.read_text())))
        except (OSError, ValueError):
            log.warning("unreadable run summary %s", f)
    return out
