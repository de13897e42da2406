"""Run progress the flow reports and the CLI renders: per-stage running/done/failed
counts, files finished, throughput and the files currently in flight.

Thread-safe and free of rendering, so the CLI's rich display (or a test) reads
``snapshot()`` from another thread while the flow updates it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

STAGES: tuple[str, ...] = (
    "fingerprint", "inspect", "probe", "sample", "thumbnails", "exposure", "analyze", "proxy",
    "embed", "store",
)
"""Stages shown in the live display, in pipeline order. ``inspect`` is the one Prefect
task per file that runs probe, sample, thumbnails and exposure inside it."""


@dataclass(frozen=True)
class StageCounts:
    running: int = 0
    done: int = 0
    failed: int = 0


@dataclass(frozen=True)
class Snapshot:
    total: int
    finished: int
    statuses: dict[str, int]
    stages: dict[str, StageCounts]
    current: list[str]
    elapsed_s: float
    encodes: dict[str, float] = field(default_factory=dict)
    """Proxy encodes in progress: path -> fraction done (from ffmpeg -progress)."""

    @property
    def files_per_s(self) -> float:
        return self.finished / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        rate = self.files_per_s
        if rate <= 0 or self.finished == 0:
            return None
        return (self.total - self.finished) / rate


@dataclass
class Progress:
    total: int = 0
    _started: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _running: Counter[str] = field(default_factory=Counter)
    _done: Counter[str] = field(default_factory=Counter)
    _failed: Counter[str] = field(default_factory=Counter)
    _statuses: Counter[str] = field(default_factory=Counter)
    _current: dict[str, float] = field(default_factory=dict)
    _encodes: dict[str, float] = field(default_factory=dict)

    def set_encodes(self, encodes: dict[str, float]) -> None:
        with self._lock:
            self._encodes = {k: v for k, v in encodes.items() if k in self._current}

    def set_total(self, total: int) -> None:
        with self._lock:
            self.total = total

    def stage_started(self, stage: str, n: int = 1) -> None:
        with self._lock:
            self._running[stage] += n

    def stage_finished(self, stage: str, *, ok: bool, n: int = 1) -> None:
        with self._lock:
            self._running[stage] = max(0, self._running[stage] - n)
            (self._done if ok else self._failed)[stage] += n

    def file_started(self, path: str) -> None:
        with self._lock:
            self._current[path] = time.monotonic()

    def file_finished(self, path: str, status: str) -> None:
        with self._lock:
            self._current.pop(path, None)
            self._statuses[status] += 1

    def snapshot(self) -> Snapshot:
        with self._lock:
            stages = {
                s: StageCounts(self._running[s], self._done[s], self._failed[s]) for s in STAGES
            }
            current = sorted(self._current, key=self._current.__getitem__)
            return Snapshot(
                total=self.total,
                finished=sum(self._statuses.values()),
                statuses=dict(self._statuses),
                stages=stages,
                current=current,
                elapsed_s=time.monotonic() - self._started,
                encodes=dict(self._encodes),
            )
