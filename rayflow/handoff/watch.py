"""Watch folders: hand each new file to the ingest once it has stopped growing.

A file is *ready* when its size and mtime have not changed for ``settle_s`` seconds
(measured between polls; a camera or a copy still writing keeps changing both) and it
is not empty. What was handed over is remembered in a JSON state file under the home
(path, size, mtime, outcome), so a restarted watch skips files it already ingested and
picks up the ones that changed since. Polling (not inotify) so network mounts and
removable drives work the same.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from rayflow.stages.discover import discover

STATE_NAME = "watch.json"
DEFAULT_SETTLE_S = 5.0
"""Seconds a file must keep its size and mtime; a USB 2 card reader writes ~30 MB/s, so 5 s is many chunks."""


@dataclass
class _Seen:
    size: int
    mtime_ns: int
    stable_since: float


@dataclass
class Watcher:
    """Polls ``dirs`` for media files (``extensions``) and says which are ready to ingest."""

    dirs: list[Path]
    state_path: Path
    extensions: tuple[str, ...]
    settle_s: float = DEFAULT_SETTLE_S
    done: dict[str, dict[str, object]] = field(default_factory=dict)
    _pending: dict[str, _Seen] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            self.done = json.loads(self.state_path.read_text()).get("files", {})
        except (OSError, ValueError):
            self.done = {}

    def _handled(self, key: str, size: int, mtime_ns: int) -> bool:
        entry = self.done.get(key) or {}
        return entry.get("size") == size and entry.get("mtime_ns") == mtime_ns

    def poll(self, now: float | None = None) -> list[Path]:
        """Files that are ready now (stable for ``settle_s``, not handled before in this state)."""
        now = time.monotonic() if now is None else now
        ready, present = [], set()
        for path in discover(self.dirs, extensions=self.extensions).files:
            key = str(path.resolve())
            try:
                st = path.stat()
            except OSError:
                continue
            present.add(key)
            if st.st_size == 0 or self._handled(key, st.st_size, st.st_mtime_ns):
                self._pending.pop(key, None)
                continue
            seen = self._pending.get(key)
            if seen is None or (seen.size, seen.mtime_ns) != (st.st_size, st.st_mtime_ns):
                self._pending[key] = _Seen(st.st_size, st.st_mtime_ns, now)
            elif now - seen.stable_since >= self.settle_s:
                ready.append(Path(key))
        for gone in set(self._pending) - present:
            del self._pending[gone]
        return ready

    @property
    def waiting(self) -> int:
        """Files seen but not yet settled."""
        return len(self._pending)

    def mark(self, paths: list[Path], outcome: str) -> None:
        """Remember ``paths`` as handed over with ``outcome`` (persisted atomically)."""
        for path in paths:
            key = str(path)
            seen = self._pending.pop(key, None)
            try:
                st = path.stat()
                size, mtime_ns = st.st_size, st.st_mtime_ns
            except OSError:
                size, mtime_ns = (seen.size, seen.mtime_ns) if seen else (0, 0)
            self.done[key] = {"size": size, "mtime_ns": mtime_ns, "outcome": outcome, "at": time.time()}
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_name(f".{self.state_path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"dirs": [str(d) for d in self.dirs], "files": self.done}, indent=1))
        tmp.replace(self.state_path)
