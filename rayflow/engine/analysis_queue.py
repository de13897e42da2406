"""Analyses in flight on the warm AnalyzerPool, and what a crashed analyzer costs.

A crash costs only the file at fault (issue #18). When an analyzer process dies
(a native crash, the OOM killer, SIGKILL) every call queued on it fails at once;
of those, only the one that was *running* is a suspect (actors run one analysis
at a time, in submission order, so it is the oldest outstanding call on that
actor). The others are bystanders: they go back to the queue uncharged and run
on the restarted (or another) actor. A suspect runs again *alone* (nothing else
is sent to the pool until it is back); if it crashes the actor again it is the
culprit and fails with the reason (signal, or memory as Ray reports it).

A restarting actor is waited for with a bound (``timeouts.actor_restart_s``; the
live display says "analyzer restarting"), then what waits on it fails with that
reason. The GPU watch fails analyses queued to GPU actors whose GPUs left the
cluster; the placement watch those queued on an analyzer Ray has not placed within
``timeouts.gpu_wait_s`` (no GPU free: held by other work), naming the free and total GPUs
and who holds them, or moves them to analyzers that are running. Every ``WATCH_EVERY_S``
the pool is resized to the backlog (``AnalyzerPool.adjust``). ``CrashLedger`` holds the
who-was-running bookkeeping and needs no Ray.

Lost frames are not the file's fault either: the inspect task ``ray.put`` the decoded
frames, so the inspect worker owns them, and when that worker dies (killed, OOM) every
analysis still waiting for those frames fails with ``OwnerDiedError`` / ``ObjectLostError``.
Such a call is sent again, uncharged, with the file's frames decoded again by
``decode_again`` (whose result the driver owns), at most ``MAX_REDECODES`` times.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import ray

from rayflow.config import Settings
from rayflow.engine.fleet_rules import PlacementWatch
from rayflow.engine.outcomes import describe
from rayflow.engine.pools import GpuWatch
from rayflow.engine.progress import Progress
from rayflow.record import ClipRecord

log = logging.getLogger(__name__)

WATCH_EVERY_S = 2.0
MAX_REQUEUES = 6
"""A bystander requeued this many times (other files kept crashing its actor) fails."""
RESTART_NOTE = "analyze"
QUEUE_DEPTH = 2
"""Analyses sent to one analyzer at a time (one running, one ready); the rest wait here, so
analyzers added while they wait (the pool grows as GPUs join) take them."""
MAX_REDECODES = 3
"""A file whose frames were lost this many times (with the workers holding them) fails."""
LOST_TEXT = re.compile(r"OwnerDiedError|ObjectLostError|ObjectReconstructionFailed|ObjectFetchTimedOut")


def lost_input(exc: BaseException) -> bool:
    """Whether a call failed because an object it reads (the frames) was lost, e.g. with the
    worker that owned it, rather than on the file itself."""
    if isinstance(exc, ray.exceptions.ObjectLostError) or isinstance(
            getattr(exc, "cause", None), ray.exceptions.ObjectLostError):
        return True
    return bool(LOST_TEXT.search(str(exc)))


@dataclass
class AnalysisDone:
    """The analysis part of one file, finished: ``result`` (an ``AnalysisResult``) or ``error``."""

    key: str
    result: Any | None
    error: str | None
    where: Any | None = None
    """The ``StagePlacement`` of the actor that served it, when known."""


@dataclass
class AnalysisCall:
    key: str
    record: ClipRecord
    frames_ref: Any
    index: int = -1
    """The pool's actor index it was last sent to."""
    charges: list[str] = field(default_factory=list)
    """Why the actor died each time it was running this file."""
    requeues: int = 0
    """Times it was sent back uncharged (a bystander of another file's crash)."""
    redecodes: int = 0
    """Times its frames were lost (with the worker owning them) and decoded again."""
    sent_at: float = 0.0
    """When it was last sent (``time.monotonic``)."""


@dataclass
class _Crash:
    suspect: Hashable
    members: set[Hashable]


class CrashLedger:
    """Per actor, the calls outstanding in submission order; on a crash, which one was running.

    Pure bookkeeping (tested without Ray). Every call that fails with the actor's death is
    reported with ``crashed()``; the calls outstanding on that actor at its first failure
    form one crash, whose suspect is the oldest of them; later failures of those calls
    belong to the same crash, whatever order they are seen in."""

    def __init__(self) -> None:
        self.queues: dict[int, list[Hashable]] = {}
        self.crashes: dict[int, _Crash] = {}

    def sent(self, index: int, ref: Hashable) -> None:
        self.queues.setdefault(index, []).append(ref)

    def finished(self, index: int, ref: Hashable) -> None:
        queue = self.queues.get(index, [])
        if ref in queue:
            queue.remove(ref)
        crash = self.crashes.get(index)
        if crash is not None:
            crash.members.discard(ref)
            if not crash.members:
                del self.crashes[index]

    def crashed(self, index: int, ref: Hashable) -> bool:
        """``ref`` failed because actor ``index`` died; True when it was the one running."""
        crash = self.crashes.get(index)
        if crash is None or ref not in crash.members:
            queue = self.queues.get(index, [])
            crash = self.crashes[index] = _Crash(queue[0] if queue else ref, {*queue, ref})
        suspect = crash.suspect == ref
        self.finished(index, ref)
        return suspect


MEMORY_MONITOR = re.compile(r"running low on memory|memory usage threshold|OutOfMemoryError", re.IGNORECASE)
"""Ray's own OOM reason (its memory monitor killed the worker). Ray's generic "worker died"
text merely lists the kernel's OOM killer and SIGSEGV among possible causes: not evidence."""
EXIT_DETAIL = re.compile(r"exit detail: (.+?\.)(?:\s|$)", re.IGNORECASE)


def crash_reason(exc: BaseException) -> str:
    """Why an actor died, from Ray's error text: out of memory when Ray's memory monitor says
    so, else the worker's exit detail (a signal, a lost connection), else the error itself."""
    full = str(exc)
    if MEMORY_MONITOR.search(full):
        return f"out of memory (Ray's memory monitor killed the process): {describe(exc)}"
    if found := EXIT_DETAIL.search(full):
        return (f"the process died ({found.group(1)} Killed by a signal, e.g. SIGKILL or the kernel's OOM "
                "killer, or a native crash)")
    return f"the process died: {describe(exc)}"


@dataclass
class _Restart:
    since: float
    reason: str
    ping: Any | None = None


class AnalysisQueue:
    """Submits analyses to the pool, collects them, requeues bystanders of a crash."""

    def __init__(self, pool: Any, settings: Settings, progress: Progress) -> None:
        self.pool, self.settings, self.progress = pool, settings, progress
        self.pending: dict[Any, AnalysisCall] = {}
        self.ledger = CrashLedger()
        self.waiting: list[AnalysisCall] = []
        """Calls to send: new ones and requeued bystanders."""
        self.suspects: list[AnalysisCall] = []
        """Calls running when their actor died, to run again alone."""
        self.alone: Any | None = None
        """The suspect running alone now (nothing else is sent meanwhile)."""
        self.restarting: dict[int, _Restart] = {}
        self.decoding: dict[Any, AnalysisCall] = {}
        """Calls whose lost frames are being decoded again, by the decode's result ref."""
        plan = getattr(pool, "plan", None)
        self.gpu_watch = GpuWatch(plan.num_gpus if plan is not None else 0.0)
        self.placement = PlacementWatch(settings.timeouts.gpu_wait_s)
        self.gave_up: str | None = None
        """Why no analyzer will run in this run (each was never placed); later files fail with it."""
        self.last_gpu_check = time.monotonic()

    def busy(self) -> bool:
        return bool(self.pending or self.waiting or self.suspects or self.decoding)

    def refs(self) -> list[Any]:
        return [*self.pending, *self.decoding]

    def owns(self, ref: Any) -> bool:
        return ref in self.pending or ref in self.decoding

    # ------------------------------------------------------------ sending

    def submit(self, key: str, record: ClipRecord, frames_ref: Any) -> None:
        self.progress.stage_started("analyze")
        self.waiting.append(AnalysisCall(key, record, frames_ref))
        self.dispatch()

    def dispatch(self) -> None:
        """Send what may go now: a suspect alone once the pool is idle, else what waits, up to
        ``QUEUE_DEPTH`` per analyzer.

        Nothing goes to an actor whose restart is not confirmed yet (an answered ping or call):
        Ray fails a call sent to a restarting actor at once ("The actor is restarting") once its
        retries are spent, which would charge a suspect, or requeue a bystander, for nothing.
        While every actor is restarting, everything waits (for ``timeouts.actor_restart_s``)."""
        if self.alone is not None or self._all_restarting():
            return
        if self.suspects:
            if not self.pending:
                self.alone = self._send(self.suspects.pop(0))
            return
        while self.waiting and self.pool.has_room(QUEUE_DEPTH, avoid=frozenset(self.restarting)):
            self._send(self.waiting.pop(0))

    def _all_restarting(self) -> bool:
        actors = getattr(self.pool, "actors", None)
        return actors is not None and len(self.restarting) >= len(actors)

    def _send(self, call: AnalysisCall) -> Any:
        ref, index = self.pool.submit(call.key, call.record.clip_id, call.frames_ref, call.record,
                                      avoid=frozenset(self.restarting))
        call.index, call.sent_at = index, time.monotonic()
        self.pending[ref] = call
        self.ledger.sent(index, ref)
        return ref

    # ------------------------------------------------------------ collecting

    def collect(self, ref: Any) -> AnalysisDone | None:
        """The finished call ``ref``: its analysis, its final failure, or None when it was
        sent back (a bystander, a suspect to run again alone, a file whose frames were lost)."""
        if ref in self.decoding:  # its frames, decoded again (or the decode's error): send it
            call = self.decoding.pop(ref)
            call.frames_ref = ref
            self.waiting.append(call)
            self.dispatch()
            return None
        call = self.pending.pop(ref)
        self.pool.done(call.index)
        try:
            result = ray.get(ref)
        except ray.exceptions.RayActorError as exc:
            done = self._crashed(ref, call, exc)
        except ray.exceptions.RayError as exc:
            self.ledger.finished(call.index, ref)
            done = self._lost_frames(call, exc) if lost_input(exc) and call.frames_ref is not None \
                else AnalysisDone(call.key, None, f"analysis failed: {describe(exc)}")
        else:
            self.ledger.finished(call.index, ref)
            self._restarted(call.index, sent_at=call.sent_at)
            if hasattr(self.pool, "answered"):
                self.pool.answered.add(call.index)  # placed: it served a file
            done = AnalysisDone(call.key, result, None, self._where(call.index))
        if ref == self.alone:
            self.alone = None
        self.dispatch()
        return done

    def _crashed(self, ref: Any, call: AnalysisCall, exc: BaseException) -> AnalysisDone | None:
        reason = crash_reason(exc)
        on_it = len(self.ledger.queues.get(call.index, []))
        running = self.ledger.crashed(call.index, ref)
        if call.index not in self.restarting:
            log.warning("analyzer %d died (%s) with %d file(s) on it (one running, the rest queued); "
                        "waiting for its restart", call.index, reason, on_it)
            self.restarting[call.index] = _Restart(time.monotonic(), reason)
            self.progress.set_note(RESTART_NOTE, "analyzer restarting")
        if running:
            call.charges.append(reason)
            if len(call.charges) >= 2:
                return AnalysisDone(call.key, None, (
                    f"this file crashed the analyzer {len(call.charges)} times, the last time alone on a "
                    f"restarted actor: {reason}"))
            log.warning("%s was being analysed when the analyzer died; it runs again alone", call.key)
            self.suspects.append(call)
            return None
        call.requeues += 1
        if call.requeues > MAX_REQUEUES:
            return AnalysisDone(call.key, None, (
                f"the analyzer crashed {call.requeues} times on other files while this one waited: {reason}"))
        self.waiting.append(call)
        return None

    def _lost_frames(self, call: AnalysisCall, exc: BaseException) -> AnalysisDone | None:
        """The call's frames were lost with the worker that owned them: decode them again."""
        call.redecodes += 1
        if call.redecodes > MAX_REDECODES:
            return AnalysisDone(call.key, None, (
                f"analysis failed: its decoded frames were lost {call.redecodes} times with the "
                f"worker holding them: {describe(exc)}"))
        log.warning("the frames of %s were lost with the worker holding them; decoding them again", call.key)
        call.frames_ref = None
        from rayflow.engine.tasks import REDECODE_OPTIONS, decode_again  # here: importing tasks imports prefect

        self.decoding[decode_again.options(**REDECODE_OPTIONS).remote(call.key, self.settings)] = call
        return None

    def _restarted(self, index: int, *, sent_at: float | None = None) -> None:
        """Actor ``index`` answered: its restart is over. An answer to a call sent before it
        died (collected after its crash was seen) proves nothing and is ignored."""
        restart = self.restarting.get(index)
        if restart is None or (sent_at is not None and sent_at < restart.since):
            return
        del self.restarting[index]
        if not self.restarting:
            self.progress.set_note(RESTART_NOTE, None)

    def _where(self, index: int) -> Any | None:
        return self.pool.where(index) if hasattr(self.pool, "where") else None

    # ------------------------------------------------------------ watches

    def watch(self) -> list[AnalysisDone]:
        """Bounded waits: for a restarting actor, and for GPUs that left the cluster."""
        now = time.monotonic()
        if self.gave_up is not None:
            return self._fail_all(self.gave_up) if self.waiting else []
        failed = self._watch_restarts(now)
        self.dispatch()  # after the watch: an actor confirmed back takes what waited for it
        if now - self.last_gpu_check < WATCH_EVERY_S:  # the checks below ask Ray (remote calls)
            return failed
        self.last_gpu_check = now
        if hasattr(self.pool, "adjust"):
            self.pool.adjust(len(self.pending) + len(self.waiting) + len(self.suspects), now)
        if self.gpu_watch.need_gpus and self.pending:
            self.gpu_watch.update(ray.cluster_resources(), now)
            if self.gpu_watch.stranded(now, self.settings.timeouts.lost_resource_s):
                failed += self._fail_all(
                    f"no GPU left in the cluster for {self.settings.timeouts.lost_resource_s:g} s (the analyzers "
                    f"need {self.gpu_watch.need_gpus:g} GPU each; was their node lost?)")
        return failed + self._watch_placement(now)

    def _watch_placement(self, now: float) -> list[AnalysisDone]:
        """Analyses queued on an analyzer Ray has not placed for ``timeouts.gpu_wait_s``: moved
        to the analyzers that run, or, when none runs, failed with what holds the GPUs."""
        unplaced = self.pool.unplaced() if hasattr(self.pool, "unplaced") else []
        self.placement.update([i for i in unplaced if self.pool.in_flight.get(i)], now)
        stuck = self.placement.stuck(now)
        if not stuck:
            return []
        reason = self._stuck_reason(len(stuck))
        if set(stuck) >= set(self.pool.live()):
            # None will run: release them (a pending actor would take the GPUs later and hold
            # them), and fail what waits now and what comes later in this run, with the reason.
            self.placement.since.clear()
            log.error("%s", reason)
            self.gave_up = reason
            failed = self._fail_all(reason)
            for index in stuck:
                self.pool.release(index, why="never placed")
            return failed
        for index in stuck:  # others run: their queue takes these analyses (never run: uncharged)
            for ref, call in list(self.pending.items()):
                if call.index == index:
                    with contextlib.suppress(Exception):
                        ray.cancel(ref)
                    del self.pending[ref]
                    self.ledger.finished(index, ref)
                    self.alone = None if ref == self.alone else self.alone
                    self.waiting.append(call)
            self.pool.release(index, why=reason)
            self.placement.since.pop(index, None)
        log.warning("%s; their analyses moved to the analyzers that run", reason)
        self.dispatch()
        return []

    def _stuck_reason(self, count: int) -> str:
        plan = self.pool.plan
        bound = self.settings.timeouts.gpu_wait_s
        total = float(ray.cluster_resources().get("GPU", 0))
        free = float(ray.available_resources().get("GPU", 0))
        need = f"{plan.num_gpus:g} GPU" if plan.num_gpus else f"{plan.num_cpus:g} CPU"
        reason = (f"{count} analyzer(s) not placed by Ray after waiting {bound:g} s: each needs {need}, and the "
                  f"cluster has {free:g} of {total:g} GPU(s) free")
        held = self.pool.in_use_elsewhere() if hasattr(self.pool, "in_use_elsewhere") else {}
        if held:
            runs = sorted({run for runs in held.values() for run in runs})
            reason += (f"; {len(held)} persistent rayflow analyzer(s) built with other settings hold GPUs, in "
                       f"use by {', '.join(runs)} (retired once that run ends)")
        return reason + "; or lower --gpus-per-worker / --ai-workers"

    def _watch_restarts(self, now: float) -> list[AnalysisDone]:
        """Ping each restarting actor (its ``node`` method answers on its own thread); past
        ``timeouts.actor_restart_s`` without an answer, fail everything waiting for analysis."""
        actors = getattr(self.pool, "actors", None)
        bound = self.settings.timeouts.actor_restart_s
        for index, restart in list(self.restarting.items()):
            if actors is None:
                self._restarted(index)
                continue
            if restart.ping is not None and ray.wait([restart.ping], timeout=0)[0]:
                try:
                    ray.get(restart.ping)
                    self._restarted(index)
                    log.info("analyzer %d is back", index)
                    continue
                except ray.exceptions.RayError:
                    restart.ping = None
            if restart.ping is None:
                restart.ping = actors[index].node.remote()
            if now - restart.since > bound:
                self.restarting.clear()
                self.progress.set_note(RESTART_NOTE, None)
                return self._fail_all(
                    f"the analyzer did not come back within {bound:g} s after it died ({restart.reason})")
        return []

    def _fail_all(self, reason: str) -> list[AnalysisDone]:
        failed = []
        for ref, call in list(self.pending.items()):
            with contextlib.suppress(Exception):  # already finished or its actor is gone: nothing to stop
                ray.cancel(ref)
            del self.pending[ref]
            self.pool.done(call.index)
            self.ledger.finished(call.index, ref)
            failed.append(AnalysisDone(call.key, None, reason))
        for call in [*self.suspects, *self.waiting, *self.decoding.values()]:
            failed.append(AnalysisDone(call.key, None, reason))
        self.suspects.clear()
        self.waiting.clear()
        self.decoding.clear()
        self.alone = None
        return failed
