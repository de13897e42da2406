"""Streaming BLAKE3 content hashes (multi-threaded for big files, bounded memory)."""

from __future__ import annotations

from pathlib import Path

import blake3

CHUNK_BYTES = 8 * 1024 * 1024
"""Read size; 8 MiB keeps memory flat and lets BLAKE3 use several threads per chunk."""


def blake3_file(path: Path, *, chunk_bytes: int = CHUNK_BYTES) -> str:
    """Hex BLAKE3 digest of the file's content, read in ``chunk_bytes`` pieces."""
    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    with path.open("rb", buffering=0) as fh:
        buf = bytearray(chunk_bytes)
        view = memoryview(buf)
        while True:
            n = fh.readinto(buf)
            if not n:
                break
            hasher.update(view[:n])
    return hasher.hexdigest()
