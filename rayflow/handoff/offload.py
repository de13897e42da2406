"""Verified card offload: copy a card to one or more destinations, hash while copying, read back.

Each card file is read once and written to every destination, where each block is read
back from the drive as soon as it is on it (:mod:`rayflow.handoff.copier` says exactly
what is verified); only a part whose read-back matches the card is renamed into place.
So a target that exists was verified when it was written: a killed offload resumes by
re-checking the finished files and copying the rest, and a file already at the target
that differs is reported, never overwritten. Each destination gets one ASC MHL
generation per run (:mod:`rayflow.handoff.mhl`), written after its last file.

Layout: ``CARD`` (a folder) lands in ``DEST/<CARD name>/`` with its folder structure.
"""

from __future__ import annotations

import errno
import os
import shutil
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeGuard

from rayflow.handoff import mhl
from rayflow.handoff.copier import (
    CHUNK_BYTES,
    PART_SUFFIX,
    SEGMENT_BYTES,
    WINDOW_BYTES,
    Destination,
    FileResult,
    HashFormat,
    Progress,
    copy_file,
    hash_file,
    new_hasher,
    part_path,
)

__all__ = ["CHUNK_BYTES", "HASH_FORMATS", "PART_SUFFIX", "FileResult", "HashFormat", "OffloadEnvError",
           "OffloadReport", "card_files", "hash_file", "is_hash_format", "new_hasher", "offload", "part_path"]

HASH_FORMATS: tuple[HashFormat, ...] = ("xxh128", "xxh64")
SKIP_NAMES = frozenset({".DS_Store", mhl.FOLDER})

class OffloadEnvError(Exception):
    """The offload cannot start: card missing, destination read-only or too small (exit 3)."""


@dataclass
class OffloadReport:
    card: Path
    roots: list[Path]
    hash_format: HashFormat
    files: list[FileResult] = field(default_factory=list)
    manifests: list[Path] = field(default_factory=list)
    bytes_read: int = 0

    @property
    def failed(self) -> list[FileResult]:
        return [f for f in self.files if f.status == "failed"]


def is_hash_format(value: str) -> TypeGuard[HashFormat]:
    """True for a hash format rayflow computes (``HASH_FORMATS``)."""
    return value in HASH_FORMATS


def card_files(card: Path) -> list[tuple[str, int]]:
    """(POSIX relative path, size) of every regular file on the card, sorted; skips history/.DS_Store."""
    found = []
    for top, dirs, names in os.walk(card):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_NAMES)
        for name in sorted(names):
            path = Path(top) / name
            if name in SKIP_NAMES or name.endswith(PART_SUFFIX) or not path.is_file() or path.is_symlink():
                continue
            found.append((path.relative_to(card).as_posix(), path.stat().st_size))
    return found


def dest_roots(card: Path, dests: list[Path]) -> list[Path]:
    name = card.resolve().name or "card"
    return [d / name for d in dests]


def preflight(card: Path, roots: list[Path], files: list[tuple[str, int]]) -> None:
    """Raise :class:`OffloadEnvError` naming the fix when a copy cannot succeed."""
    if not card.is_dir():
        raise OffloadEnvError(f"card {card} is not a folder")
    for root in roots:
        if root.resolve().is_relative_to(card.resolve()):
            raise OffloadEnvError(f"destination {root} is inside the card {card}")
        try:
            root.mkdir(parents=True, exist_ok=True)
            probe = root / f".rayflow-write-probe{PART_SUFFIX}"
            probe.write_bytes(b"x")
            probe.unlink()
        except OSError as exc:
            kind = "read-only" if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM) else "not writable"
            raise OffloadEnvError(f"destination {root.parent} is {kind}: {exc.strerror}") from exc
        needed = sum(size for rel, size in files if not (root / rel).exists())
        free = shutil.disk_usage(root).free
        if needed > free:
            raise OffloadEnvError(f"destination {root.parent} is too small: {_size(needed)} to copy, "
                                  f"{_size(free)} free; free space or pick another drive")


def _size(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.2f} MB"


def write_manifests(report: OffloadReport) -> None:
    """One ASC MHL generation per destination listing every file verified there in this run."""
    for root in report.roots:
        done = [f for f in report.files if f.dest == root and f.status != "failed" and f.digest]
        if not done:
            continue
        before = mhl.latest_hashes(root)
        entries = []
        for f in done:
            old = before.get(f.rel)
            action = "verified" if old is not None and old.digest == f.digest else "original"
            stat = (root / f.rel).stat()
            entries.append(mhl.HashEntry(f.rel, f.size_bytes, report.hash_format, f.digest or "", action,
                                         _utc(stat.st_mtime)))
        report.manifests.append(mhl.write_generation(root, entries, comment=f"offload of {report.card}"))


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def offload(card: Path, dests: list[Path], *, hash_format: HashFormat = "xxh128",
            chunk_bytes: int = CHUNK_BYTES, window_bytes: int = WINDOW_BYTES,
            segment_bytes: int = SEGMENT_BYTES, on_bytes: Progress | None = None) -> OffloadReport:
    """Copy ``card`` into ``DEST/<card name>/`` for each dest, verified, and write each ASC MHL.

    The card is read once; each destination's verifier thread reads back what was written
    there, ``segment_bytes`` at a time, while the card read goes on (at most ``window_bytes``
    behind). Per-file failures
    (a differing file already there, a full disk mid-copy, a bad read) are values in the
    report; a destination that cannot take the card at all raises :class:`OffloadEnvError`
    first, and one that fills up mid-run gets no further files ("skipped").
    """
    files = card_files(card) if card.is_dir() else []
    roots = dest_roots(card, dests)
    preflight(card, roots, files)
    report = OffloadReport(card=card, roots=roots, hash_format=hash_format)
    drives = [Destination(root, hash_format, chunk_bytes, window_bytes, segment_bytes) for root in roots]
    slots: list[FileResult | Future[FileResult]] = []
    try:
        for rel, size in files:
            slots.extend(FileResult(rel, d.root, size, "failed", error=f"skipped: {d.full}")
                         for d in drives if d.full)
            live = [d for d in drives if not d.full]
            if live:
                slots.extend(copy_file(card, rel, size, live, hash_format, on_bytes=on_bytes))
                report.bytes_read += size
    finally:
        for d in drives:
            d.close()
    report.files = [s if isinstance(s, FileResult) else s.result() for s in slots]
    write_manifests(report)
    return report
