"""Run progress the flow reports and the CLI renders: per-stage running/done/failed
counts, files finished, throughput and the files currently in flight.

Thread-safe and free of rendering, so the CLI's rich display (or a test) reads
``snapshot()`` from another thread while the flow updates it. :class:`LivePublisher`
writes the snapshot to ``<home>/runs/live.json`` once a second so other processes
(``rayflow serve``) can show a running ingest without talking to it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rayflow.record import STEP_NAMES, StageName

log = logging.getLogger(__name__)

STAGES: tuple[StageName, ...] = (STEP_NAMES[0], "inspect", *STEP_NAMES[1:])
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
    stages: dict[StageName, StageCounts]
    current: list[str]
    elapsed_s: float
    encodes: dict[str, float] = field(default_factory=dict)
    """Proxy encodes in progress: path -> fraction done (from ffmpeg -progress)."""
    notes: list[str] = field(default_factory=list)
    """What the run is waiting on right now, e.g. "analyzer restarting"."""

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
    _notes: dict[str, str] = field(default_factory=dict)

    def set_note(self, key: str, text: str | None) -> None:
        """Show ``text`` under ``key`` in the live display until set to None."""
        with self._lock:
            if text is None:
                self._notes.pop(key, None)
            else:
                self._notes[key] = text
    _total_known: bool = False

    def set_encodes(self, encodes: dict[str, float]) -> None:
        with self._lock:
            self._encodes = {k: v for k, v in encodes.items() if k in self._current}

    def set_total(self, total: int) -> None:
        with self._lock:
            self.total = total
            self._total_known = True

    def hint_total(self, total: int) -> None:
        """An early count (discovery before Ray starts) unless the flow has set its own."""
        with self._lock:
            if not self._total_known:
                self.total = total
                self._total_known = True

    def stage_started(self, stage: StageName, n: int = 1) -> None:
        with self._lock:
            self._running[stage] += n

    def stage_finished(self, stage: StageName, *, ok: bool, n: int = 1) -> None:
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
                notes=[self._notes[k] for k in sorted(self._notes)],
            )


def count_in_background(progress: Progress, paths: list[str], *, extensions: tuple[str, ...],
                        limit: int | None) -> threading.Thread:
    """Walk ``paths`` on a daemon thread and hint the total to ``progress``, so the display
    shows how many files the run has from its first second, while Ray and Prefect start.

    The flow walks again and sets the same count (missing paths included, as it counts
    them); a walk that fails only logs: the flow's own count follows."""
    from rayflow.stages.discover import discover

    def count() -> None:
        try:
            found = discover([Path(p) for p in paths], extensions=extensions, limit=limit)
        except Exception:  # the flow's discovery reports the same problem as a value
            log.debug("early file count failed", exc_info=True)
            return
        progress.hint_total(len(found.files) + len(found.missing))

    thread = threading.Thread(target=count, name="rayflow-count", daemon=True)
    thread.start()
    return thread


# ----------------------------------------------------------------------------- live.json

LIVE_FILE = "live.json"
"""Under ``<home>/runs/``: the running ingest's latest snapshot, for ``rayflow serve``."""
LIVE_INTERVAL_S = 1.0
"""How often the live file is rewritten. Each write is a few hundred bytes (tmp + rename)."""


def snapshot_dict(snap: Snapshot) -> dict[str, Any]:
    """A snapshot as plain JSON-able data (what ``live.json`` holds under ``progress``)."""
    return {
        "total": snap.total,
        "finished": snap.finished,
        "statuses": dict(snap.statuses),
        "stages": {name: asdict(counts) for name, counts in snap.stages.items()},
        "current": list(snap.current),
        "elapsed_s": round(snap.elapsed_s, 2),
        "files_per_s": round(snap.files_per_s, 4),
        "eta_s": None if snap.eta_s is None else round(snap.eta_s, 1),
        "encodes": {k: round(v, 3) for k, v in snap.encodes.items()},
        "notes": list(snap.notes),
    }


def live_path(home: Path) -> Path:
    return home / "runs" / LIVE_FILE


def _write_json_atomic(target: Path, doc: dict[str, Any]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".live.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, ensure_ascii=False)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class LivePublisher:
    """Writes ``<home>/runs/live.json`` from a :class:`Progress` about once a second.

    A daemon thread, so the flow is never slowed by it; each write is atomic (temp file
    + rename), so a reader sees the previous snapshot or the next, never half of one.
    ``state`` is ``running`` while the run goes, then ``finished`` (or ``failed`` when
    the run raised) with ``finished_at``; the file stays as the last run's final state.
    A killed ingest leaves ``running`` behind: readers check ``pid`` and ``updated_at``
    (see :func:`read_live`). Writing never raises into the run: a full disk only logs."""

    def __init__(self, progress: Progress, home: Path, *, interval_s: float = LIVE_INTERVAL_S) -> None:
        self.progress = progress
        self.path = live_path(home)
        self.interval_s = interval_s
        self.started_at = _now()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rayflow-live", daemon=True)

    def _doc(self, state: str) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "state": state, "pid": os.getpid(), "host": socket.gethostname(),
            "started_at": self.started_at, "updated_at": _now(),
            "progress": snapshot_dict(self.progress.snapshot()),
        }
        if state != "running":
            doc["finished_at"] = doc["updated_at"]
        return doc

    def write(self, state: str = "running") -> None:
        try:
            _write_json_atomic(self.path, self._doc(state))
        except OSError as exc:
            log.warning("cannot write %s: %s", self.path, exc)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.write()

    def start(self) -> LivePublisher:
        self.write()
        self._thread.start()
        return self

    def stop(self, *, ok: bool) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.write("finished" if ok else "failed")


@contextlib.contextmanager
def publish_live(progress: Progress, home: Path) -> Iterator[Progress]:
    """Publish ``progress`` to ``<home>/runs/live.json`` for the body of the ``with``."""
    publisher = LivePublisher(progress, home).start()
    ok = False
    try:
        yield progress
        ok = True
    finally:
        publisher.stop(ok=ok)


STALE_AFTER_S = 15.0
"""A ``running`` live file not rewritten for this long (or whose process is gone) is
reported as ``stale``: the ingest was killed without finishing."""


def read_live(home: Path) -> dict[str, Any] | None:
    """The live file as written, with ``state`` turned to ``stale`` when its ingest is
    gone; None when no ingest ever published here (or the file is unreadable)."""
    path = live_path(home)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    if doc.get("state") == "running":
        age = time.time() - float(doc.get("updated_at") or 0)
        same_host = doc.get("host") == socket.gethostname()
        if age > STALE_AFTER_S or (same_host and not _pid_alive(doc.get("pid"))):
            doc["state"] = "stale"
    doc["age_s"] = round(max(0.0, time.time() - float(doc.get("updated_at") or 0)), 1)
    return doc


def _pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _now() -> float:
    return round(time.time(), 3)
