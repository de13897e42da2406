"""The coarse Prefect tasks of the ingest flow, run on Ray by prefect-ray.

Prefect tasks are coarse on purpose (each costs ~0.1 s of orchestration here):
one ``fingerprint`` task per small batch of files, one ``inspect`` task per file
(or per 2-4 small files) running probe -> sample (decode once) -> thumbnails and
exposure, and one ``proxy`` task per file. Inside, the stages run through the one
stage contract (``rayflow.stages.base``): one instance per worker process, set up
once (``warm_stages``), called in-process; the tasks' Ray options come from the
stages' declared ``resources`` (``rayflow.engine.resources.ray_options``). The warm
model actors (analysis, embedding) and the catalog writer are in ``pools`` / ``actors``.

Errors are values: a deterministic failure (a corrupt file) is recorded in the
outcome and never retried; a transient one (a tool timing out or killed under
load, a lost worker) raises ``TransientError`` so Prefect's ``retries`` apply.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Hashable
from pathlib import Path
from typing import Any, TypeVar

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
from rayflow.engine.resources import ray_options
from rayflow.media.tools import KILLED_FROM_OUTSIDE, ToolError, ToolKilled, ToolTimeout, signal_name
from rayflow.record import EditorProxyInfo, StageName
from rayflow.stages.base import FileItem, Stage
from rayflow.stages.fingerprint import Fingerprint, FingerprintError, FingerprintStage
from rayflow.stages.frames import SampleStage
from rayflow.stages.inspect import build_inspect, inspect_resources

S = TypeVar("S", bound=Stage[Any, Any])

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
    stage = warm_stages(("fingerprint",), lambda: [FingerprintStage()])[0]
    out: list[FingerprintOutcome] = []
    for path in paths:
        started = time.perf_counter()
        try:
            fp = stage.process(Path(pmap.to_node(path)))
            if fp.file.path != path:
                fp = Fingerprint(clip_id=fp.clip_id, file=fp.file.model_copy(update={"path": path}))
            out.append(FingerprintOutcome(path, fp, None, time.perf_counter() - started))
        except FingerprintError as exc:
            out.append(FingerprintOutcome(path, None, str(exc), time.perf_counter() - started))
    return out


def inspect_stages(settings: Settings, steps: Collection[str]) -> dict[StageName, Stage[FileItem, Any]]:
    """This worker's per-file stages for ``settings`` and ``steps`` (``rayflow.stages.inspect``),
    built and set up once: a Ray worker runs many inspect tasks, a stage's setup is paid once."""
    stages = warm_stages(("inspect", settings, frozenset(steps)), lambda: build_inspect(settings, steps))
    return {stage.name: stage for stage in stages}


def warm_stages(key: Hashable, build: Callable[[], list[S]]) -> list[S]:
    """The stages ``build`` makes for ``key``, set up once per worker process (on the GPU only
    when they declare one); the last few keys are kept (a long-lived worker serves many runs).
    An unhashable key (odd settings) builds afresh each time."""
    try:
        stages = _WARM.get(key)
    except TypeError:
        key, stages = None, None
    if stages is None:
        stages = build()
        for stage in stages:
            stage.setup("cuda" if stage.resources.gpus > 0 else "cpu")
        if key is not None:
            if len(_WARM) >= WARM_KEYS:
                _WARM.pop(next(iter(_WARM)))
            _WARM[key] = stages
    return stages


_WARM: dict[Hashable, Any] = {}
WARM_KEYS = 8
"""Stage sets a worker keeps set up (one per run's settings and steps, usually one)."""


def run_probe(path: str, settings: Settings, item: FileItem | None = None, *,
              steps: Collection[str] = ("probe",)) -> ProbeOutcome:
    """``ProbeStage`` (of this worker's stages for ``steps``): ffprobe, mediainfo and exiftool once
    each, consolidated, written to ``item.probe``; tool errors are values, a timeout is transient."""
    item = item or FileItem(path, "", settings.output_dir)
    stage = inspect_stages(settings, steps)["probe"]
    started = time.perf_counter()
    try:
        result = stage.process(item)
    except ToolTimeout as exc:
        raise TransientError(str(exc)) from exc
    except (ToolError, OSError) as exc:
        return ProbeOutcome(None, describe(exc), time.perf_counter() - started)
    return ProbeOutcome(result, None, time.perf_counter() - started)


def run_sample(
    path: str, clip_id: str, probed: ProbeOutcome, settings: Settings, steps: frozenset[str],
    item: FileItem | None = None,
) -> SampleOutcome:
    """``SampleStage`` decodes frames once; ``ThumbnailStage`` and ``ExposureStage`` read the same
    frames (a still: its one frame). Each failure is recorded, not raised; a timeout is transient."""
    item = item or FileItem(path, clip_id, settings.clip_dir(clip_id), probe=probed.result)
    skipped = SampleStage.nothing_to_decode(probed.result)
    if skipped:
        return SampleOutcome(skipped=skipped)
    stages = inspect_stages(settings, steps)
    outcome = SampleOutcome()
    started = time.perf_counter()
    try:
        outcome.sample = stages["sample"].process(item)
    except ToolTimeout as exc:
        raise TransientError(str(exc)) from exc
    except Exception as exc:  # decoder errors are per-file values, not crashes of the batch
        outcome.errors["sample"] = describe(exc)
        return outcome
    outcome.timings["sample"] = time.perf_counter() - started
    assert item.frames is not None
    if item.frames.note:  # the preferred decoder crashed on this file; another one decoded it
        outcome.errors["decoder"] = item.frames.note
    for name in ("thumbnails", "exposure"):
        if name in stages:
            _run_frame_stage(stages[name], item, outcome)
    outcome.thumbnails, outcome.exposure = item.thumbnails, item.exposure
    outcome.frames_ref = ray.put(item.frames)
    return outcome


def _run_frame_stage(stage: Stage[FileItem, Any], item: FileItem, outcome: SampleOutcome) -> None:
    """One stage on the decoded frames; its failure is recorded under its name, not raised."""
    started = time.perf_counter()
    try:
        stage.process(item)
    except Exception as exc:
        outcome.errors[stage.name] = describe(exc)
    outcome.timings[stage.name] = time.perf_counter() - started


def inspect_one(path: str, clip_id: str, settings: Settings, steps: frozenset[str]) -> InspectOutcome:
    """The per-file stages on one file, through one ``FileItem``: probe -> sample -> thumbnails, exposure."""
    if "probe" not in steps:
        return InspectOutcome(None, None)
    item = FileItem(path, clip_id, settings.clip_dir(clip_id))
    probed = run_probe(path, settings, item, steps=steps)
    sampled = run_sample(path, clip_id, probed, settings, steps, item) if "sample" in steps else None
    return InspectOutcome(probed, sampled)


@ray.remote(max_retries=2)
def decode_again(path: str, settings: Settings) -> Any:
    """Probe and decode a file's frames again, returned *by value*: the result object is
    owned by the caller (the driver), not by this worker. Ray options: ``REDECODE_OPTIONS``.

    For a file whose frames were lost with the inspect worker that ``ray.put`` them (that
    worker owned the object; killed, it takes the frames with it). A killed decode is
    retried by Ray; a file that cannot be decoded again raises, and the analysis call
    waiting on these frames fails with that error."""
    node_path = path_map(settings).to_node(path)
    item = FileItem(node_path, "", settings.output_dir)
    probed = run_probe(node_path, settings, item, steps=REDECODE_STEPS)
    reason = SampleStage.nothing_to_decode(probed.result)
    if reason:
        raise RuntimeError(f"cannot decode the frames again: {probed.error or reason}")
    inspect_stages(settings, REDECODE_STEPS)["sample"].process(item)
    return item.frames


REDECODE_STEPS = frozenset({"probe", "sample", "analyze"})
"""The steps a re-decode serves: frames for the analysis (with the shot strip when shots run)."""
REDECODE_OPTIONS = ray_options(inspect_resources(("probe", "sample")))
"""Ray options of ``decode_again``: what the probe and sample stages declare."""


@task(name="inspect", cache_policy=NO_CACHE, retry_condition_fn=retry_transient)
def inspect_files(items: list[tuple[str, str]], settings: Settings, steps: frozenset[str]) -> list[InspectOutcome]:
    """Inspect one file, or a few small ones: ONE Prefect task for the lot.

    Each Prefect task costs ~0.1 s of orchestration (and ~0.3 s of CPU across the
    worker, driver and server) on a small box, so small files share a task and the
    stages run in-process inside it (this worker's stage objects, set up once).
    Idempotent: a retry redoes them all. A
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
    from rayflow.stages.proxy import ProxyItem, ProxyStage

    reporter = _BoardReporter(board_name, path)
    stage = warm_stages(("proxy", settings.proxy, threads, settings.timeouts.proxy_s),
                        lambda: [ProxyStage(settings.proxy, threads, settings.timeouts.proxy_s)])[0]
    pmap = path_map(settings)
    node = node_placement("proxy")
    try:
        info = stage.process(ProxyItem(Path(pmap.to_node(path)), pmap.settings_on_node(settings).clip_dir(clip_id),
                                       source, on_progress=reporter))
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
    if settings.proxy.layout != "editor":
        return ProxyOutcome(pmap.paths_to_driver(info), None, node)
    editor, error = editor_proxy_for(Path(pmap.to_node(path)), settings, threads)
    return ProxyOutcome(pmap.paths_to_driver(info.model_copy(update={"editor": editor})), error, node)


def editor_proxy_for(path: Path, settings: Settings, threads: int) -> tuple[EditorProxyInfo | None, str | None]:
    """``[proxy] layout = "editor"``: ``Proxy/<same name>.mov`` beside ``path`` (stages/editor_proxy.py,
    the code ``rayflow proxies`` runs); (what was written, None) or (None, why not)."""
    from rayflow.stages.editor_proxy import make_editor_proxy

    try:
        made = make_editor_proxy(path, codec=settings.proxy.editor_codec, max_side=settings.proxy.editor_max_side,
                                 threads=threads, timeout_s=settings.timeouts.proxy_s, force=settings.force)
    except ToolTimeout as exc:
        raise TransientError(str(exc)) from exc
    except (ToolError, OSError, ValueError) as exc:
        return None, f"editor proxy: {describe(exc)}"
    return EditorProxyInfo(path=str(made.path), codec=made.codec, width=made.width, height=made.height,
                           frame_rate=made.frame_rate, timecode=made.timecode,
                           audio_channels=list(made.audio_channels), reused=made.reused), None
