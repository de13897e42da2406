"""Proxy encodes in flight: one ``proxy`` Prefect task per file, its encode slot, its progress.

The scheduler hands each video's record here (``submit``) and is told which file's
proxy part finished (``collect``, ``watch``); the outcome is folded into the record.
Encode progress reaches the live display through the run's ``ProgressBoard`` actor.
A proxy asking for an encode resource that no alive node offers any more (its node
was lost) is moved to the kind still offered, or failed with the reason.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import ray
from prefect_ray.context import remote_options

from rayflow.config import Settings
from rayflow.engine.assemble import apply_proxy, encoders_note
from rayflow.engine.outcomes import describe, ray_ref
from rayflow.engine.progress import Progress
from rayflow.engine.resources import ray_options
from rayflow.engine.tasks import future_value, proxy_file
from rayflow.record import ClipRecord

log = logging.getLogger(__name__)

WATCH_EVERY_S = 2.0
"""How often the lost-resource watch looks at the cluster."""
POLL_EVERY_S = 0.5
"""How often the progress board is read for the live display."""


@dataclass
class ProxyJob:
    key: str
    record: ClipRecord
    future: Any
    options: dict[str, Any]
    """The Ray options the task asked for (returned to the encode slots when done)."""


class ProxyQueue:
    """Submits proxy tasks with the encode slot each needs and collects them."""

    def __init__(self, settings: Settings, *, encode: Any, encoder_note: str | None, spread: dict[str, Any],
                 progress: Progress) -> None:
        self.settings, self.encode, self.encoder_note = settings, encode, encoder_note
        self.spread, self.progress = spread, progress
        self.task = proxy_file.with_options(retries=settings.retries)
        self.jobs: dict[Any, ProxyJob] = {}
        self.encoders_used: dict[str, int] = {}
        self.board: Any = None
        self.board_name: str | None = None
        self.last_poll = 0.0
        self.last_watch = time.monotonic()

    def busy(self) -> bool:
        return bool(self.jobs)

    def refs(self) -> list[Any]:
        return list(self.jobs)

    def owns(self, ref: Any) -> bool:
        return ref in self.jobs

    def start_board(self, run_id: str) -> None:
        from rayflow.engine.actors import start_progress_board

        self.board_name = f"rayflow-progress-{run_id}"
        self.board = start_progress_board(self.board_name)

    def stop(self) -> str | None:
        """End the board; the summary's note on which encoders made the proxies."""
        if self.board is not None:
            ray.kill(self.board)
        return encoders_note(self.encoders_used, self.encoder_note)

    def submit(self, key: str, record: ClipRecord, *, again: bool = False) -> bool:
        """Start the proxy of ``record``; False (and the reason in its errors) if none can be planned."""
        from rayflow.stages.proxy import ProxySource, ProxyStage

        encode = self.encode
        if record.video is None:
            record.errors["proxy"] = "cannot plan a proxy: no video stream"
            return False
        try:
            source = ProxySource.from_record(
                record.video, record.audio_tracks,
                duration_s=record.container.duration_s if record.container else None)
        except (ValueError, TypeError) as exc:
            record.errors["proxy"] = f"cannot plan a proxy: {describe(exc)}"
            return False
        options = encode.task_options() if encode else ray_options(ProxyStage.resources)
        threads = encode.threads if encode else 1
        task_settings = encode.settings_for(options, self.settings) if encode else self.settings
        with remote_options(**options, **self.spread, max_retries=1):
            future = self.task.submit(key, record.clip_id, source, task_settings, threads, self.board_name)
        if not again:
            self.progress.stage_started("proxy")
        self.jobs[ray_ref(future)] = ProxyJob(key, record, future, options)
        return True

    def collect(self, ref: Any) -> str:
        """Fold the finished proxy ``ref`` into its record; the file's key."""
        job = self.jobs.pop(ref)
        outcome, err = future_value(job.future)
        if self.encode is not None:
            self.encode.done(job.options)
        encoder = apply_proxy(job.record, outcome, err)
        if encoder is not None:
            self.encoders_used[encoder] = self.encoders_used.get(encoder, 0) + 1
        self.progress.stage_finished("proxy", ok=encoder is not None)
        return job.key

    def poll_board(self) -> None:
        now = time.monotonic()
        if self.board is None or now - self.last_poll < POLL_EVERY_S:
            return
        self.last_poll = now
        try:
            self.progress.set_encodes(ray.get(self.board.snapshot.remote(), timeout=5))
        except ray.exceptions.RayError:
            log.debug("progress board unavailable", exc_info=True)

    def watch(self) -> list[str]:
        """Proxies stranded on a resource no alive node offers (its node was lost) would pend
        forever: after ``timeouts.lost_resource_s`` move each to the kind still offered, or fail
        it with the reason. Returns the keys of the files whose proxy part ended here."""
        encode, now = self.encode, time.monotonic()
        if encode is None or not self.jobs or now - self.last_watch < WATCH_EVERY_S:
            return []
        self.last_watch = now
        encode.refresh(ray.cluster_resources(), now)
        stranded = encode.stranded(now, self.settings.timeouts.lost_resource_s)
        if not stranded:
            return []
        ended = []
        for ref, job in list(self.jobs.items()):
            kinds = set(job.options.get("resources", {}))
            if not kinds & stranded:
                continue
            ray.cancel(ref, force=True)
            del self.jobs[ref]
            encode.done(job.options)
            if encode.can_encode():
                log.warning("proxy of %s waited for %s that no alive node offers; re-planned",
                            job.key, ", ".join(sorted(kinds)))
                if self.submit(job.key, job.record, again=True):
                    continue
            else:
                job.record.errors["proxy"] = (
                    f"no alive node has offered {', '.join(sorted(kinds))} for "
                    f"{self.settings.timeouts.lost_resource_s:g} s (its node was lost?)")
            self.progress.stage_finished("proxy", ok=False)
            ended.append(job.key)
        return ended
