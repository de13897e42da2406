"""Verified card offload: copy a card to one or more destinations, hash while copying, read back.

Each source file is read once; every chunk feeds the xxHash and is written to a hidden
``.<name>.rayflow-part`` beside its target in each destination. The part is fsynced,
dropped from the page cache (so the read-back comes from the disk, not from memory)
and hashed again; only a matching part is renamed into place. So a target that exists
was verified when it was written: a killed offload resumes by re-checking the finished
files and copying the rest, and a file already at the target that differs is reported,
never overwritten. Each destination gets an ASC MHL generation (:mod:`rayflow.handoff.mhl`).

Layout: ``CARD`` (a folder) lands in ``DEST/<CARD name>/`` with its folder structure.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TypeGuard

import xxhash

from rayflow.handoff import mhl

HashFormat = Literal["xxh128", "xxh64"]
HASH_FORMATS: tuple[HashFormat, ...] = ("xxh128", "xxh64")
CHUNK_BYTES = 1024 * 1024
"""Copy/hash block. 1 MiB: on the 2-core dev VM a 256 MB card took 0.9-1.5 s with 1 MiB
blocks against 2.3-2.5 s with 8 MiB (larger blocks stall on dirty-page writeback)."""
PART_SUFFIX = ".rayflow-part"
SKIP_NAMES = frozenset({".DS_Store", mhl.FOLDER})

Status = Literal["copied", "present", "failed"]
Progress = Callable[[str, int], None]
"""Called with (relative path, bytes just read from the card)."""


class OffloadEnvError(Exception):
    """The offload cannot start: card missing, destination read-only or too small (exit 3)."""


@dataclass
class FileResult:
    """One card file in one destination: what was observed, never what was intended."""

    rel: str
    dest: Path
    size_bytes: int
    status: Status
    digest: str | None = None
    error: str | None = None


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


def new_hasher(fmt: HashFormat) -> xxhash.xxh3_128 | xxhash.xxh64:
    match fmt:
        case "xxh128":
            return xxhash.xxh3_128()
        case "xxh64":
            return xxhash.xxh64()
        case _:
            raise ValueError(f"unknown hash format {fmt!r} (use xxh128 or xxh64)")


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


def _drop_cache(fd: int) -> None:
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


def hash_file(path: Path, fmt: HashFormat, *, chunk_bytes: int = CHUNK_BYTES, cold: bool = False,
              sync: bool = False) -> str:
    """Hex digest of ``path``; ``sync`` fsyncs it first, ``cold`` then drops its cached pages
    so the bytes are read back from the disk, not from memory."""
    hasher = new_hasher(fmt)
    buf = bytearray(chunk_bytes)
    view = memoryview(buf)
    with path.open("rb", buffering=0) as fh:
        if sync:
            os.fsync(fh.fileno())
        if cold:
            _drop_cache(fh.fileno())
        while n := fh.readinto(buf):
            hasher.update(view[:n])
    return hasher.hexdigest()


def _os_error(exc: OSError, target: Path) -> str:
    match exc.errno:
        case errno.ENOSPC | errno.EDQUOT:
            return f"destination full while writing {target}"
        case errno.EROFS:
            return f"destination read-only: {target}"
        case errno.EACCES | errno.EPERM:
            return f"permission denied: {target}"
        case _:
            return f"{exc.strerror or exc} ({target})"


def _part_path(target: Path) -> Path:
    return target.with_name(f".{target.name}{PART_SUFFIX}")


def _copy_pass(src: Path, targets: list[Path], fmt: HashFormat, chunk_bytes: int,
               on_bytes: Progress | None, rel: str) -> tuple[str, dict[Path, str]]:
    """Read ``src`` once into every target's part file; (source digest, {target: error})."""
    errors: dict[Path, str] = {}
    handles = {}
    for target in targets:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            handles[target] = _part_path(target).open("wb", buffering=0)
        except OSError as exc:
            errors[target] = _os_error(exc, target)
    hasher = new_hasher(fmt)
    buf = bytearray(chunk_bytes)
    view = memoryview(buf)
    try:
        with src.open("rb", buffering=0) as fh:
            while n := fh.readinto(buf):
                hasher.update(view[:n])
                for target, out in list(handles.items()):
                    try:
                        out.write(view[:n])
                    except OSError as exc:
                        errors[target] = _os_error(exc, target)
                        out.close()
                        del handles[target]
                if on_bytes:
                    on_bytes(rel, n)
            _drop_cache(fh.fileno())  # the card's pages are not needed again
    finally:
        for out in handles.values():
            out.close()
    for target in errors:
        _part_path(target).unlink(missing_ok=True)
    return hasher.hexdigest(), errors


@dataclass
class _Pending:
    """A file whose card read is done and whose copies still need fsync + read-back."""

    card: Path
    rel: str
    size: int
    roots: list[Path]
    fresh: list[Path]
    digest: str | None
    errors: dict[Path, str]
    fmt: HashFormat
    chunk_bytes: int


def start_file(card: Path, rel: str, size: int, roots: list[Path], fmt: HashFormat, *,
               chunk_bytes: int = CHUNK_BYTES, on_bytes: Progress | None = None) -> _Pending:
    """Phase 1: read the card file once, hashing it and writing it to each root where missing."""
    targets = [root / rel for root in roots]
    fresh = [t for t in targets if not t.exists()]
    try:
        digest, errors = _copy_pass(card / rel, fresh, fmt, chunk_bytes, on_bytes, rel)
    except OSError as exc:  # the card itself failed to read: nothing was renamed into place
        for target in fresh:
            _part_path(target).unlink(missing_ok=True)
        reason = f"card read failed: {exc.strerror or exc}"
        return _Pending(card, rel, size, roots, fresh, None, dict.fromkeys(targets, reason), fmt, chunk_bytes)
    return _Pending(card, rel, size, roots, fresh, digest, errors, fmt, chunk_bytes)


def _finish_one(p: _Pending, root: Path, mtime: float) -> FileResult:
    target = root / p.rel
    if target in p.errors:
        return FileResult(p.rel, root, p.size, "failed", p.digest, p.errors[target])
    if target not in p.fresh:
        seen = hash_file(target, p.fmt, chunk_bytes=p.chunk_bytes)
        if seen == p.digest:
            return FileResult(p.rel, root, p.size, "present", p.digest)
        return FileResult(p.rel, root, p.size, "failed", p.digest,
                          f"{target} exists and differs from the card ({p.fmt} {seen}); not overwritten")
    part = _part_path(target)
    try:
        seen = hash_file(part, p.fmt, chunk_bytes=p.chunk_bytes, cold=True, sync=True)
    except OSError as exc:
        part.unlink(missing_ok=True)
        return FileResult(p.rel, root, p.size, "failed", p.digest, _os_error(exc, target))
    if seen != p.digest:
        part.unlink(missing_ok=True)
        return FileResult(p.rel, root, p.size, "failed", p.digest,
                          f"read-back of {target} gave {p.fmt} {seen}, the card {p.digest}")
    os.utime(part, (mtime, mtime))
    part.replace(target)
    return FileResult(p.rel, root, p.size, "copied", p.digest)


def finish_file(p: _Pending) -> list[FileResult]:
    """Phase 2: fsync each new part, read it back cold, rename it into place if it matches."""
    mtime = (p.card / p.rel).stat().st_mtime if p.digest else 0.0
    return [_finish_one(p, root, mtime) for root in p.roots]


def offload_file(card: Path, rel: str, size: int, roots: list[Path], fmt: HashFormat, *,
                 chunk_bytes: int = CHUNK_BYTES, on_bytes: Progress | None = None) -> list[FileResult]:
    """Copy one card file to every root (where missing) with read-back; one result per root."""
    return finish_file(start_file(card, rel, size, roots, fmt, chunk_bytes=chunk_bytes, on_bytes=on_bytes))


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
            chunk_bytes: int = CHUNK_BYTES, on_bytes: Progress | None = None) -> OffloadReport:
    """Copy ``card`` into ``DEST/<card name>/`` for each dest, verified, and write each ASC MHL.

    The read-back of file N runs in a second thread while file N+1 is read from the card
    (at most two files wait for their read-back). Per-file failures (a differing file
    already there, a full disk mid-copy, a bad read) are values in the report; a
    destination that cannot take the card at all raises :class:`OffloadEnvError` first.
    """
    files = card_files(card) if card.is_dir() else []
    roots = dest_roots(card, dests)
    preflight(card, roots, files)
    report = OffloadReport(card=card, roots=roots, hash_format=hash_format)
    full: dict[Path, str] = {}
    waiting: deque[Future[list[FileResult]]] = deque()

    def collect(done: list[FileResult]) -> None:
        for r in done:
            if r.error and r.error.startswith("destination full"):
                full.setdefault(r.dest, r.error)
        report.files.extend(done)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="offload-readback") as pool:
        for rel, size in files:
            live = [r for r in roots if r not in full]
            report.files.extend(FileResult(rel, r, size, "failed", error=f"skipped: {full[r]}")
                                for r in roots if r in full)
            if not live:
                continue
            pending = start_file(card, rel, size, live, hash_format, chunk_bytes=chunk_bytes, on_bytes=on_bytes)
            report.bytes_read += size
            waiting.append(pool.submit(finish_file, pending))
            while len(waiting) > 1:
                collect(waiting.popleft().result())
        while waiting:
            collect(waiting.popleft().result())
    write_manifests(report)
    return report
