"""The coarse Prefect tasks of the ingest flow, run on Ray by prefect-ray.

Prefect tasks are coarse on purpose (each costs ~0.1 s of orchestration here):
one ``fingerprint`` task per small batch of files, one ``inspect`` task per file
(or per 2-4 small files) running probe -> sample (decode once) -> thumbnails and
exposure as plain functions, and one ``proxy`` task per file. The warm model
actors (analysis, embedding) and the catalog writer are in ``pools`` / ``actors``.

Errors are values: a deterministic failure (a corrupt file) is recorded in the
outcome and never retried; a transient one (a tool timing out or killed under
load, a lost worker) raises ``TransientError`` so Prefect's ``retries`` apply.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import ray
from prefect import task
from prefect.cache_policies import NO_CACHE

from rayflow.config import Settings
from rayflow.engine.outcomes import (
    FingerprintOutcome,
    InspectOutcome,
    ProbeOutcome,
    ProxyOutcome,
    SampleOutcome,
    TransientError,
    describe,
)
from rayflow.engine.placement import node_placement, path_map
from rayflow.media.tools import KILLED_FROM_OUTSIDE, ToolError, ToolKilled, ToolTimeout, signal_name
from rayflow.stages.fingerprint import Fingerprint, FingerprintError, fingerprint

CRASHED = "worker crashed or was lost"
"""How a task whose Ray worker died is reported (the start of its error text)."""


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry timeouts and lost workers, nothing else."""
    exc = state.result(raise_on_failure=False)
    return isinstance(exc, TransientError | TimeoutError | ray.exceptions.RayError)


def future_value(future: Any) -> tuple[Any, str | None]:
    """(result, None) or (None, error text) for a finished Prefect future."""
    try:
        return future.result(raise_on_failure=True), None
    except Exception as exc:
        if isinstance(exc, ray.exceptions.WorkerCrashedError | ray.exceptions.NodeDiedError):
            return None, f"{CRASHED} (native crash in a tool or library, or killed): {describe(exc)}"
        return None, describe(exc)


def killed_from_outside(exc: ToolError) -> bool:
    """A tool error that says the tool was stopped by a signal from outside (SIGKILL, SIGTERM:
    the OOM killer, an operator), not that it failed on its input: transient.

    ``run_tool`` raises ``ToolKilled`` for these; the proxy encoder's own runner reports them
    as ``crashed (signal 9 SIGKILL)``, read here."""
    if isinstance(exc, ToolKilled):
        return True
    text = str(exc)
    return any(f"(signal {int(sig)} {signal_name(int(sig))})" in text for sig in KILLED_FROM_OUTSIDE)


@task(name="fingerprint", cache_policy=NO_CACHE, retry_condition_fn=retry_transient)
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
        return ProbeOutcome(None, describe(exc), time.perf_counter() - started)
    return ProbeOutcome(result, None, time.perf_counter() - started)


def wants_strip(settings: Settings, steps: frozenset[str]) -> bool:
    """Decode every frame small for the shot detector in the same pass only when shots will run;
    else the sampled frames alone (decord seeks to them: cheaper on long clips)."""
    return "analyze" in steps and settings.analysis.shots


def run_sample(
    path: str, clip_id: str, probed: ProbeOutcome, settings: Settings, steps: frozenset[str]
) -> SampleOutcome:
    """Decode frames once; thumbnails and exposure from the same frames (a still: its one frame)."""
    from rayflow.stages.frames import sample_frames

    result = probed.result
    if result is None:
        return SampleOutcome(skipped="probe failed")
    if result.kind not in ("video", "image") or result.video is None:
        return SampleOutcome(skipped=f"no picture to decode ({result.kind})")
    outcome = SampleOutcome()
    started = time.perf_counter()
    try:
        frames, info = sample_frames(
            Path(path), rotation=result.video.rotation, settings=settings.sample,
            timeout_s=settings.timeouts.decode_s, still=result.kind == "image", strip=wants_strip(settings, steps),
        )
    except ToolTimeout as exc:
        raise TransientError(str(exc)) from exc
    except Exception as exc:  # decoder errors are per-file values, not crashes of the batch
        outcome.errors["sample"] = describe(exc)
        return outcome
    outcome.sample = info
    outcome.timings["sample"] = time.perf_counter() - started
    if frames.note:  # the preferred decoder crashed on this file; another one decoded it
        outcome.errors["decoder"] = frames.note
    _frame_stages(frames, clip_id, settings, steps, outcome)
    outcome.frames_ref = ray.put(frames)
    return outcome


def _frame_stages(frames: Any, clip_id: str, settings: Settings, steps: frozenset[str],
                  outcome: SampleOutcome) -> None:
    """Thumbnails and exposure from the decoded frames; each failure is recorded, not raised."""
    from rayflow.stages.exposure import measure_exposure
    from rayflow.stages.thumbnails import write_thumbnails

    if "thumbnails" in steps:
        started = time.perf_counter()
        try:
            outcome.thumbnails = write_thumbnails(frames, settings.clip_dir(clip_id), settings.thumbnails)
        except Exception as exc:
            outcome.errors["thumbnails"] = describe(exc)
        outcome.timings["thumbnails"] = time.perf_counter() - started
    if "exposure" in steps:
        started = time.perf_counter()
        try:
            outcome.exposure = measure_exposure(frames)
        except Exception as exc:
            outcome.errors["exposure"] = describe(exc)
        outcome.timings["exposure"] = time.perf_counter() - started


def inspect_one(path: str, clip_id: str, settings: Settings, steps: frozenset[str]) -> InspectOutcome:
    """probe -> sample -> thumbnails, exposure for one file, as plain functions."""
    if "probe" not in steps:
        return InspectOutcome(None, None)
    probed = run_probe(path, settings)
    sampled = run_sample(path, clip_id, probed, settings, steps) if "sample" in steps else None
    return InspectOutcome(probed, sampled)


@ray.remote(num_cpus=1, max_retries=2)
def decode_again(path: str, settings: Settings) -> Any:
    """Probe and decode a file's frames again, returned *by value*: the result object is
    owned by the caller (the driver), not by this worker.

    For a file whose frames were lost with the inspect worker that ``ray.put`` them (that
    worker owned the object; killed, it takes the frames with it). A killed decode is
    retried by Ray; a file that cannot be decoded again raises, and the analysis call
    waiting on these frames fails with that error."""
    from rayflow.stages.frames import sample_frames

    node_path = path_map(settings).to_node(path)
    probed = run_probe(node_path, settings)
    result = probed.result
    if result is None or result.video is None:
        raise RuntimeError(f"cannot decode the frames again: {probed.error or 'no picture found'}")
    frames, _ = sample_frames(Path(node_path), rotation=result.video.rotation, settings=settings.sample,
                              timeout_s=settings.timeouts.decode_s, still=result.kind == "image",
                              strip=settings.analysis.shots)
    return frames


@task(name="inspect", cache_policy=NO_CACHE, retry_condition_fn=retry_transient)
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


class _BoardReporter:
    """Sends encode progress to the run's ProgressBoard actor, at most twice a second."""

    def __init__(self, board_name: str | None, key: str) -> None:
        self.key = key
        self.board = None
        self.last = 0.0
        if board_name:
            try:
                self.board = ray.get_actor(board_name)
            except ValueError:
                self.board = None

    def __call__(self, fraction: float) -> None:
        now = time.monotonic()
        if self.board is not None and (now - self.last > 0.5 or fraction >= 1.0):
            self.last = now
            self.board.report.remote(self.key, fraction)

    def close(self) -> None:
        if self.board is not None:
            self.board.done.remote(self.key)


@task(name="proxy", cache_policy=NO_CACHE, retry_condition_fn=retry_transient)
def proxy_file(path: str, clip_id: str, source: Any, settings: Settings, threads: int,
               board_name: str | None) -> ProxyOutcome:
    """Encode (or reuse) the clip's proxy with the best encoder this node has.

    A tool that timed out or was killed from outside (``ToolKilled``) raises
    ``TransientError``: Prefect retries the encode instead of recording a failure."""
    from rayflow.media.encoders import detect_encoders
    from rayflow.stages.proxy import make_proxy

    reporter = _BoardReporter(board_name, path)
    plan = detect_encoders(settings.proxy.encoders, timeout_s=60)
    pmap = path_map(settings)
    node = node_placement("proxy")
    try:
        info = make_proxy(Path(pmap.to_node(path)), out_dir=pmap.settings_on_node(settings).clip_dir(clip_id),
                          source=source, settings=settings.proxy, plan=plan, threads=threads,
                          timeout_s=settings.timeouts.proxy_s, on_progress=reporter)
    except ToolTimeout as exc:  # ToolKilled is one
        raise TransientError(str(exc)) from exc
    except ToolError as exc:
        if killed_from_outside(exc):
            raise TransientError(str(exc)) from exc
        return ProxyOutcome(None, describe(exc), node)
    except (OSError, ValueError) as exc:
        return ProxyOutcome(None, describe(exc), node)
    finally:
        reporter.close()
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
