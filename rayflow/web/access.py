"""How ``rayflow serve`` reads the catalog without getting in an ingest's way.

Embedded Qdrant allows ONE process at a time, and a running ingest's
``CatalogWriter`` actor must be that process. So the server:

1. Never opens the embedded catalog while an ingest holds the home
   (``<home>/ingest.lock`` names a live pid). It reads the JSON sidecars in
   ``output/records/`` instead, so listing and clip pages keep working; search and
   "similar" need the vectors and answer 503 "catalog busy" until the ingest ends.
2. Otherwise opens it on demand and releases it after ``idle_release_s`` without a
   request (default 2 s), so ``rayflow search`` / ``rayflow ingest`` in a terminal
   find it free while the page sits idle. A burst of requests (a page load) shares
   one open, which matters: opening local mode loads every point into memory.
3. A watcher thread polls the home lock every ``poll_s`` (0.5 s) and releases the
   catalog as soon as an ingest starts. The ingest opens its writer only after
   starting Prefect and Ray (seconds), so the server is out of the way by then.
   Residual race: a request already inside a query when the ingest starts keeps the
   catalog for that query's length (well under a second on a laptop-sized catalog);
   an ingest whose writer opens inside that window fails with "catalog busy" at
   startup, before any file is touched, and can simply be re-run.

With ``--qdrant-url`` none of this applies: a Qdrant server takes any number of
readers beside the ingest, so the client stays open.

The server never creates a catalog: an absent ``<home>/catalog`` is reported as
"no catalog yet" (the sidecars, if any, are still listed).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from rayflow.catalog.store import Catalog, CatalogBusy
from rayflow.config import Settings
from rayflow.record import ClipRecord

log = logging.getLogger(__name__)

IDLE_RELEASE_S = 2.0
"""Seconds without a request after which the embedded catalog is closed again."""
POLL_S = 0.5
"""How often the watcher looks for a starting ingest (and idle time)."""


class CatalogUnavailable(RuntimeError):
    """The catalog cannot be opened now; the message says why and what still works."""


def ingest_pid(home: Path) -> int | None:
    """The pid of the ingest holding ``<home>/ingest.lock``, or None when none runs.

    Reads the pid the lock holder writes (``session.home_lock``) instead of probing the
    lock with ``flock``: a probe would itself hold the lock for an instant and could make
    a starting ingest fail with "another ingest is running"."""
    try:
        text = (home / "ingest.lock").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    if not text.startswith("pid "):
        return None
    try:
        pid = int(text[4:])
    except ValueError:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None  # killed without releasing: the lock is free
    except PermissionError:
        return pid
    return pid


class CatalogAccess:
    """Opens the catalog for a request, shares it across a burst, releases it when idle
    or when an ingest starts. Thread-safe: one request uses the client at a time
    (Starlette runs sync endpoints in a thread pool)."""

    def __init__(self, settings: Settings, *, idle_release_s: float = IDLE_RELEASE_S,
                 poll_s: float = POLL_S) -> None:
        self.settings = settings
        self.idle_release_s = idle_release_s
        self.poll_s = poll_s
        self._lock = threading.RLock()
        self._catalog: Catalog | None = None
        self._last_used = 0.0
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self.opens = 0
        """How many times the catalog was opened (tests and the status endpoint read it)."""

    @property
    def shared(self) -> bool:
        """True for a Qdrant server (any number of readers beside the ingest)."""
        return bool(self.settings.qdrant_url)

    @property
    def is_open(self) -> bool:
        return self._catalog is not None

    def start(self) -> CatalogAccess:
        if self._watcher is None and not self.shared:
            self._watcher = threading.Thread(target=self._watch, name="rayflow-serve-catalog", daemon=True)
            self._watcher.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
            self._watcher = None
        with self._lock:
            self._release()

    def unavailable_reason(self) -> str | None:
        """Why the catalog cannot be opened now (None when it probably can)."""
        if self.shared:
            return None
        pid = ingest_pid(self.settings.home)
        if pid is not None:
            return (f"an ingest is running on this home (pid {pid}); the embedded catalog allows one process, "
                    "so pages come from the JSON records and search is back when it finishes")
        if not self.settings.catalog_dir.is_dir():
            return f"no catalog yet at {self.settings.catalog_dir}; run `rayflow ingest` first"
        return None

    @contextlib.contextmanager
    def open(self) -> Iterator[Catalog]:
        """The catalog for one request; raises :class:`CatalogUnavailable` with the reason."""
        with self._lock:
            reason = self.unavailable_reason()
            if reason is not None:
                self._release()
                raise CatalogUnavailable(reason)
            if self._catalog is None:
                try:
                    self._catalog = Catalog.open(path=self.settings.catalog_dir, url=self.settings.qdrant_url,
                                                 api_key=self.settings.qdrant_api_key)
                except CatalogBusy as exc:
                    raise CatalogUnavailable(
                        "another rayflow process has the embedded catalog open (e.g. `rayflow search` or "
                        f"`reindex`); pages come from the JSON records meanwhile ({exc})") from exc
                self.opens += 1
            try:
                yield self._catalog
            finally:
                self._last_used = time.monotonic()

    def _release(self) -> None:
        if self._catalog is not None:
            try:
                self._catalog.close()
            finally:
                self._catalog = None
            log.debug("catalog released")

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_s):
            if self._catalog is None:
                continue
            idle = time.monotonic() - self._last_used > self.idle_release_s
            if idle or ingest_pid(self.settings.home) is not None:
                # Blocks while a request is using the client; the next one reopens if it may.
                with self._lock:
                    self._release()


class SidecarRecords:
    """Records read from ``output/records/<clip_id>.json`` (the fallback while the catalog is
    busy). Parsed records are cached by file mtime, so repeated listings cost a ``stat`` each."""

    def __init__(self, records_dir: Path) -> None:
        self.records_dir = records_dir
        self._cache: dict[str, tuple[int, ClipRecord]] = {}
        self._lock = threading.Lock()

    def _load(self, path: Path) -> ClipRecord | None:
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            return None
        with self._lock:
            cached = self._cache.get(path.name)
        if cached and cached[0] == mtime:
            return cached[1]
        try:
            record = ClipRecord.model_validate_json(path.read_bytes())
        except (OSError, ValueError) as exc:
            log.warning("unreadable record %s: %s", path, exc)
            return None
        with self._lock:
            self._cache[path.name] = (mtime, record)
        return record

    def all(self) -> list[ClipRecord]:
        if not self.records_dir.is_dir():
            return []
        out = []
        for path in self.records_dir.glob("*.json"):
            record = self._load(path)
            if record is not None:
                out.append(record)
        return out

    def get(self, clip_id: str) -> ClipRecord | None:
        """``clip_id`` must already be validated as a UUID (it becomes a file name)."""
        path = self.records_dir / f"{clip_id}.json"
        return self._load(path) if path.is_file() else None
