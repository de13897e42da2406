"""The ingest scheduler: what the ``ingest`` flow does, as an object with named steps.

One ``Scheduler`` per run. ``run()`` reads top-down: discover the files, submit the
fingerprint batches, then loop until nothing is pending, each turn polling the
encode progress board, rescuing work stranded on lost resources, launching
inspect tasks, flushing embed batches and handling whatever finished. Per file:

    fingerprint (batched) -> de-duplicate -> inspect (probe, sample, thumbnails,
    exposure) -> analysis (warm actors) and proxy (a task) side by side -> embed
    (batched across files) -> the catalog writer, last.

All state is explicit and typed on the object; the analyses and proxies in flight
are kept by ``AnalysisQueue`` and ``ProxyQueue`` (with their crash and lost-resource
handling); records are assembled by the pure ``assemble`` module. Only live handles
(actors, progress) come from ``RunHandles``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ray
from prefect_ray.context import remote_options

from rayflow.config import Settings
from rayflow.engine.analysis_queue import AnalysisDone, AnalysisQueue, crash_reason
from rayflow.engine.assemble import (
    apply_analysis,
    build_record,
    count_statuses,
    file_result,
)
from rayflow.engine.outcomes import FingerprintOutcome, InspectOutcome, describe, ray_ref
from rayflow.engine.placement import spread_options
from rayflow.engine.progress import Progress
from rayflow.engine.proxy_queue import ProxyQueue
from rayflow.engine.resources import ray_options
from rayflow.engine.tasks import CRASHED, fingerprint_batch, future_value, inspect_files
from rayflow.record import ClipRecord, FileResult, RunSummary, StageName
from rayflow.stages.discover import discover
from rayflow.stages.fingerprint import Fingerprint, FingerprintStage
from rayflow.stages.inspect import inspect_resources
from rayflow.stages.steps import plan_steps

log = logging.getLogger(__name__)

BATCH_BYTES = 48 * 1024 * 1024
"""Small files share an inspect task up to this much data."""
FINGERPRINT_RESUBMITS = 3
"""A fingerprint task whose worker died past Ray's retries is sent again this often per file."""
EMBED_WAIT_S = 2.0
"""A record waits at most this long for others to fill its embed batch."""


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
    catalog_ready: Callable[[], Exception | None] | None = None
    """Asked before the run's first look at the catalog (the session starts the writer
    meanwhile): the problem (the catalog could not be opened, or was built with another text
    model), or None. On a problem the run stops at once; the session raises it after the flow."""


@dataclass
class FileInFlight:
    """A file between its inspect task and its record being written."""

    path: str
    fp: Fingerprint
    fingerprint_s: float
    started: float
    future: Any
    position: int = 0
    """Index of this file in its inspect batch's result list."""
    alone: bool = True


@dataclass
class Joined:
    """A file whose record is built, waiting for its analysis and proxy parts."""

    item: FileInFlight
    record: ClipRecord
    waiting: set[str] = field(default_factory=set)
    embed_crashes: int = 0
    """Times the embedder died while embedding this record alone."""


def analysable(record: ClipRecord, frames_ref: Any) -> bool:
    """Whether a file goes to the analyzers: a video or still with its decoded frames, or an
    audio file (no frames: its speech is analysed from the file)."""
    if record.status == "failed":
        return False
    match record.kind:
        case "video" | "image":
            return record.video is not None and frames_ref is not None
        case "audio":
            return bool(record.audio_tracks)
        case _:
            return False


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class Scheduler:
    """Runs one ingest over ``paths``; ``run()`` returns the summary."""

    def __init__(self, paths: list[str], run_id: str, settings: Settings, handles: RunHandles,
                 flow_run_id: str | None = None) -> None:
        self.paths, self.run_id, self.settings, self.handles = paths, run_id, settings, handles
        self.progress = handles.progress or Progress()
        self.steps = plan_steps(skip=settings.skip, only=settings.only).enabled
        self.summary = RunSummary(
            run_id=run_id, started_at=datetime.now(UTC), home=str(settings.home),
            output=str(settings.output_dir), records_dir=str(settings.records_dir),
            catalog=settings.qdrant_url or str(settings.catalog_dir), flow_run_id=flow_run_id,
        )
        self.results: dict[str, FileResult] = {}
        self.order: list[str] = []
        self.files: list[str] = []
        self.cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        # Per-file CPU tasks spread over the nodes of a cluster (no-op on one node).
        self.spread = spread_options(sum(1 for n in ray.nodes() if n.get("Alive")))
        self.in_flight_cap = settings.concurrency or 8 * self.cpus
        # fingerprint batches, consumed in path order
        self.pending_fp: list[Any] = []
        self.fp_batches: dict[Any, list[str]] = {}
        self.fp_crashes: dict[str, int] = {}
        """Times a file's fingerprint task lost its worker (resubmitted up to FINGERPRINT_RESUBMITS)."""
        self.seen_checksums: dict[str, str] = {}
        self.queue: list[tuple[FingerprintOutcome, bool]] = []  # (file, must run alone)
        self.inspecting: dict[Any, list[FileInFlight]] = {}
        self.joined: dict[str, Joined] = {}
        self.proxies = ProxyQueue(settings, encode=handles.encode, encoder_note=handles.encoder_note,
                                  spread=self.spread, progress=self.progress)
        self.to_embed: list[Joined] = []
        self.first_queued = 0.0
        self.embeds: dict[Any, list[Joined]] = {}
        self.write_refs: list[tuple[Any, list[ClipRecord], list[Any] | None]] = []
        self.inspect_task = inspect_files.with_options(retries=settings.retries)
        # Ray options from what the stages declare: the fingerprint stage, and the per-file
        # stages one inspect task runs in turn (rayflow.stages.inspect).
        self.fingerprint_options = ray_options(FingerprintStage.resources)
        self.inspect_options = ray_options(inspect_resources(self.steps))
        self.analysis = AnalysisQueue(handles.analyzers, settings, self.progress) \
            if "analyze" in self.steps and handles.analyzers is not None else None

    # ------------------------------------------------------------ the run, top-down

    def run(self) -> RunSummary:
        self.discover()
        self.submit_fingerprints()
        if "proxy" in self.steps:
            self.proxies.start_board(self.run_id)
        while self.busy():
            self.tick()
        self.drain_writes()
        return self.final_summary()

    def busy(self) -> bool:
        return bool(self.pending_fp or self.inspecting or self.queue or self.proxies.busy() or self.to_embed
                    or self.embeds or (self.analysis is not None and self.analysis.busy()))

    def tick(self) -> None:
        """One turn of the loop: housekeeping, then wait up to 0.5 s for something to finish."""
        self.proxies.poll_board()
        self.reap_writes()
        for key in self.proxies.watch():
            self.part_done(key, "proxy")
        if self.analysis is not None:
            for failed in self.analysis.watch():
                self.on_analysis_done(failed)
        self.launch()
        self.flush_embeds()
        if self.take_fingerprints():
            return
        refs = [*self.inspecting, *self.proxies.refs(), *self.embeds,
                *(self.analysis.refs() if self.analysis is not None else []),
                *[ray_ref(f) for f in self.pending_fp[:1]]]
        if not refs:
            if self.analysis is None or not self.analysis.busy():
                self.flush_embeds(force=True)
            else:
                time.sleep(0.2)  # analyses wait for a restarting actor
            return
        ready, _ = ray.wait(refs, num_returns=1, timeout=0.5)
        for ref in ready:
            if ref in self.inspecting:
                self.on_inspected(self.inspecting.pop(ref))
            elif self.proxies.owns(ref):
                self.part_done(self.proxies.collect(ref), "proxy")
            elif ref in self.embeds:
                self.on_embed_done(ref, self.embeds.pop(ref))
            elif self.analysis is not None and self.analysis.owns(ref):
                finished = self.analysis.collect(ref)
                if finished is not None:
                    self.on_analysis_done(finished)

    # ------------------------------------------------------------ discovery, fingerprints

    def discover(self) -> None:
        found = discover([Path(p) for p in self.paths], extensions=self.settings.extensions,
                         limit=self.settings.limit)
        self.files = [str(p) for p in found.files]
        self.order = list(self.files)
        for missing in found.missing:
            key = str(missing)
            self.order.append(key)
            self.results[key] = FileResult(path=key, status="failed",
                                           errors={"discover": f"path does not exist: {missing}"})
        # Found in a folder but not catalogued (sidecars, unknown types): listed, never silent.
        for path, reason in found.passed_over:
            key = str(path)
            self.order.append(key)
            self.results[key] = FileResult(path=key, status="skipped", errors={"discover": reason})
        if found.hidden:
            self.summary.notes.append(f"discover: passed over {found.hidden} hidden or system entr"
                                      f"{'y' if found.hidden == 1 else 'ies'} (dot-files, Thumbs.db, __MACOSX...)")
        self.progress.set_total(len(self.order))
        for key, res in self.results.items():
            self.progress.file_finished(key, res.status)

    def submit_fingerprints(self) -> None:
        chunk = max(1, min(16, len(self.files) // (2 * self.cpus) or 1))
        self.pending_fp = [self.submit_fingerprint_batch(batch) for batch in _chunks(self.files, chunk)]

    def submit_fingerprint_batch(self, batch: list[str]) -> Any:
        task = fingerprint_batch.with_options(retries=self.settings.retries)
        with remote_options(**self.fingerprint_options, max_retries=self.settings.retries, **self.spread):
            future = task.submit(batch, self.settings.shared_prefix)
        self.fp_batches[ray_ref(future)] = batch
        self.progress.stage_started("fingerprint", len(batch))
        return future

    def take_fingerprints(self) -> bool:
        """Consume the oldest fingerprint batch if it is done; True when one was.

        Batches are consumed in path order, so the first copy of some content in sorted
        order is the one processed and later copies are its duplicates."""
        if not self.pending_fp:
            return False
        ready, _ = ray.wait([ray_ref(self.pending_fp[0])], num_returns=1, timeout=0)
        if not ready:
            return False
        future = self.pending_fp.pop(0)
        outcomes, err = future_value(future)
        if err is None:
            self.on_fingerprints(outcomes)
            return True
        batch = self.fp_batches[ready[0]]
        self.progress.stage_finished("fingerprint", ok=False, n=len(batch))
        if err.startswith(CRASHED):
            # Its worker was killed past Ray's retries (hashing never crashes on content):
            # not the files' fault. Each file again on its own, first in line (path order
            # kept), a bounded number of times.
            again = [p for p in batch if self.fp_crashes.setdefault(p, 0) < FINGERPRINT_RESUBMITS]
            for path in again:
                self.fp_crashes[path] += 1
            self.pending_fp[:0] = [self.submit_fingerprint_batch([p]) for p in again]
            batch = [p for p in batch if p not in again]
        # Failed past its retries: report each file.
        for path in batch:
            self.finish(path, FileResult(path=path, status="failed", errors={"fingerprint": err}))
        return True

    def on_fingerprints(self, outcomes: list[FingerprintOutcome]) -> None:
        fresh: list[FingerprintOutcome] = []
        for o in outcomes:
            self.progress.stage_finished("fingerprint", ok=o.error is None)
            if o.fingerprint is None:
                self.finish(o.path, FileResult(path=o.path, status="failed",
                                               errors={"fingerprint": o.error or "unknown error"},
                                               seconds=o.seconds))
                continue
            checksum = o.fingerprint.file.checksum
            if checksum in self.seen_checksums:
                self.finish(o.path, FileResult(path=o.path, clip_id=o.fingerprint.clip_id,
                                               status="duplicate", duplicate_of=self.seen_checksums[checksum]))
                continue
            self.seen_checksums[checksum] = o.path
            fresh.append(o)
        if not fresh:
            return
        if self.handles.catalog_ready is not None and self.handles.catalog_ready() is not None:
            self.pending_fp.clear()  # nothing goes on: the session reports the problem
            return
        stored = ray.get(self.handles.writer.statuses.remote([o.fingerprint.clip_id for o in fresh
                                                              if o.fingerprint]))
        for o in fresh:
            assert o.fingerprint is not None
            known = stored.get(o.fingerprint.clip_id)
            if known and known["status"] == "ingested" and not self.settings.force:
                self.finish(o.path, FileResult(path=o.path, clip_id=o.fingerprint.clip_id,
                                               status="duplicate", duplicate_of=known["path"]))
            else:
                self.queue.append((o, False))

    # ------------------------------------------------------------ inspect submission

    def files_held(self) -> int:
        """Files past fingerprinting and not yet written: decoded frames in the object store
        stay bounded by ``--concurrency`` whatever the batch size."""
        return sum(len(items) for items in self.inspecting.values()) + len(self.joined) + len(self.to_embed)

    def launch(self) -> None:
        while self.queue and (room := self.in_flight_cap - self.files_held()) > 0:
            if "probe" not in self.steps:
                self.store_fingerprint_only(self.queue.pop(0)[0])
                continue
            self.submit_inspect(self.next_inspect_batch(room))

    def store_fingerprint_only(self, outcome: FingerprintOutcome) -> None:
        fp = outcome.fingerprint
        assert fp is not None
        self.progress.file_started(outcome.path)
        record = build_record(fp=fp, probed=None, sampled=None, errors={},
                              run_id=self.run_id, fingerprint_s=outcome.seconds)
        self.write([record])
        self.finish(outcome.path, FileResult(path=outcome.path, clip_id=fp.clip_id, status="ingested"))

    def next_inspect_batch(self, room: int) -> list[tuple[FingerprintOutcome, bool]]:
        """Small files share a task while enough is queued to keep every CPU busy."""
        backlog = len(self.queue) + sum(len(self.fp_batches[ray_ref(f)]) for f in self.pending_fp)
        most = min(4, max(1, room // (2 * self.cpus)), max(1, backlog // (2 * self.cpus)))
        batch = [self.queue.pop(0)]

        def size(o: FingerprintOutcome) -> int:
            return o.fingerprint.file.size_bytes if o.fingerprint else 0

        total = size(batch[0][0])
        while len(batch) < most and self.queue and not batch[0][1] and not self.queue[0][1] and (
                total + size(self.queue[0][0]) < BATCH_BYTES):
            total += size(self.queue[0][0])
            batch.append(self.queue.pop(0))
        return batch

    def submit_inspect(self, batch: list[tuple[FingerprintOutcome, bool]]) -> None:
        # One Ray-level retry of a crashed worker: a decoder that segfaults twice on
        # the same file is hostile input, not bad luck. Prefect retries transient errors.
        with remote_options(**self.inspect_options, max_retries=1, **self.spread):
            future = self.inspect_task.submit(
                [(o.path, o.fingerprint.clip_id) for o, _ in batch if o.fingerprint], self.settings, self.steps)
        self.progress.stage_started("inspect", len(batch))
        items = []
        for position, (outcome, _) in enumerate(batch):
            self.progress.file_started(outcome.path)
            assert outcome.fingerprint is not None
            items.append(FileInFlight(outcome.path, outcome.fingerprint, outcome.seconds, time.monotonic(),
                                      future, position, alone=len(batch) == 1))
        self.inspecting[ray_ref(future)] = items

    def requeue_alone(self, item: FileInFlight) -> None:
        self.progress.stage_finished("inspect", ok=False)
        self.queue.insert(0, (FingerprintOutcome(item.path, item.fp, None, item.fingerprint_s), True))

    # ------------------------------------------------------------ inspect completion

    def on_inspected(self, items: list[FileInFlight]) -> None:
        outcomes, err = future_value(items[0].future)
        if err is not None and err.startswith(CRASHED) and len(items) > 1:
            # The shared worker died (twice: Ray re-ran it once). One file of the batch is
            # likely hostile; run each file alone so only that one fails.
            for item in reversed(items):
                self.requeue_alone(item)
            return
        for item in items:
            inspected = outcomes[item.position] if outcomes is not None else None
            if inspected is not None and inspected.transient and not item.alone:
                # A transient error inside a shared task: run that file again on its own,
                # where Prefect's retries apply to it alone.
                self.requeue_alone(item)
                continue
            self.on_file_inspected(item, inspected, err)

    def on_file_inspected(self, item: FileInFlight, inspected: InspectOutcome | None, err: str | None) -> None:
        errors: dict[StageName, str] = {}
        probed = sampled = None
        if err is not None or inspected is None:
            errors["probe"] = err or "inspect returned nothing"
        else:
            probed, sampled = inspected.probe, inspected.sample
            if sampled is not None and sampled.skipped:
                sampled = None
        self.count_inspect_stages(inspected, err)
        record = build_record(fp=item.fp, probed=probed, sampled=sampled, errors=errors,
                              run_id=self.run_id, fingerprint_s=item.fingerprint_s)
        if inspected is not None and inspected.node is not None:
            record.placement.append(inspected.node)
        if err is not None:
            record.status = "failed"
        joined = self.joined[item.path] = Joined(item, record)
        frames_ref = sampled.frames_ref if sampled is not None else None
        if self.analysis is not None and analysable(record, frames_ref):
            # An audio file goes without frames: the analyzer runs its speech role on it.
            self.analysis.submit(item.path, record, frames_ref)
            joined.waiting.add("analyze")
        if record.status != "failed" and record.kind == "video" and record.video is not None \
                and "proxy" in self.steps and self.proxies.submit(item.path, record):
            joined.waiting.add("proxy")
        if not joined.waiting:
            self.ready(item.path)

    def count_inspect_stages(self, inspected: InspectOutcome | None, err: str | None) -> None:
        self.progress.stage_finished("inspect", ok=err is None)
        if inspected is None:
            return
        if inspected.probe is not None:
            self.progress.stage_finished("probe", ok=inspected.probe.error is None)
        sampled = inspected.sample
        if sampled is not None and not sampled.skipped:
            for stage in ("sample", "thumbnails", "exposure"):
                if stage in sampled.timings or stage in sampled.errors:
                    self.progress.stage_finished(stage, ok=stage not in sampled.errors)

    # ------------------------------------------------------------ analysis, proxy, embed

    def on_analysis_done(self, done: AnalysisDone) -> None:
        """The analysis part of a file came back, or failed for good."""
        joined = self.joined[done.key]
        if done.where is not None:
            joined.record.placement.append(done.where)
        ok = apply_analysis(joined.record, done.result, done.error)
        self.progress.stage_finished("analyze", ok=ok)
        self.part_done(done.key, "analyze")

    def part_done(self, key: str, part: str) -> None:
        joined = self.joined[key]
        joined.waiting.discard(part)
        if not joined.waiting:
            self.ready(key)

    def ready(self, key: str) -> None:
        """Every part of the file is back: embed it (batched) or write it now."""
        joined = self.joined.pop(key)
        if "embed" in self.steps and self.handles.embedder is not None and joined.record.status != "failed":
            if not self.to_embed:
                self.first_queued = time.monotonic()
            self.to_embed.append(joined)
        else:
            self.finalize(joined, None)

    def flush_embeds(self, force: bool = False) -> None:
        if not self.to_embed:
            return
        idle = not (self.inspecting or self.proxies.busy() or self.queue or self.pending_fp
                    or (self.analysis is not None and self.analysis.busy()))
        due = time.monotonic() - self.first_queued > EMBED_WAIT_S
        if not (force or idle or due or len(self.to_embed) >= self.settings.embed.batch_records):
            return
        batch, self.to_embed = self.to_embed, []
        self.progress.stage_started("embed", len(batch))
        self.embeds[self.handles.embedder.embed.remote([j.record for j in batch])] = batch

    def on_embed_done(self, ref: Any, batch: list[Joined]) -> None:
        try:
            vectors = ray.get(ref)
        except ray.exceptions.RayActorError as exc:
            self.on_embedder_crash(batch, exc)
            return
        except ray.exceptions.RayError as exc:
            for joined in batch:
                joined.record.errors["embed"] = f"embedder failed: {describe(exc)}"
            vectors = [None] * len(batch)
        self.progress.stage_finished("embed", ok=all(v is not None for v in vectors), n=len(batch))
        for joined, vec in zip(batch, vectors, strict=True):
            self.finalize(joined, vec)

    def on_embedder_crash(self, batch: list[Joined], exc: BaseException) -> None:
        """The embedder died during a batch: each record runs again alone (uncharged when the
        batch was shared); a record that kills it twice alone is stored without vectors."""
        reason = crash_reason(exc)
        self.progress.stage_finished("embed", ok=False, n=len(batch))
        for joined in batch:
            if len(batch) == 1:
                joined.embed_crashes += 1
            if joined.embed_crashes >= 2:
                joined.record.errors["embed"] = f"this record crashed the embedder twice, alone: {reason}"
                self.finalize(joined, None)
                continue
            self.progress.stage_started("embed")
            self.embeds[self.handles.embedder.embed.remote([joined.record])] = [joined]

    # ------------------------------------------------------------ writing, results

    def write(self, records: list[ClipRecord], vectors: list[Any] | None = None) -> None:
        self.progress.stage_started("store", len(records))
        self.write_refs.append((self.handles.writer.write.remote(records, vectors), records, vectors))

    def finalize(self, joined: Joined, vectors: Any) -> None:
        self.write([joined.record], [vectors] if vectors is not None else None)
        self.finish(joined.item.path, file_result(joined.record, path=joined.item.path,
                                                  seconds=time.monotonic() - joined.item.started))

    def finish(self, path: str, result: FileResult) -> None:
        self.results[path] = result
        self.progress.file_finished(path, result.status)

    def reap_writes(self) -> None:
        """Settle the catalog writes that finished, so the store counts move during the run
        (not only after the loop: "store running 5 done 0" after 5 stored files)."""
        if not self.write_refs:
            return
        ready, _ = ray.wait([w[0] for w in self.write_refs], num_returns=len(self.write_refs), timeout=0)
        done = set(ready)
        settled = [w for w in self.write_refs if w[0] in done]
        self.write_refs = [w for w in self.write_refs if w[0] not in done]
        for ref, records, vectors in settled:
            self.settle_write(ref, records, vectors)

    def drain_writes(self) -> None:
        pending, self.write_refs = self.write_refs, []
        for ref, records, vectors in pending:
            self.settle_write(ref, records, vectors)

    def settle_write(self, ref: Any, records: list[ClipRecord], vectors: list[Any] | None) -> None:
        try:
            self.await_write(ref, records, vectors)
            self.progress.stage_finished("store", ok=True, n=len(records))
        except Exception as exc:
            self.progress.stage_finished("store", ok=False, n=len(records))
            for record in records:
                res = self.results[record.file.path]
                res.status = "failed"
                res.errors["store"] = describe(exc)

    def await_write(self, ref: Any, records: list[ClipRecord], vectors: list[Any] | None, *,
                    tries: int = 3) -> None:
        """Wait for a write; a writer that died mid-call (restarted by Ray) gets the same
        records again: writes are upserts keyed by clip id, so a retry cannot duplicate."""
        for attempt in range(tries):
            try:
                ray.get(ref)
                return
            except ray.exceptions.RayActorError:
                if attempt + 1 == tries:
                    raise
                log.warning("the catalog writer died while writing %d record(s); writing them again",
                            len(records))
                ref = self.handles.writer.write.remote(records, vectors)

    def final_summary(self) -> RunSummary:
        summary = self.summary
        summary.files = [self.results[p] for p in self.order if p in self.results]
        summary.counts = count_statuses(summary.files)
        summary.finished_at = datetime.now(UTC)
        note = self.proxies.stop()
        if note:
            summary.notes.append(note)
        return summary
