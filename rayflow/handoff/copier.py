"""One read of a card file, written to every destination and read back from each drive as it lands.

The card is read once, in ``chunk_bytes`` blocks; each block feeds the card's xxHash (on a
hash thread, while the next block is read and this one written) and is written to a hidden
``.<name>.rayflow-part`` in every destination. Each destination has two
threads of its own, so drives never wait for each other and the card read waits for a
drive only when more than ``window_bytes`` there are still unchecked. Every
``segment_bytes`` of a part (and its last piece), the *fsync thread* waits until that range
is on the drive (``sync_file_range`` with both waits) and drops it from the page cache
(``posix_fadvise(DONTNEED)``: clean pages are dropped for real); the *verifier thread* then
re-reads the range from the drive into the part's own hash. At the end of the file the fsync
thread fsyncs the part (metadata, the drive's write cache) and the verifier compares the two
hashes; only then is the part renamed into place. So the check of segment N runs while
segment N+1 is synced and N+2 read from the card, inside one big clip as across small files.

What is verified: every byte read back from each destination drive, after it was written
there and dropped from memory, equals what was read from the card (read once; its digest
is the one in the MHL), as DIT tools' destination verification does. Not verified: the
drive's own cache (nothing in userspace can read past it). Without ``sync_file_range``
(not Linux) each segment waits on an ``fdatasync`` of the file; without ``posix_fadvise``
(macOS) the re-read may come from memory.
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import xxhash

HashFormat = Literal["xxh128", "xxh64"]
CHUNK_BYTES = 1024 * 1024
"""Card read / write block: 1 MiB took 0.9-1.5 s for a 256 MB card on the 2-core dev VM, 8 MiB
2.3-2.5 s (larger blocks stall on dirty-page writeback)."""
SEGMENT_BYTES = 32 * 1024 * 1024
"""Unit of the read-back: a file is synced and read back in segments of this size as the card
read goes on, so a 4 GB clip is verified while it is copied, not after it (a file smaller
than this is one segment)."""
WINDOW_BYTES = 96 * 1024 * 1024
"""Per destination: bytes written but not yet read back before the card read waits."""
PART_SUFFIX = ".rayflow-part"

_WAIT_BEFORE, _WRITE, _WAIT_AFTER = 1, 2, 4  # SYNC_FILE_RANGE_* from <fcntl.h>
_HASHING = ThreadPoolExecutor(max_workers=1, thread_name_prefix="offload-card-hash")
"""Hashes the card's blocks in order (one thread: xxhash updates must not interleave)."""

Status = Literal["copied", "present", "failed"]
Progress = Callable[[str, int], None]
"""Called with (relative path, bytes just read from the card)."""


@dataclass
class FileResult:
    """One card file in one destination: what was observed, never what was intended."""

    rel: str
    dest: Path
    size_bytes: int
    status: Status
    digest: str | None = None
    error: str | None = None


def new_hasher(fmt: HashFormat) -> xxhash.xxh3_128 | xxhash.xxh64:
    match fmt:
        case "xxh128":
            return xxhash.xxh3_128()
        case "xxh64":
            return xxhash.xxh64()
        case _:
            raise ValueError(f"unknown hash format {fmt!r} (use xxh128 or xxh64)")


def _libc_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):  # not Linux
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn  # type: ignore[no-any-return]


_SYNC_FILE_RANGE = _libc_sync_file_range()


def wait_written(fd: int, offset: int, length: int) -> None:
    """Return once a range of ``fd`` is written to the drive (``sync_file_range`` with both waits;
    ``fdatasync`` of the whole file where that call is missing)."""
    if _SYNC_FILE_RANGE is None:
        os.fdatasync(fd)
    elif _SYNC_FILE_RANGE(fd, offset, length, _WAIT_BEFORE | _WRITE | _WAIT_AFTER) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def drop_cache(fd: int, offset: int = 0, length: int = 0) -> None:
    """Drop the clean cached pages of ``fd`` (a range, or all with ``length`` 0) where the OS can."""
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)


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
            drop_cache(fh.fileno())
        while n := fh.readinto(buf):
            hasher.update(view[:n])
    return hasher.hexdigest()


def os_error(exc: OSError, target: Path) -> str:
    match exc.errno:
        case errno.ENOSPC | errno.EDQUOT:
            return f"destination full while writing {target}"
        case errno.EROFS:
            return f"destination read-only: {target}"
        case errno.EACCES | errno.EPERM:
            return f"permission denied: {target}"
        case _:
            return f"{exc.strerror or exc} ({target})"


def part_path(target: Path) -> Path:
    return target.with_name(f".{target.name}{PART_SUFFIX}")


@dataclass
class _Part:
    """One card file being written to one destination (its part file, open read-write)."""

    target: Path
    fd: int | None
    hasher: xxhash.xxh3_128 | xxhash.xxh64
    read_back: int = 0
    written: int = 0
    queued: int = 0
    """Bytes handed to the fsync/verifier threads (segments), of ``written``."""
    error: str | None = None


@dataclass
class Destination:
    """One destination root, its fsync and verifier threads and its backlog bound."""

    root: Path
    fmt: HashFormat
    chunk_bytes: int = CHUNK_BYTES
    window_bytes: int = WINDOW_BYTES
    segment_bytes: int = SEGMENT_BYTES
    full: str | None = None
    """Set (to the error) once the drive reported full: later files are skipped there."""
    _sync_pool: ThreadPoolExecutor = field(init=False)
    _pool: ThreadPoolExecutor = field(init=False)
    _room: threading.Condition = field(init=False)
    _backlog: int = field(init=False, default=0)
    _buf: bytearray = field(init=False)

    def __post_init__(self) -> None:
        self._sync_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="offload-fsync")
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="offload-verify")
        self._room = threading.Condition()
        self._buf = bytearray(self.chunk_bytes)

    def close(self) -> None:
        self._sync_pool.shutdown(wait=True)
        self._pool.shutdown(wait=True)

    def _wait_room(self) -> None:
        """Block the card read while more than ``window_bytes`` here await their read-back."""
        with self._room:
            while self._backlog > self.window_bytes:
                self._room.wait()

    def _add_backlog(self, n: int) -> None:
        with self._room:
            self._backlog += n
            if n < 0:
                self._room.notify_all()

    def open_part(self, rel: str) -> _Part:
        target = self.root / rel
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(part_path(target), os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            part = _Part(target, None, new_hasher(self.fmt))
            self._fail(part, exc)
            return part
        return _Part(target, fd, new_hasher(self.fmt))

    def write(self, part: _Part, view: memoryview) -> None:
        """Write one card block to the part; hand each full segment to the fsync/verifier threads."""
        if part.error is not None or part.fd is None:
            return
        self._wait_room()
        try:
            done = 0
            while done < len(view):
                done += os.write(part.fd, view[done:])
        except OSError as exc:
            self._fail(part, exc)
            return
        part.written += len(view)
        if part.written - part.queued >= self.segment_bytes:
            self._queue_segment(part)

    def _queue_segment(self, part: _Part) -> None:
        offset, length = part.queued, part.written - part.queued
        part.queued = part.written
        self._add_backlog(length)
        synced = self._sync_pool.submit(self._sync_range, part, offset, length)
        self._pool.submit(self._verify_range, part, offset, length, synced)

    def _fail(self, part: _Part, exc: OSError) -> None:
        part.error = part.error or os_error(exc, part.target)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            self.full = self.full or part.error

    def _sync_range(self, part: _Part, offset: int, length: int) -> None:
        """fsync thread: wait until the segment is on the drive, then drop it from the page cache."""
        if part.error is not None or part.fd is None:
            return
        try:
            wait_written(part.fd, offset, length)
            drop_cache(part.fd, offset, length)
        except OSError as exc:
            self._fail(part, exc)

    def _verify_range(self, part: _Part, offset: int, length: int, synced: Future[None]) -> None:
        """Verifier thread: re-read the segment from the drive into the part's own hash (in order)."""
        try:
            synced.result()
            if part.error is not None or part.fd is None:
                return
            view = memoryview(self._buf)
            got = 0
            while got < length:
                n = os.preadv(part.fd, [view[:min(len(view), length - got)]], offset + got)
                if n == 0:
                    part.error = f"read-back of {part.target} ended at byte {offset + got}"
                    return
                part.hasher.update(view[:n])
                got += n
            part.read_back += got
        except OSError as exc:
            self._fail(part, exc)
        finally:
            self._add_backlog(-length)

    def _sync_all(self, part: _Part) -> None:
        """fsync thread, at the end of a file: its metadata and the drive's write cache."""
        if part.error is not None or part.fd is None:
            return
        try:
            os.fsync(part.fd)
        except OSError as exc:
            self._fail(part, exc)

    def finish(self, rel: str, size: int, part: _Part | None, digest: str | None,
               card_error: str | None, mtime: float) -> Future[FileResult]:
        """Queue the end of one card file here: last segment, fsync, compare, rename (in order)."""
        if part is None:  # a target already there is re-hashed by the verifier: count it
            self._add_backlog(size)
            return self._pool.submit(self._settle_present, rel, size, digest, card_error)
        if part.error is None and part.written > part.queued:
            self._queue_segment(part)
        synced = self._sync_pool.submit(self._sync_all, part)
        return self._pool.submit(self._finish, rel, size, part, digest, card_error, mtime, synced)

    def _settle_present(self, rel: str, size: int, digest: str | None, card_error: str | None) -> FileResult:
        try:
            if card_error is not None or digest is None:
                return FileResult(rel, self.root, size, "failed", digest, card_error or "card read failed")
            target = self.root / rel  # verified when it was written; checked against the card now
            seen = hash_file(target, self.fmt, chunk_bytes=self.chunk_bytes)
            if seen == digest:
                return FileResult(rel, self.root, size, "present", digest)
            return FileResult(rel, self.root, size, "failed", digest,
                              f"{target} exists and differs from the card ({self.fmt} {seen}); not overwritten")
        finally:
            self._add_backlog(-size)

    def _finish(self, rel: str, size: int, part: _Part, digest: str | None, card_error: str | None,
                mtime: float, synced: Future[None]) -> FileResult:
        synced.result()
        target = self.root / rel
        if card_error is not None or digest is None:
            _discard(part)
            return FileResult(rel, self.root, size, "failed", digest, card_error or "card read failed")
        seen = part.hasher.hexdigest()
        if part.error is None and (part.read_back != size or seen != digest):
            part.error = (f"read-back of {target} gave {part.read_back} bytes, {self.fmt} {seen}; "
                          f"the card {size} bytes, {digest}")
        if part.error is not None:
            _discard(part)
            return FileResult(rel, self.root, size, "failed", digest, part.error)
        assert part.fd is not None
        os.close(part.fd)
        part.fd = None
        source = part_path(target)
        os.utime(source, (mtime, mtime))
        source.replace(target)
        return FileResult(rel, self.root, size, "copied", digest)


def _discard(part: _Part) -> None:
    if part.fd is not None:
        os.close(part.fd)
        part.fd = None
    part_path(part.target).unlink(missing_ok=True)


def copy_file(card: Path, rel: str, size: int, dests: list[Destination], fmt: HashFormat, *,
              on_bytes: Progress | None = None) -> list[Future[FileResult]]:
    """Read one card file once into every destination where it is missing; one future per destination.

    A target that already exists is not written: its future re-hashes it against the card.
    """
    parts = {id(d): d.open_part(rel) for d in dests if not (d.root / rel).exists()}
    chunk_bytes = max(d.chunk_bytes for d in dests)
    hasher = new_hasher(fmt)
    # Two blocks in turn: the card's hash of one (xxhash lets go of the GIL) runs on the hash
    # thread while the other is read and written, so hashing adds no time to the card read.
    views = [memoryview(bytearray(chunk_bytes)) for _ in range(2)]
    hashed: list[Future[None] | None] = [None, None]
    card_error = None
    try:
        with (card / rel).open("rb", buffering=0) as fh:
            if hasattr(os, "posix_fadvise"):
                os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
            turn = 0
            while True:
                pending = hashed[turn]
                if pending is not None:
                    pending.result()  # that block is hashed: it may be read into again
                view = views[turn]
                if not (n := fh.readinto(view)):
                    break
                hashed[turn] = _HASHING.submit(hasher.update, view[:n])
                for d in dests:
                    if id(d) in parts:
                        d.write(parts[id(d)], view[:n])
                if on_bytes:
                    on_bytes(rel, n)
                turn = 1 - turn
            drop_cache(fh.fileno())  # the card's pages are not needed again
        mtime = (card / rel).stat().st_mtime
    except OSError as exc:  # the card itself failed to read: nothing will be renamed into place
        card_error, mtime = f"card read failed: {exc.strerror or exc}", 0.0
    for pending in hashed:
        if pending is not None:
            pending.result()
    digest = None if card_error else hasher.hexdigest()
    return [d.finish(rel, size, parts.get(id(d)), digest, card_error, mtime) for d in dests]
