"""The AnalysisQueue's placement watch without Ray: analyses queued on an analyzer that Ray
never placed move to the analyzers that run, or fail with the free GPUs and who holds them.
The pool is a stand-in (its Ray side is tested in tests/cluster/test_analyzer_fleet.py);
Ray's cluster queries are replaced by fixed answers."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from rayflow.config import load_settings
from rayflow.engine import analysis_queue
from rayflow.engine.analysis_queue import QUEUE_DEPTH, AnalysisQueue
from rayflow.engine.pools import PoolPlan
from rayflow.engine.progress import Progress
from rayflow.record import ClipRecord, FileInfo


@dataclass
class StandInPool:
    """The AnalyzerPool's interface, recording what the queue asks of it."""

    unplaced_now: list[int]
    plan: PoolPlan = PoolPlan(2, 1.0, 1.0, "2 GPU actor(s) x 1 GPU")
    in_flight: dict[int, int] = field(default_factory=lambda: {0: 0, 1: 0})
    answered: set[int] = field(default_factory=set)
    sent: list[tuple[int, str]] = field(default_factory=list)
    released: list[int] = field(default_factory=list)

    def live(self) -> list[int]:
        return sorted(self.in_flight)

    def has_room(self, depth: int, *, avoid: Collection[int] = ()) -> bool:
        loads = [n for i, n in self.in_flight.items() if i not in avoid]
        return bool(loads) and min(loads) < depth

    def submit(self, path: str, clip_id: str, frames_ref: Any, record: Any, *,
               avoid: Collection[int] = ()) -> tuple[Any, int]:
        index = min((i for i in self.in_flight if i not in avoid), key=self.in_flight.__getitem__)
        self.in_flight[index] += 1
        self.sent.append((index, path))
        return object(), index

    def done(self, index: int) -> None:
        if index in self.in_flight:
            self.in_flight[index] -= 1

    def unplaced(self) -> list[int]:
        return [i for i in self.unplaced_now if i in self.in_flight]

    def release(self, index: int, *, why: str) -> bool:
        self.released.append(index)
        del self.in_flight[index]
        return True

    def in_use_elsewhere(self) -> dict[str, list[str]]:
        return {"rayflow-analyzer-0ld0ld00-0": ["run on box pid 7 (abc123)"]}


def _queue(pool: StandInPool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AnalysisQueue:
    monkeypatch.setattr(analysis_queue.ray, "cancel", lambda ref: None)
    monkeypatch.setattr(analysis_queue.ray, "cluster_resources", lambda: {"GPU": 2.0, "CPU": 4.0})
    monkeypatch.setattr(analysis_queue.ray, "available_resources", lambda: {"GPU": 0.0, "CPU": 2.0})
    settings = load_settings(env={}, home=tmp_path, timeouts={"gpu_wait_s": 30.0})
    return AnalysisQueue(pool, settings, Progress())


def _submit(queue: AnalysisQueue, count: int) -> None:
    for i in range(count):
        path = f"/f/{i}.mp4"
        queue.submit(path, ClipRecord(clip_id=f"c{i}", file=FileInfo(path=path, name=f"{i}.mp4", size_bytes=1,
                                                                     checksum="0")), None)


def test_analyses_on_an_analyzer_never_placed_move_to_the_one_that_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pool = StandInPool(unplaced_now=[1])
    queue = _queue(pool, tmp_path, monkeypatch)
    _submit(queue, 5)
    assert pool.in_flight == {0: QUEUE_DEPTH, 1: QUEUE_DEPTH} and len(queue.waiting) == 1  # the rest wait
    assert queue._watch_placement(0.0) == []
    assert queue._watch_placement(29.0) == [] and pool.released == []  # within the bound
    assert queue._watch_placement(31.0) == []  # nothing failed: moved
    assert pool.released == [1]
    on_one = {path for index, path in pool.sent[:4] if index == 1}
    assert len(on_one) == 2 and all(call.index == 0 for call in queue.pending.values())
    assert {call.key for call in [*queue.pending.values(), *queue.waiting]} >= on_one  # none lost
    assert len(queue.pending) + len(queue.waiting) == 5


def test_when_no_analyzer_is_ever_placed_the_files_fail_with_the_free_gpus_and_the_holder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pool = StandInPool(unplaced_now=[0, 1])
    queue = _queue(pool, tmp_path, monkeypatch)
    _submit(queue, 3)
    queue._watch_placement(0.0)
    failed = queue._watch_placement(30.0)
    assert len(failed) == 3 and not queue.busy()
    reason = failed[0].error or ""
    assert "2 analyzer(s) not placed by Ray after waiting 30 s: each needs 1 GPU" in reason
    assert "0 of 2 GPU(s) free" in reason and "in use by run on box pid 7 (abc123)" in reason
    assert sorted(pool.released) == [0, 1]  # no analyzer left pending, to take the GPUs later
    _submit(queue, 1)  # a file inspected later in the run fails at once, with the same reason
    (late,) = queue.watch()
    assert late.error == reason
