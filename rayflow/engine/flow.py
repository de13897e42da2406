"""The ``ingest`` Prefect flow on prefect-ray's RayTaskRunner.

Prefect tasks are coarse on purpose (each costs ~0.1 s of orchestration here):
one ``fingerprint`` task per small batch of files, then one ``inspect`` task per
file (or per 2-4 small files) running probe -> sample (decode once) -> thumbnails
and exposure as plain functions. Then, side by side, the warm AnalyzerPool actors
(frames arrive as an object-store ref, never through the flow process) and a
``proxy`` task; the embedder actor batches records across files, and the single
``CatalogWriter`` actor writes each record last.

Errors are values: a deterministic failure (a corrupt file) is recorded in the
file's ``errors`` and never retried; a transient one (a tool timing out under
load, a lost worker) raises ``TransientError`` so Prefect's ``retries`` apply.
"""

from __future__ import annotations

import contextlib
import logging
import time
import traceback
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ray
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.context import get_run_context
from prefect_ray import RayTaskRunner
from prefect_ray.context import remote_options

from rayflow import __version__
from rayflow.config import Settings
from rayflow.engine.placement import node_placement, path_map, spread_options
from rayflow.engine.pools import GpuWatch
from rayflow.engine.progress import Progress
from rayflow.media.tools import ToolError, ToolTimeout
from rayflow.record import (
    ClipRecord,
    ExposureInfo,
    FileResult,
    ProxyInfo,
    RunSummary,
    SampleInfo,
    StagePlacement,
    StageTiming,
    Thumbnail,
)
from rayflow.stages.discover import discover
from rayflow.stages.fingerprint import Fingerprint, FingerprintError, fingerprint
from rayflow.stages.steps import plan_steps

log = logging.getLogger(__name__)


class TransientError(RuntimeError):
    """A failure that may not repeat (timeout under load); Prefect retries these."""


def _retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry timeouts and lost workers, nothing else."""
    exc = state.result(raise_on_failure=False)
    return isinstance(exc, TransientError | TimeoutError | ray.exceptions.RayError)


# ---------------------------------------------------------------- task outcomes


@dataclass
class FingerprintOutcome:
    path: str
    fingerprint: Fingerprint | None
    error: str | None
    seconds: float


@dataclass
class ProbeOutcome:
    result: Any | None  # rayflow.stages.probe.ProbeResult
    error: str | None
    seconds: float


@dataclass
class SampleOutcome:
    sample: SampleInfo | None = None
    thumbnails: list[Thumbnail] = field(default_factory=list)
    exposure: ExposureInfo | None = None
    frames_ref: Any | None = None
    """ObjectRef of the decoded frames for later stages (analysis); not stored."""
    errors: dict[str, str] = field(default_factory=dict)
    skipped: str | None = None
    timings: dict[str, float] = field(default_factory=dict)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) < 500 else text[:497] + "..."


# ---------------------------------------------------------------- tasks


@task(name="fingerprint", cache_policy=NO_CACHE, retry_condition_fn=_retry_transient)
def fingerprint_batch(paths: list[str], shared_prefix: tuple[tuple[str, str], ...] = ()) -> list[FingerprintOutcome]:
    """Hash a small batch of files (one Prefect task for many cheap hashes).

    ``shared_prefix``: see ``Settings.shared_prefix``; the record keeps the driver's path."""
    from rayflow.engine.placement import PathMap

    pmap = PathMap(shared_prefix)
    out: list[FingerprintOutcome] = []
    for path in paths:
        started = time.perf_counter()
        try:
            fp = fingerprint(Path(pmap.to_node(path)))
            if fp.file.path != path:
                fp = Fingerprint(clip_id=fp.clip_id, file=fp.file.model_copy(update={"path": path}))
            out.append(FingerprintOutcome(path, fp, None, time.perf_counter() - started))
        except FingerprintError as exc:
            out.append(FingerprintOutcome(path, None, str(exc), time.perf_counter() - started))
    return out


def run_probe(path: str, settings: Settings) -> ProbeOutcome:
    """ffprobe, mediainfo and exiftool once each, consolidated; tool errors are values."""
    from rayflow.stages.probe import probe

    started = time.perf_counter()
    try:
        result = probe(Path(path), timeouts=settings.timeouts)
    except ToolTimeout as exc:
        raise TransientError(str(exc)) from exc
    except (ToolError, OSError) as exc:
        return ProbeOutcome(None, _describe(exc), time.perf_counter() - started)
    return ProbeOutcome(result, None, time.perf_counter() - started)


def run_sample(
    path: str, clip_id: str, probed: ProbeOutcome, settings: Settings, steps: frozenset[str]
) -> SampleOutcome:
    """Decode frames once; thumbnails and exposure from the same frames."""
    from rayflow.stages.exposure import measure_exposure
    from rayflow.stages.frames import sample_frames
    from rayflow.stages.thumbnails import write_thumbnails

    result = probed.result
    if result is None:
        return SampleOutcome(skipped="probe failed")
    if result.kind != "video" or result.video is None:
        return SampleOutcome(skipped=f"no video stream ({result.kind})")
    outcome = SampleOutcome()
    started = time.perf_counter()
    try:
        frames, info = sample_frames(
            Path(path), rotation=result.video.rotation, settings=settings.sample,
            timeout_s=settings.timeouts.decode_s,
        )
    except ToolTimeout as exc:
        raise TransientError(str(exc)) from exc
    except Exception as exc:  # decoder errors are per-file values, not crashes of the batch
        outcome.errors["sample"] = _describe(exc)
        return outcome
    outcome.sample = info
    outcome.timings["sample"] = time.perf_counter() - started
    if frames.note:  # the preferred decoder crashed on this file; another one decoded it
        outcome.errors["decoder"] = frames.note
    if "thumbnails" in steps:
        started = time.perf_counter()
        try:
            outcome.thumbnails = write_thumbnails(
                frames, settings.clip_dir(clip_id), settings.thumbnails
            )
        except Exception as exc:
            outcome.errors["thumbnails"] = _describe(exc)
        outcome.timings["thumbnails"] = time.perf_counter() - started
    if "exposure" in steps:
        started = time.perf_counter()
        try:
            outcome.exposure = measure_exposure(frames)
        except Exception as exc:
            outcome.errors["exposure"] = _describe(exc)
        outcome.timings["exposure"] = time.perf_counter() - started
    outcome.frames_ref = ray.put(frames)
    return outcome


@dataclass
class InspectOutcome:
    probe: ProbeOutcome | None
    sample: SampleOutcome | None
    transient: str | None = None
    """Set when this file hit a transient error inside a multi-file batch (re-run alone)."""
    node: StagePlacement | None = None
    """The Ray node that ran it."""


def inspect_one(path: str, clip_id: str, settings: Settings, steps: frozenset[str]) -> InspectOutcome:
    """probe -> sample -> thumbnails, exposure for one file, as plain functions."""
    if "probe" not in steps:
        return InspectOutcome(None, None)
    probed = run_probe(path, settings)
    sampled = run_sample(path, clip_id, probed, settings, steps) if "sample" in steps else None
    return InspectOutcome(probed, sampled)


@task(name="inspect", cache_policy=NO_CACHE, retry_condition_fn=_retry_transient)
def inspect_files(items: list[tuple[str, str]], settings: Settings, steps: frozenset[str]) -> list[InspectOutcome]:
    """Inspect one file, or a few small ones: ONE Prefect task for the lot.

    Each Prefect task costs ~0.1 s of orchestration (and ~0.3 s of CPU across the
    worker, driver and server) on a small box, so small files share a task and the
    stages run as plain functions inside it. Idempotent: a retry redoes them all. A
    lone file's transient error raises (Prefect retries it); in a batch it is returned
    as ``transient`` and the flow re-runs that file alone.
    """
    pmap = path_map(settings)
    local = pmap.settings_on_node(settings)  # the output dir as this node mounts it
    node = node_placement("inspect")

    def one(path: str, clip_id: str) -> InspectOutcome:
        outcome = inspect_one(pmap.to_node(path), clip_id, local, steps)
        if outcome.sample is not None:
            outcome.sample.thumbnails = pmap.paths_to_driver(outcome.sample.thumbnails)
        outcome.node = node
        return outcome

    if len(items) == 1:
        return [one(items[0][0], items[0][1])]
    out = []
    for path, clip_id in items:
        try:
            out.append(one(path, clip_id))
        except TransientError as exc:
            out.append(InspectOutcome(None, None, transient=str(exc), node=node))
    return out


@dataclass
class ProxyOutcome:
    proxy: ProxyInfo | None
    error: str | None
    node: StagePlacement | None = None


class ProgressBoard:
    """Tiny actor workers report encode progress to; the flow polls it for the display."""

    def __init__(self) -> None:
        self.fractions: dict[str, float] = {}

    def report(self, key: str, fraction: float) -> None:
        self.fractions[key] = fraction

    def done(self, key: str) -> None:
        self.fractions.pop(key, None)

    def snapshot(self) -> dict[str, float]:
        return dict(self.fractions)


@task(name="proxy", cache_policy=NO_CACHE, retry_condition_fn=_retry_transient)
def proxy_file(path: str, clip_id: str, source: Any, settings: Settings, threads: int,
               board_name: str | None) -> ProxyOutcome:
    """Encode (or reuse) the clip's proxy with the best encoder this node has."""
    from rayflow.media.encoders import detect_encoders
    from rayflow.stages.proxy import make_proxy

    board = None
    if board_name:
        try:
            board = ray.get_actor(board_name)
        except ValueError:
            board = None
    last = [0.0]

    def on_progress(fraction: float) -> None:
        now = time.monotonic()
        if board is not None and (now - last[0] > 0.5 or fraction >= 1.0):
            last[0] = now
            board.report.remote(path, fraction)

    plan = detect_encoders(settings.proxy.encoders, timeout_s=60)
    pmap = path_map(settings)
    node = node_placement("proxy")
    try:
        info = make_proxy(Path(pmap.to_node(path)), out_dir=pmap.settings_on_node(settings).clip_dir(clip_id),
                          source=source, settings=settings.proxy, plan=plan, threads=threads,
                          timeout_s=settings.timeouts.proxy_s, on_progress=on_progress)
    except ToolTimeout as exc:
        raise TransientError(str(exc)) from exc
    except (ToolError, OSError, ValueError) as exc:
        return ProxyOutcome(None, _describe(exc), node)
    finally:
        if board is not None:
            board.done.remote(path)
    return ProxyOutcome(pmap.paths_to_driver(info), None, node)


def warm_worker() -> float:
    """Import what tasks need (prefect, stages, decord) in a Ray worker; seconds taken."""
    started = time.perf_counter()
    import prefect.task_engine  # noqa: F401

    import rayflow.media.encoders  # noqa: F401
    import rayflow.stages.exposure  # noqa: F401
    import rayflow.stages.frames  # noqa: F401
    import rayflow.stages.probe  # noqa: F401
    import rayflow.stages.thumbnails  # noqa: F401

    return time.perf_counter() - started


# ---------------------------------------------------------------- record assembly


def build_record(
    *,
    fp: Fingerprint,
    probed: ProbeOutcome | None,
    sampled: SampleOutcome | None,
    errors: dict[str, str],
    run_id: str,
    fingerprint_s: float,
) -> ClipRecord:
    """Assemble the record from stage outcomes; failed stages leave their part None."""
    errors = dict(errors)
    timings = [StageTiming(stage="fingerprint", seconds=round(fingerprint_s, 4))]
    record = ClipRecord(clip_id=fp.clip_id, file=fp.file, run_id=run_id,
                        ingested_at=datetime.now(UTC), rayflow_version=__version__)
    if probed is not None:
        timings.append(StageTiming(stage="probe", seconds=round(probed.seconds, 4)))
        if probed.error:
            errors["probe"] = probed.error
        elif probed.result is not None:
            r = probed.result
            record.kind = r.kind
            record.container = r.container
            record.video = r.video
            record.audio_tracks = list(r.audio_tracks)
            record.subtitle_tracks = list(r.subtitle_tracks)
            record.camera = r.camera
            record.capture = r.capture
            record.tools = dict(r.tools)
            if r.kind != "video":
                errors["probe"] = _not_video_message(r)
    if sampled is not None:
        record.sample = sampled.sample
        record.thumbnails = sampled.thumbnails
        record.exposure = sampled.exposure
        errors.update(sampled.errors)
        timings += [StageTiming(stage=k, seconds=round(v, 4)) for k, v in sampled.timings.items()]
    record.errors = errors
    record.timings = timings
    required_failed = "probe" in errors or "sample" in errors or record.kind != "video"
    record.status = "failed" if (probed is not None and required_failed) else "ingested"
    return record


def _not_video_message(result: Any) -> str:
    container = result.container.format if result.container else None
    match result.kind:
        case "audio":
            codecs = ", ".join(t.codec or "?" for t in result.audio_tracks) or "?"
            return f"not a video: audio only ({codecs}; {len(result.audio_tracks)} track(s))"
        case "image":
            return f"not a video: still image ({container or 'image'})"
        case _:
            return f"not a video: no decodable video stream (container {container or 'unknown'})"


# ---------------------------------------------------------------- the flow

# Process-local handles for the flow body; flow parameters must stay plain data
# (Prefect serialises them into every task's context).
@dataclass
class RunHandles:
    """What the flow body needs beyond plain parameters: live objects of this process."""

    writer: Any
    progress: Progress | None = None
    encode: Any = None
    """rayflow.engine.resources.EncodeResources, or None to skip scheduling hints."""
    analyzers: Any = None
    """rayflow.engine.pools.AnalyzerPool, or None when the analyze step is off."""
    embedder: Any = None
    """EmbedderActor handle, or None when the embed step is off."""
    encoder_note: str | None = None


_HANDLES: RunHandles | None = None


@dataclass
class _InFlight:
    path: str
    fp: Fingerprint
    fingerprint_s: float
    started: float
    future: Any
    position: int = 0
    """Index of this file in its inspect batch's result list."""
    alone: bool = True


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


_CRASHED = "worker crashed or was lost"


def _future_value(future: Any) -> tuple[Any, str | None]:
    """(result, None) or (None, error text) for a finished Prefect future."""
    try:
        return future.result(raise_on_failure=True), None
    except Exception as exc:
        if isinstance(exc, ray.exceptions.WorkerCrashedError | ray.exceptions.NodeDiedError):
            return None, f"{_CRASHED} (native crash in a tool or library, or killed): {_describe(exc)}"
        return None, _describe(exc)


@flow(name="ingest", validate_parameters=False, log_prints=False, persist_result=False)
def ingest_flow(paths: list[str], run_id: str, settings: Settings) -> RunSummary:
    """Discover, fingerprint, de-duplicate, inspect, analyse, proxy, embed and store every file."""
    # The flow object is serialised into every task's context and its function is
    # pickled by value: keep the body in a plain module function (pickled by name).
    return _ingest_body(paths, run_id, settings)


def _ingest_body(paths: list[str], run_id: str, settings: Settings) -> RunSummary:
    handles = _HANDLES
    assert handles is not None, "run_ingest_flow() sets the run handles"
    progress = handles.progress or Progress()
    writer = handles.writer
    summary = RunSummary(
        run_id=run_id, started_at=datetime.now(UTC), home=str(settings.home),
        output=str(settings.output_dir), records_dir=str(settings.records_dir),
        catalog=settings.qdrant_url or str(settings.catalog_dir),
    )
    try:
        summary.flow_run_id = str(get_run_context().flow_run.id)  # type: ignore[union-attr]
    except Exception:  # context shape differs across Prefect versions; id is informational
        summary.flow_run_id = None
    plan = plan_steps(skip=settings.skip, only=settings.only)
    steps = plan.enabled
    found = discover([Path(p) for p in paths], extensions=settings.extensions,
                     limit=settings.limit)
    results: dict[str, FileResult] = {}
    order: list[str] = [str(p) for p in found.files]
    for missing in found.missing:
        key = str(missing)
        order.append(key)
        results[key] = FileResult(path=key, status="failed",
                                  errors={"discover": f"path does not exist: {missing}"})
    progress.set_total(len(order))
    for key in results:
        progress.file_finished(key, "failed")

    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    # Per-file CPU tasks spread over the nodes of a cluster (no-op on one node).
    spread = spread_options(sum(1 for n in ray.nodes() if n.get("Alive")))
    in_flight_cap = settings.concurrency or 8 * cpus
    chunk = max(1, min(16, len(found.files) // (2 * cpus) or 1))
    pending_fp: list[Any] = []  # fingerprint batches in path order
    fp_batches: dict[Any, list[str]] = {}
    with remote_options(num_cpus=1, max_retries=settings.retries, **spread):
        for batch in _chunks([str(p) for p in found.files], chunk):
            future = fingerprint_batch.with_options(retries=settings.retries).submit(batch, settings.shared_prefix)
            pending_fp.append(future)
            fp_batches[future.wrapped_future] = batch
            progress.stage_started("fingerprint", len(batch))

    seen_checksums: dict[str, str] = {}
    queue: list[tuple[FingerprintOutcome, bool]] = []  # (file, must run alone)
    in_flight: dict[Any, list[_InFlight]] = {}
    write_refs: list[tuple[Any, list[ClipRecord]]] = []
    inspect_task = inspect_files.with_options(retries=settings.retries)
    batch_bytes = 48 * 1024 * 1024  # small files share an inspect task up to this much data
    proxy_task = proxy_file.with_options(retries=settings.retries)
    proxy_pending: dict[Any, tuple[_InFlight, ClipRecord, Any]] = {}
    proxy_options: dict[Any, dict[str, Any]] = {}  # Ray options each proxy task asked for
    encoders_used: dict[str, int] = {}
    board = None
    board_name: str | None = None
    if "proxy" in steps:
        board_name = f"rayflow-progress-{run_id}"
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        # On the driver's node: a lost worker node must not take the progress board with it.
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
        board = ray.remote(ProgressBoard).options(name=board_name, num_cpus=0, scheduling_strategy=here).remote()
    last_poll = [0.0]

    def poll_board() -> None:
        now = time.monotonic()
        if board is None or now - last_poll[0] < 0.5:
            return
        last_poll[0] = now
        try:
            progress.set_encodes(ray.get(board.snapshot.remote(), timeout=5))
        except ray.exceptions.RayError:
            log.debug("progress board unavailable", exc_info=True)

    def finish(path: str, result: FileResult) -> None:
        results[path] = result
        progress.file_finished(path, result.status)

    def settle_write(ref: Any, records: list[ClipRecord]) -> None:
        try:
            ray.get(ref)
            progress.stage_finished("store", ok=True, n=len(records))
        except Exception as exc:
            progress.stage_finished("store", ok=False, n=len(records))
            for record in records:
                res = results[record.file.path]
                res.status = "failed"
                res.errors["store"] = _describe(exc)

    def reap_writes() -> None:
        """Count writes as they finish, so the display's store counts are true mid-run."""
        if write_refs:
            ready, _ = ray.wait([r for r, _ in write_refs], num_returns=len(write_refs), timeout=0)
            done = set(ready)
            settled = [w for w in write_refs if w[0] in done]
            write_refs[:] = [w for w in write_refs if w[0] not in done]
            for ref, records in settled:
                settle_write(ref, records)

    def write(records: list[ClipRecord]) -> None:
        progress.stage_started("store", len(records))
        write_refs.append((writer.write.remote(records, None), records))

    def launch() -> None:
        # Files in flight include those waiting on analysis/proxy/embed, so decoded frames
        # in the object store stay bounded by --concurrency, whatever the batch size.
        while queue and (room := in_flight_cap - len(in_flight_files()) - len(joined) - len(to_embed)) > 0:
            if "probe" not in steps:
                (outcome,) = queue.pop(0)
                fp = outcome.fingerprint
                assert fp is not None
                progress.file_started(outcome.path)
                record = build_record(fp=fp, probed=None, sampled=None, errors={},
                                      run_id=run_id, fingerprint_s=outcome.seconds)
                write([record])
                finish(outcome.path, FileResult(path=outcome.path, clip_id=fp.clip_id,
                                                status="ingested"))
                continue
            # Small files share a task while there is enough queued to keep every CPU busy.
            backlog = len(queue) + sum(len(fp_batches[f.wrapped_future]) for f in pending_fp)
            most = min(4, max(1, room // (2 * cpus)), max(1, backlog // (2 * cpus)))
            batch = [queue.pop(0)]
            size = batch[0][0].fingerprint.file.size_bytes  # type: ignore[union-attr]
            while len(batch) < most and queue and not batch[0][1] and not queue[0][1] and (
                    size + queue[0][0].fingerprint.file.size_bytes < batch_bytes):  # type: ignore[union-attr]
                size += queue[0][0].fingerprint.file.size_bytes  # type: ignore[union-attr]
                batch.append(queue.pop(0))
            # One Ray-level retry of a crashed worker: a decoder that segfaults twice on
            # the same file is hostile input, not bad luck. Prefect retries transient errors.
            with remote_options(num_cpus=1, max_retries=1, **spread):
                future = inspect_task.submit(
                    [(o.path, o.fingerprint.clip_id) for o, _ in batch], settings, steps)  # type: ignore[union-attr]
            progress.stage_started("inspect", len(batch))
            items = []
            for position, (outcome, _) in enumerate(batch):
                progress.file_started(outcome.path)
                assert outcome.fingerprint is not None
                items.append(_InFlight(outcome.path, outcome.fingerprint, outcome.seconds, time.monotonic(),
                                       future, position, alone=len(batch) == 1))
            in_flight[future.wrapped_future] = items

    def in_flight_files() -> list[_InFlight]:
        return [item for items in in_flight.values() for item in items]

    def on_fingerprints(outcomes: list[FingerprintOutcome]) -> None:
        fresh: list[FingerprintOutcome] = []
        for o in outcomes:
            progress.stage_finished("fingerprint", ok=o.error is None)
            if o.fingerprint is None:
                finish(o.path, FileResult(path=o.path, status="failed",
                                          errors={"fingerprint": o.error or "unknown error"},
                                          seconds=o.seconds))
                continue
            checksum = o.fingerprint.file.checksum
            if checksum in seen_checksums:
                finish(o.path, FileResult(path=o.path, clip_id=o.fingerprint.clip_id,
                                          status="duplicate", duplicate_of=seen_checksums[checksum]))
                continue
            seen_checksums[checksum] = o.path
            fresh.append(o)
        if not fresh:
            return
        stored = ray.get(writer.statuses.remote([o.fingerprint.clip_id for o in fresh if o.fingerprint]))
        for o in fresh:
            assert o.fingerprint is not None
            known = stored.get(o.fingerprint.clip_id)
            if known and known["status"] == "ingested" and not settings.force:
                finish(o.path, FileResult(path=o.path, clip_id=o.fingerprint.clip_id,
                                          status="duplicate", duplicate_of=known["path"]))
            else:
                queue.append((o, False))

    # Per-file join: after inspect, the analysis (warm actors) and the proxy (a Prefect
    # task) run side by side; when both are back the record waits for a batched embed,
    # then goes to the writer.
    waiting: dict[str, set[str]] = {}
    joined: dict[str, tuple[_InFlight, ClipRecord]] = {}
    analysis_pending: dict[Any, tuple[str, int, Any]] = {}
    to_embed: list[tuple[_InFlight, ClipRecord]] = []
    embed_pending: dict[Any, list[tuple[_InFlight, ClipRecord]]] = {}
    first_queued = [0.0]

    def on_batch_done(items: list[_InFlight]) -> None:
        outcomes, err = _future_value(items[0].future)
        if err is not None and err.startswith(_CRASHED) and len(items) > 1:
            # The shared worker died (twice: Ray re-ran it once). One file of the batch is
            # likely hostile; run each file alone so only that one fails.
            for item in reversed(items):
                progress.stage_finished("inspect", ok=False)
                queue.insert(0, (FingerprintOutcome(item.path, item.fp, None, item.fingerprint_s), True))
            return
        for item in items:
            inspected = outcomes[item.position] if outcomes is not None else None
            if inspected is not None and inspected.transient and not item.alone:
                # A transient error inside a shared task: run that file again on its own,
                # where Prefect's retries apply to it alone.
                progress.stage_finished("inspect", ok=False)
                queue.insert(0, (FingerprintOutcome(item.path, item.fp, None, item.fingerprint_s), True))
                continue
            on_file_done(item, inspected, err)

    def on_file_done(item: _InFlight, inspected: InspectOutcome | None, err: str | None) -> None:
        errors: dict[str, str] = {}
        probed = sampled = None
        if err is not None or inspected is None:
            errors["probe"] = err or "inspect returned nothing"
        else:
            probed, sampled = inspected.probe, inspected.sample
            if sampled is not None and sampled.skipped:
                sampled = None
        progress.stage_finished("inspect", ok=err is None)
        if probed is not None:
            progress.stage_finished("probe", ok=probed.error is None)
        if sampled is not None:
            for stage in ("sample", "thumbnails", "exposure"):
                if stage in sampled.timings or stage in sampled.errors:
                    progress.stage_finished(stage, ok=stage not in sampled.errors)
        record = build_record(fp=item.fp, probed=probed, sampled=sampled, errors=errors,
                              run_id=run_id, fingerprint_s=item.fingerprint_s)
        if inspected is not None and inspected.node is not None:
            record.placement.append(inspected.node)
        if err is not None:
            record.status = "failed"
        key = item.path
        waiting[key] = set()
        joined[key] = (item, record)
        usable = record.status != "failed" and record.video is not None
        if usable and "analyze" in steps and handles.analyzers is not None and sampled is not None \
                and sampled.frames_ref is not None:
            ref, index = handles.analyzers.submit(item.path, record.clip_id, sampled.frames_ref, record)
            analysis_pending[ref] = (key, index, time.monotonic())
            waiting[key].add("analyze")
            progress.stage_started("analyze")
        if usable and "proxy" in steps:
            submit_proxy(item, record)
        if not waiting[key]:
            ready(key)

    def submit_proxy(item: _InFlight, record: ClipRecord, *, again: bool = False) -> None:
        from rayflow.stages.proxy import ProxySource

        try:
            source = ProxySource.from_record(
                record.video, record.audio_tracks,
                duration_s=record.container.duration_s if record.container else None)
        except (ValueError, TypeError) as exc:
            record.errors["proxy"] = f"cannot plan a proxy: {_describe(exc)}"
            return
        options = handles.encode.task_options() if handles.encode else {"num_cpus": 1}
        threads = handles.encode.threads if handles.encode else 1
        task_settings = handles.encode.settings_for(options, settings) if handles.encode else settings
        with remote_options(**options, **spread, max_retries=1):
            future = proxy_task.submit(item.path, record.clip_id, source, task_settings, threads, board_name)
        proxy_options[future.wrapped_future] = options
        if not again:
            progress.stage_started("proxy")
        proxy_pending[future.wrapped_future] = (item, record, future)
        waiting[item.path].add("proxy")

    def part_done(key: str, part: str) -> None:
        waiting[key].discard(part)
        if not waiting[key]:
            ready(key)

    def ready(key: str) -> None:
        waiting.pop(key, None)
        item, record = joined.pop(key)
        if "embed" in steps and handles.embedder is not None and record.status != "failed":
            if not to_embed:
                first_queued[0] = time.monotonic()
            to_embed.append((item, record))
        else:
            finalize(item, record, None)

    def flush_embeds(force: bool = False) -> None:
        if not to_embed:
            return
        idle = not (in_flight or proxy_pending or analysis_pending or queue or pending_fp)
        due = time.monotonic() - first_queued[0] > 2.0
        if not (force or idle or due or len(to_embed) >= settings.embed.batch_records):
            return
        batch = to_embed[:]
        to_embed.clear()
        progress.stage_started("embed", len(batch))
        embed_pending[handles.embedder.embed.remote([r for _, r in batch])] = batch

    def on_embed_done(ref: Any, batch: list[tuple[_InFlight, ClipRecord]]) -> None:
        try:
            vectors = ray.get(ref)
        except ray.exceptions.RayError as exc:
            for _, record in batch:
                record.errors["embed"] = f"embedder failed: {_describe(exc)}"
            vectors = [None] * len(batch)
        progress.stage_finished("embed", ok=all(v is not None for v in vectors), n=len(batch))
        for (item, record), vec in zip(batch, vectors, strict=True):
            finalize(item, record, vec)

    def on_analysis_done(ref: Any) -> None:
        key, index, _ = analysis_pending.pop(ref)
        handles.analyzers.done(index)
        _, record = joined[key]
        try:
            result = ray.get(ref)
        except ray.exceptions.RayError as exc:
            attempts = settings.analysis.max_attempts
            record.errors["analyze"] = (
                f"analyzer crashed or was lost after {attempts} attempt(s): {_describe(exc)}")
            record.status = "failed"  # the actor was restarted for the next file; this one failed
            result = None
        where = handles.analyzers.where(index) if hasattr(handles.analyzers, "where") else None
        if where is not None:
            record.placement.append(where)
        if result is not None:
            record.analysis = result.analysis
            record.errors.update(result.errors)
            record.timings += [StageTiming(stage=k, seconds=round(v, 4)) for k, v in result.timings.items()]
        progress.stage_finished("analyze", ok=result is not None and not result.errors)
        part_done(key, "analyze")

    def finalize(item: _InFlight, record: ClipRecord, vectors: Any) -> None:
        progress.stage_started("store")
        write_refs.append((writer.write.remote([record], [vectors] if vectors is not None else None),
                           [record]))
        finish(item.path, FileResult(
            path=item.path, clip_id=record.clip_id,
            status="failed" if record.status == "failed" else "ingested",
            errors=record.errors, seconds=round(time.monotonic() - item.started, 3)))

    def on_proxy_done(item: _InFlight, record: ClipRecord, future: Any) -> None:
        outcome, err = _future_value(future)
        if handles.encode is not None:
            handles.encode.done(proxy_options.pop(future.wrapped_future, {}))
        if outcome is not None and outcome.node is not None:
            record.placement.append(outcome.node)
        if outcome is not None and outcome.proxy is not None:
            record.proxy = outcome.proxy
            encoders_used[outcome.proxy.encoder] = encoders_used.get(outcome.proxy.encoder, 0) + 1
            record.timings.append(StageTiming(stage="proxy", seconds=round(outcome.proxy.encode_s or 0, 4)))
        else:
            record.errors["proxy"] = err or (outcome.error if outcome else None) or "proxy failed"
        progress.stage_finished("proxy", ok=record.proxy is not None)
        part_done(item.path, "proxy")

    last_rescue = [time.monotonic()]

    def rescue_stranded() -> None:
        """A proxy asking for a resource no alive node offers any more (its node was lost)
        would pend forever: after ``timeouts.lost_resource_s`` move it to the kind that is
        still offered, or fail it with the reason."""
        now = time.monotonic()
        if handles.encode is None or not proxy_pending or now - last_rescue[0] < 2.0:
            return
        last_rescue[0] = now
        handles.encode.refresh(ray.cluster_resources(), now)
        stranded = handles.encode.stranded(now, settings.timeouts.lost_resource_s)
        if not stranded:
            return
        for ref, (item, record, _future) in list(proxy_pending.items()):
            kinds = set(proxy_options.get(ref, {}).get("resources", {}))
            if not kinds & stranded:
                continue
            ray.cancel(ref, force=True)
            del proxy_pending[ref]
            handles.encode.done(proxy_options.pop(ref, {}))
            if handles.encode.can_encode():
                log.warning("proxy of %s waited for %s that no alive node offers; re-planned", item.path,
                            ", ".join(sorted(kinds)))
                submit_proxy(item, record, again=True)
            else:
                record.errors["proxy"] = (
                    f"no alive node has offered {', '.join(sorted(kinds))} for "
                    f"{settings.timeouts.lost_resource_s:g} s (its node was lost?)")
                progress.stage_finished("proxy", ok=False)
                part_done(item.path, "proxy")

    pool_plan = getattr(handles.analyzers, "plan", None)
    gpu_watch = GpuWatch(pool_plan.num_gpus if pool_plan is not None else 0.0)
    last_gpu_check = [time.monotonic()]

    def rescue_analysis() -> None:
        """Analyses queued to GPU actors whose GPUs left the cluster (node lost, not replaced)
        would pend forever: after ``timeouts.lost_resource_s`` fail them with the reason."""
        now = time.monotonic()
        if not gpu_watch.need_gpus or not analysis_pending or now - last_gpu_check[0] < 2.0:
            return
        last_gpu_check[0] = now
        gpu_watch.update(ray.cluster_resources(), now)
        if not gpu_watch.stranded(now, settings.timeouts.lost_resource_s):
            return
        for ref, (key, index, _) in list(analysis_pending.items()):
            with contextlib.suppress(Exception):  # already finished or its actor is gone: nothing to stop
                ray.cancel(ref)
            del analysis_pending[ref]
            handles.analyzers.done(index)
            _, record = joined[key]
            record.errors["analyze"] = (
                f"no GPU left in the cluster for {settings.timeouts.lost_resource_s:g} s (the analyzers need "
                f"{gpu_watch.need_gpus:g} GPU each; was their node lost?)")
            record.status = "failed"
            progress.stage_finished("analyze", ok=False)
            part_done(key, "analyze")

    while pending_fp or in_flight or queue or proxy_pending or analysis_pending or to_embed or embed_pending:
        poll_board()
        reap_writes()
        rescue_stranded()
        rescue_analysis()
        launch()
        flush_embeds()
        # Fingerprint batches are consumed in path order, so the first copy of some content
        # in sorted order is the one processed and later copies are its duplicates.
        if pending_fp:
            ready_fp, _ = ray.wait([pending_fp[0].wrapped_future], num_returns=1, timeout=0)
            for ref in ready_fp:
                fut = pending_fp.pop(0)
                outcomes, err = _future_value(fut)
                if err is not None:
                    # The whole batch failed transiently past its retries: report each file.
                    for p in fp_batches[ref]:
                        progress.stage_finished("fingerprint", ok=False)
                        finish(p, FileResult(path=p, status="failed", errors={"fingerprint": err}))
                else:
                    on_fingerprints(outcomes)
            if ready_fp:
                continue
        refs = [*in_flight, *proxy_pending, *analysis_pending, *embed_pending,
                *[f.wrapped_future for f in pending_fp[:1]]]
        if not refs:
            flush_embeds(force=True)
            continue
        done, _ = ray.wait(refs, num_returns=1, timeout=0.5)
        for ref in done:
            if ref in in_flight:
                on_batch_done(in_flight.pop(ref))
            elif ref in proxy_pending:
                on_proxy_done(*proxy_pending.pop(ref))
            elif ref in analysis_pending:
                on_analysis_done(ref)
            elif ref in embed_pending:
                on_embed_done(ref, embed_pending.pop(ref))

    for ref, records in write_refs:
        settle_write(ref, records)
    summary.files = [results[p] for p in order if p in results]
    counts: dict[str, int] = {s: 0 for s in ("ingested", "duplicate", "skipped", "failed")}
    for res in summary.files:
        counts[res.status] += 1
    summary.counts = counts
    summary.finished_at = datetime.now(UTC)
    if encoders_used:
        used = ", ".join(f"{name} x{n}" for name, n in sorted(encoders_used.items()))
        summary.notes.append(f"proxies: {used}" + (f" ({handles.encoder_note})" if handles.encoder_note else ""))
    if board is not None:
        ray.kill(board)
    return summary


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]


def run_ingest_flow(paths: list[str], settings: Settings, handles: RunHandles,
                    run_id: str | None = None) -> RunSummary:
    """Run the flow on the Ray cluster already started by the caller."""
    global _HANDLES
    _HANDLES = handles
    # Flow parameters are stored by the Prefect API (and shipped to every task): never a
    # secret. The catalog writer got the key already; nothing in the flow needs it.
    settings = replace(settings, qdrant_api_key=None)
    try:
        flow_fn = ingest_flow.with_options(task_runner=RayTaskRunner())
        return flow_fn(paths=paths, run_id=run_id or new_run_id(), settings=settings)
    except Exception:
        log.error("ingest flow failed:\n%s", traceback.format_exc())
        raise
    finally:
        _HANDLES = None
