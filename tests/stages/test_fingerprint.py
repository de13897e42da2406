from __future__ import annotations

import os
import re
from pathlib import Path

import blake3
import pytest

from rayflow.record import clip_id_for
from rayflow.stages.fingerprint import FingerprintError, fingerprint


def test_checksum_is_blake3_of_content_and_clip_id_is_deterministic(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    a = tmp_path / "a.mp4"
    b = tmp_path / "copy of a.mp4"
    a.write_bytes(data)
    b.write_bytes(data)
    fa, fb = fingerprint(a), fingerprint(b)
    assert fa.file.checksum == blake3.blake3(data).hexdigest()
    assert fa.clip_id == fb.clip_id == clip_id_for(fa.file.checksum)
    assert fa.file.size_bytes == len(data)
    assert fa.file.path == str(a)


def test_large_file_hash_matches_across_chunks(tmp_path: Path) -> None:
    data = os.urandom(9 * 1024 * 1024)
    p = tmp_path / "big.mov"
    p.write_bytes(data)
    assert fingerprint(p).file.checksum == blake3.blake3(data).hexdigest()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: (d / "empty.mp4").write_bytes(b"") and None or d / "empty.mp4", "empty file (0 bytes)"),
        (lambda d: (d / "dir.mov").mkdir() or d / "dir.mov", "is a directory"),
        (lambda d: os.symlink(d / "missing", d / "link.mp4") or d / "link.mp4", "broken symlink"),
        (lambda d: d / "never-existed.mp4", "does not exist"),
    ],
)
def test_specific_errors(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    path = make(tmp_path)
    with pytest.raises(FingerprintError, match=re.escape(message)):
        fingerprint(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(tmp_path: Path) -> None:
    p = tmp_path / "locked.mp4"
    p.write_bytes(b"data")
    p.chmod(0)
    with pytest.raises(FingerprintError, match="permission denied"):
        fingerprint(p)
