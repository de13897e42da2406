"""Content fingerprint: BLAKE3 checksum and the clip id derived from it.

Errors here are specific because nothing later can run without a readable file:
a broken symlink, a vanished path, no permission, an empty file or a folder.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rayflow.media.hashing import blake3_file
from rayflow.record import FileInfo, StageName, clip_id_for
from rayflow.stages.base import Resources, Stage


class FingerprintError(Exception):
    """The file cannot be fingerprinted; the message says why in plain words."""


@dataclass(frozen=True)
class Fingerprint:
    clip_id: str
    file: FileInfo


def fingerprint(path: Path) -> Fingerprint:
    """Hash ``path`` and describe it; raise ``FingerprintError`` with a specific reason."""
    if path.is_symlink() and not path.exists():
        raise FingerprintError(f"broken symlink: {path} -> {os.readlink(path)}")
    try:
        st = path.stat()
    except FileNotFoundError as exc:
        raise FingerprintError(f"file vanished or does not exist: {path}") from exc
    except PermissionError as exc:
        raise FingerprintError(f"permission denied: {path}") from exc
    if stat.S_ISDIR(st.st_mode):
        raise FingerprintError(f"is a directory, not a file: {path}")
    if not stat.S_ISREG(st.st_mode):
        raise FingerprintError(f"not a regular file (device, socket or pipe): {path}")
    if st.st_size == 0:
        raise FingerprintError(f"empty file (0 bytes): {path}")
    try:
        checksum = blake3_file(path)
    except FileNotFoundError as exc:
        raise FingerprintError(f"file vanished while reading: {path}") from exc
    except PermissionError as exc:
        raise FingerprintError(f"permission denied: {path}") from exc
    except OSError as exc:
        raise FingerprintError(f"read error: {exc.strerror or exc}: {path}") from exc
    info = FileInfo(
        path=str(path),
        name=path.name,
        size_bytes=st.st_size,
        checksum=checksum,
        modified_at=datetime.fromtimestamp(st.st_mtime, tz=UTC),
    )
    return Fingerprint(clip_id=clip_id_for(checksum), file=info)


class FingerprintStage(Stage[Path, Fingerprint]):
    """``fingerprint`` as a stage: one CPU streaming BLAKE3 over the file (no setup; the
    engine runs it as a plain Ray task, many files per task). Raises ``FingerprintError``."""

    name: StageName = "fingerprint"
    resources = Resources(cpus=1)

    def process(self, item: Path) -> Fingerprint:
        return fingerprint(item)
