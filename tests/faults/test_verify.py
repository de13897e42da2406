"""The consistency checker against a real embedded Qdrant catalog and real files, with each
kind of damage made by hand; and the CatalogWriter's rollback when the catalog write fails."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rayflow.catalog.store import Catalog, write_sidecar
from rayflow.catalog.verify import verify
from rayflow.engine.actors import CatalogWriter
from rayflow.record import ClipRecord, FileInfo, Thumbnail


def _record(n: int, clips: Path) -> ClipRecord:
    clip_id = f"00000000-0000-5000-8000-{n:012d}"
    folder = clips / clip_id
    folder.mkdir(parents=True)
    thumb = folder / "thumb_00_0.500s.jpg"
    Image.fromarray(np.full((24, 32, 3), n * 40 % 255, np.uint8)).save(thumb)
    return ClipRecord(
        clip_id=clip_id, run_id="run-1", ingested_at=datetime(2026, 1, 1, tzinfo=UTC),
        file=FileInfo(path=f"/footage/c{n}.mp4", name=f"c{n}.mp4", size_bytes=10, checksum=f"{n:064x}"),
        thumbnails=[Thumbnail(path=str(thumb), timestamp_s=0.5, width=32, height=24, format="jpeg")],
    )


@pytest.fixture
def home(tmp_path: Path):  # type: ignore[no-untyped-def]
    output = tmp_path / "output"
    records = [_record(n, output / "clips") for n in range(5)]
    catalog = Catalog.open(path=tmp_path / "catalog", url=None)
    for record in records:
        write_sidecar(record, output / "records")
    catalog.upsert(records)
    yield catalog, output, records
    catalog.close()


def test_a_healthy_home_has_no_findings(home) -> None:  # type: ignore[no-untyped-def]
    catalog, output, _ = home
    report = verify(catalog, output, deep=True)
    assert report.ok and report.findings == []
    assert (report.points, report.records, report.clip_dirs) == (5, 5, 5)


def test_every_kind_of_damage_is_found_and_temp_files_cleaned(home) -> None:  # type: ignore[no-untyped-def]
    catalog, output, records = home
    records_dir, clips = output / "records", output / "clips"
    (records_dir / f"{records[0].clip_id}.json").unlink()  # point without record
    catalog.client.delete("clips", points_selector=[records[1].clip_id])  # record without point
    (records_dir / "ffffffff-0000-5000-8000-000000000000.json").write_text('{"clip_id": "ffff')  # half a sidecar
    Path(records[2].thumbnails[0].path).unlink()  # missing output
    Path(records[3].thumbnails[0].path).write_bytes(b"\xff\xd8\xff\xe0 not really")  # damaged image
    (clips / "0badc0de").mkdir()  # clip folder of nothing
    (clips / records[4].clip_id / "stray.bin").write_bytes(b"x")
    later = records[4].model_copy(update={"run_id": "run-2"})
    write_sidecar(later, records_dir)  # sidecar from a later write than the point
    (records_dir / f".{records[4].clip_id}.abcd.tmp").write_text("{")  # interrupted write
    report = verify(catalog, output, deep=True, clean=True)
    kinds = report.counts()
    assert kinds == {"point_without_record": 1, "record_without_point": 1, "bad_record": 1,
                     "missing_output": 1, "bad_output": 1, "orphan_clip_dir": 2, "stray_output": 1,
                     "record_mismatch": 1}, kinds
    # (records[1]'s folder is an orphan too: its point is gone.)
    assert len(report.temp_files) == 1 and report.cleaned == report.temp_files
    assert not list(records_dir.glob(".*.tmp"))


def test_the_writer_rolls_back_sidecars_when_the_catalog_write_fails(tmp_path: Path) -> None:
    output = tmp_path / "output"
    old, new = _record(1, output / "clips"), _record(2, output / "clips")
    writer = CatalogWriter(str(tmp_path / "catalog"), None, None, str(output / "records"))
    try:
        writer.write([old])
        before = (output / "records" / f"{old.clip_id}.json").read_bytes()
        changed = old.model_copy(update={"run_id": "run-2"})

        def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
            raise OSError(28, "No space left on device")

        writer.catalog.upsert = broken  # type: ignore[method-assign]
        with pytest.raises(OSError, match="No space left"):
            writer.write([changed, new])
        # The overwritten sidecar is back as it was; the new one is gone; no temp files.
        assert (output / "records" / f"{old.clip_id}.json").read_bytes() == before
        assert not (output / "records" / f"{new.clip_id}.json").exists()
        assert not list((output / "records").glob(".*"))
        assert json.loads(before)["run_id"] == "run-1"
    finally:
        writer.close()


def test_the_writer_sweeps_temp_files_of_a_killed_run(tmp_path: Path) -> None:
    output = tmp_path / "output"
    rec = _record(1, output / "clips")
    (output / "records").mkdir(parents=True)
    leftovers = [output / "records" / f".{rec.clip_id}.x1.tmp",
                 output / "clips" / rec.clip_id / ".thumb_abc.tmp",
                 output / "clips" / rec.clip_id / ".proxy.mp4.1234.tmp"]
    for path in leftovers:
        path.write_bytes(b"partial")
    writer = CatalogWriter(str(tmp_path / "catalog"), None, None, str(output / "records"))
    writer.close()
    assert [p for p in leftovers if p.exists()] == []
    shutil.rmtree(output)


def test_the_writer_removes_outputs_its_record_does_not_name(tmp_path: Path) -> None:
    """A proxy put in place by a worker killed before its task returned, the task then lost
    twice: the record says the proxy failed and must not leave a stray ``proxy.mp4`` (the
    soak's ``stray_output`` with kills every 3 s); the resume skips the ingested file."""
    from rayflow.stages.proxy import PROXY_NAME, SIDECAR_NAME
    from rayflow.stages.thumbnails import thumbnail_name

    output = tmp_path / "output"
    rec = _record(1, output / "clips")
    folder = output / "clips" / rec.clip_id
    # Names from the writers' own code; the stages that wrote them failed in this record.
    left = [folder / PROXY_NAME, folder / SIDECAR_NAME, folder / thumbnail_name(1, 0.9, "jpeg")]
    for path in [*left, folder / "best_0.jpg"]:
        path.write_bytes(b"complete, but never recorded")
    (folder / "notes.txt").write_text("not one of ours")
    rec.errors["proxy"] = "worker crashed or was lost (native crash in a tool or library, or killed)"
    rec.errors["thumbnails"] = "OSError: [Errno 28] No space left on device"
    writer = CatalogWriter(str(tmp_path / "catalog"), None, None, str(output / "records"))
    try:
        writer.write([rec])
        assert [p.name for p in left if p.exists()] == []
        # Kept: the named thumbnail, the output of a stage that did not fail here (a re-run that
        # skipped analyze keeps what it made before), and what is not ours; verify still flags those two.
        assert sorted(p.name for p in folder.iterdir()) == ["best_0.jpg", "notes.txt", "thumb_00_0.500s.jpg"]
        report = verify(writer.catalog, output, deep=True)
        assert sorted(f.detail for f in report.findings) == [str(folder / "best_0.jpg"), str(folder / "notes.txt")]
    finally:
        writer.close()


def test_a_failed_write_keeps_the_outputs_of_the_record_rolled_back_to(tmp_path: Path) -> None:
    output = tmp_path / "output"
    rec = _record(1, output / "clips")
    proxy = output / "clips" / rec.clip_id / "proxy.mp4"
    proxy.write_bytes(b"the proxy the stored record names")
    rec.errors["proxy"] = "worker crashed or was lost"
    writer = CatalogWriter(str(tmp_path / "catalog"), None, None, str(output / "records"))
    try:
        writer.write([rec])  # the proxy failed and none is named: pruned...
        assert not proxy.exists()
        proxy.write_bytes(b"a new proxy")
        without = rec.model_copy(update={"run_id": "run-2"})

        def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
            raise OSError(28, "No space left on device")

        writer.catalog.upsert = broken  # type: ignore[method-assign]
        with pytest.raises(OSError):
            writer.write([without])
        assert proxy.exists()  # ...but not by a write that did not happen
    finally:
        writer.close()
