"""A full disk (a real 1 MB tmpfs) and a read-only output (a real read-only bind mount):
each write fails with a clear error, leaves no partial or temp file, and once space is
back the next file is written normally. Needs root (mount); skipped with the reason if not."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from rayflow.catalog.store import Catalog, write_sidecar
from rayflow.catalog.verify import verify
from rayflow.config import ProxySettings, ThumbnailSettings
from rayflow.engine.actors import CatalogWriter
from rayflow.media.decode import decode_frames
from rayflow.media.encoders import detect_encoders
from rayflow.media.tools import ToolError
from rayflow.record import ClipRecord, FileInfo
from rayflow.stages.proxy import ProxySource, make_proxy
from rayflow.stages.thumbnails import write_thumbnails
from tests.hostile import clip


def _mount(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount here ({' '.join(argv[:3])}): {proc.stderr.strip()}")


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    _mount(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)])
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], timeout=30, check=False)


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[Path]:
    _mount(["mount", "--bind", "-o", "ro", str(path), str(path)])
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], timeout=30, check=False)


def _fill(folder: Path, leave_bytes: int) -> Path:
    """Fill the file system of ``folder`` until ``leave_bytes`` are left."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    filler = folder / "filler.bin"
    with filler.open("wb") as fh:
        fh.write(b"\0" * max(0, free - leave_bytes))
    return filler


def _record(clip_id: str) -> ClipRecord:
    return ClipRecord(clip_id=clip_id, run_id="r",
                      file=FileInfo(path="/x.mp4", name="x.mp4", size_bytes=1, checksum="0" * 64))


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("src") / "src.mp4"
    clip(path, hue=120, seconds=2.0, size="320x240")
    return path


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and p.name != "filler.bin"]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_full_disk_fails_each_write_cleanly_and_later_files_recover(source: Path, tmp_path: Path) -> None:
    frames = decode_frames(source, timestamps_s=None, count=6, max_side=320, rotation=0, timeout_s=60)
    with tmpfs(tmp_path / "out", "1m") as out:
        filler = _fill(out, 2048)
        with pytest.raises(OSError) as exc:
            write_thumbnails(frames, out / "clips" / "a", ThumbnailSettings())
        assert exc.value.errno == errno.ENOSPC
        with pytest.raises(OSError) as exc:
            write_sidecar(_record("00000000-0000-5000-8000-000000000001"), out / "records")
        assert exc.value.errno == errno.ENOSPC
        plan = detect_encoders(("libx264",), timeout_s=60)
        src = ProxySource(width=320, height=240, fps=25.0, duration_s=2.0, video_codec="h264", pix_fmt="yuv420p")
        with pytest.raises(ToolError, match="No space left on device"):
            make_proxy(source, out_dir=out / "clips" / "a", source=src, settings=ProxySettings(), plan=plan,
                       threads=1, timeout_s=120)
        # Nothing half-written: no thumbnail, no sidecar, no proxy, no temp file.
        assert _leftovers(out) == []
        # Space is back: the next file is written normally.
        filler.unlink()
        thumbs = write_thumbnails(frames, out / "clips" / "b", ThumbnailSettings())
        assert thumbs and all(Path(t.path).stat().st_size > 0 for t in thumbs)
        write_sidecar(_record("00000000-0000-5000-8000-000000000002"), out / "records")


@pytest.mark.skipif(os.geteuid() != 0, reason="a read-only bind mount needs root")
def test_a_read_only_output_fails_writes_and_keeps_catalog_and_records_consistent(
        source: Path, tmp_path: Path) -> None:
    output = tmp_path / "output"
    (output / "records").mkdir(parents=True)
    (output / "clips").mkdir()
    writer = CatalogWriter(str(tmp_path / "catalog"), None, None, str(output / "records"))
    try:
        writer.write([_record("00000000-0000-5000-8000-000000000001")])
        frames = decode_frames(source, timestamps_s=None, count=4, max_side=320, rotation=0, timeout_s=60)
        with read_only(output):
            with pytest.raises(OSError) as exc:
                write_thumbnails(frames, output / "clips" / "00000000-0000-5000-8000-000000000002",
                                 ThumbnailSettings())
            assert exc.value.errno in (errno.EROFS, errno.EACCES)
            with pytest.raises(OSError) as exc:
                writer.write([_record("00000000-0000-5000-8000-000000000002")])
            assert exc.value.errno == errno.EROFS
        assert writer.count() == 1  # no point without its record
    finally:
        writer.close()
    catalog = Catalog.open(path=tmp_path / "catalog", url=None)
    try:
        report = verify(catalog, output)
    finally:
        catalog.close()
    assert report.findings == [] and report.points == report.records == 1
