"""What the AnalyzerPool decides on a shared, changing cluster, as pure functions (tested
without Ray): which persistent analyzers to retire, how many to add while work waits, what
to ask the autoscaler for, which to release when idle, and when an analyzer waiting to be
placed is stuck.

Persistent analyzers (``--address``) are detached actors named
``rayflow-analyzer-<settings key>-<index>`` in the ``rayflow`` namespace; a run holds a
lease on the ones it uses (``rayflow.engine.analyzer_leases``), so another run never
retires them while in use.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

NAMESPACE = "rayflow"
PREFIX = "rayflow-analyzer-"


def analyzer_name(key: str, index: int) -> str:
    """The Ray name of persistent analyzer ``index`` built with settings ``key``."""
    return f"{PREFIX}{key}-{index}"


def parse_name(name: str) -> tuple[str, int] | None:
    """``(key, index)`` of a persistent analyzer's name; None for any other name."""
    if not name.startswith(PREFIX):
        return None
    key, _, index = name[len(PREFIX):].rpartition("-")
    return (key, int(index)) if key and index.isdigit() else None


@dataclass(frozen=True)
class Retire:
    """Persistent analyzers found on the cluster that this run does not use."""

    kill: tuple[str, ...] = ()
    """Idle (no live lease): killed, freeing what they hold (GPUs)."""
    in_use: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Leased by another run (name -> holders): left alone until that run ends."""


def to_retire(names: Iterable[str], key: str, keep: int, holders: Mapping[str, Sequence[str]]) -> Retire:
    """Which of the cluster's persistent analyzers (``names``) to kill before this run, built
    with settings ``key``, starts its ``keep`` analyzers: those built with other settings (or
    an older rayflow), and those of this key beyond ``keep`` (grown by an earlier run), unless
    a live lease (``holders``) says another run uses them."""
    kill, in_use = [], {}
    for name in sorted(names):
        parsed = parse_name(name)
        if parsed is None or (parsed[0] == key and parsed[1] < keep):
            continue
        if holders.get(name):
            in_use[name] = tuple(holders[name])
        else:
            kill.append(name)
    return Retire(tuple(kill), in_use)


def backlog(queued: int, actors: int) -> int:
    """Analyses that wait behind another on the same actor (each actor runs one at a time)."""
    return max(0, queued - actors)


def grow_by(*, current: int, fit: int, waiting: int, free_gpus: float, per_gpu: float) -> int:
    """Analyzers to add now: no more than the plan allows on the cluster as it is (``fit``),
    than the GPUs free right now hold (a new one would otherwise pend), or than the work
    waiting (``waiting``: the backlog) can use. CPU pools (``per_gpu`` 0) do not grow."""
    if per_gpu <= 0 or waiting <= 0:
        return 0
    free_fit = int(free_gpus / per_gpu + 1e-9)
    return max(0, min(fit - current, free_fit, waiting))


def autoscale_bundles(*, current: int, waiting: int, per_gpu: float, cpus: float,
                      cap: int | None = None) -> list[dict[str, float]]:
    """The GPU bundles to ask the autoscaler for (``ray.autoscaler.sdk.request_resources``,
    which sizes the cluster for the whole list, counting what already runs): one per analyzer
    running plus one per waiting analysis (``cap``: the most analyzers allowed), or none when
    nothing waits (which withdraws an earlier request). CPU pools ask for nothing."""
    if per_gpu <= 0 or waiting <= 0:
        return []
    total = current + waiting if cap is None else min(cap, current + waiting)
    bundle = {"GPU": per_gpu, **({"CPU": cpus} if cpus > 0 else {})}
    return [dict(bundle) for _ in range(total)]


def idle_to_release(idle_since: Mapping[int, float | None], *, keep: int, now: float, idle_s: float) -> list[int]:
    """Analyzers beyond the first ``keep`` (grown while work waited) idle for ``idle_s``: the
    newest first, never below ``keep``. ``idle_since`` maps each live analyzer's index to when
    it last became idle (None = busy)."""
    live = sorted(idle_since)
    extra = [i for i in live[keep:] if (since := idle_since[i]) is not None and now - since >= idle_s]
    return sorted(extra, reverse=True)


@dataclass
class PlacementWatch:
    """Notices analyzers that Ray has not placed (their process has not started) for longer
    than ``bound_s``, e.g. waiting for GPUs that other work holds, or for a node an autoscaler
    cannot launch: the analyses queued on them would otherwise wait forever."""

    bound_s: float
    since: dict[int, float] = field(default_factory=dict)

    def update(self, unplaced: Iterable[int], now: float) -> None:
        waiting = set(unplaced)
        self.since = {i: self.since.get(i, now) for i in waiting}

    def stuck(self, now: float) -> list[int]:
        return sorted(i for i, since in self.since.items() if now - since >= self.bound_s)
