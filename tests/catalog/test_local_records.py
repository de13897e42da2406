"""``LocalRecords`` reads the same records as the Qdrant client, from the embedded storage itself.

A real embedded catalog is filled through :class:`Catalog` (records only, no model); the
reader must agree with the client on every record, lookup and order, take the same lock,
and hand over to the client when the files are not what it knows."""

from __future__ import annotations

import pickle
import sqlite3
from pathlib import Path

import pytest

from rayflow.catalog import local_records
from rayflow.catalog.local_records import CatalogBusy, LocalRecords, UnknownStorage, open_records
from rayflow.catalog.store import Catalog
from rayflow.record import ClipRecord
from tests.catalog.corpus import labelled_corpus


@pytest.fixture(scope="module")
def records() -> list[ClipRecord]:
    return labelled_corpus()[0][:6]


@pytest.fixture()
def catalog_dir(tmp_path: Path, records: list[ClipRecord]) -> Path:
    path = tmp_path / "catalog"
    catalog = Catalog.open(path=path, url=None)
    try:
        catalog.upsert(records)
        newer = records[0].model_copy(deep=True)
        newer.file.name = "renamed.mov"  # a second write of one clip: the latest row wins
        catalog.upsert([newer])
        catalog.delete(records[1].clip_id)
    finally:
        catalog.close()
    return path


def _client_view(path: Path) -> tuple[list[ClipRecord], list[str]]:
    catalog = Catalog.open(path=path, url=None)
    try:
        return list(catalog.iter_records()), list(catalog.iter_clip_ids())
    finally:
        catalog.close()


def test_the_reader_agrees_with_the_client(catalog_dir: Path, records: list[ClipRecord]) -> None:
    expected_records, expected_ids = _client_view(catalog_dir)
    reader = LocalRecords.open(catalog_dir)
    try:
        assert list(reader.iter_records()) == expected_records  # same records, same (id) order
        assert list(reader.iter_clip_ids()) == expected_ids
        assert len(expected_ids) == len(records) - 1
        first = reader.get(records[0].clip_id)
        assert first is not None and first.file.name == "renamed.mov"
        assert reader.get(records[1].clip_id) is None  # deleted
        assert reader.get(records[2].clip_id.upper()) == reader.get(records[2].clip_id)  # UUID identity
        found = reader.find_by_path(records[3].file.path)
        assert found is not None and found.clip_id == records[3].clip_id
        assert reader.find_by_path("/nowhere.mov") is None
    finally:
        reader.close()


def test_the_reader_takes_the_catalog_lock(catalog_dir: Path) -> None:
    holder = Catalog.open(path=catalog_dir, url=None)
    try:
        with pytest.raises(CatalogBusy, match="another rayflow process"):
            LocalRecords.open(catalog_dir)
    finally:
        holder.close()
    reader = LocalRecords.open(catalog_dir)
    try:
        with pytest.raises(CatalogBusy):  # ... and holds it, as the client does, until closed
            Catalog.open(path=catalog_dir, url=None)
    finally:
        reader.close()
    Catalog.open(path=catalog_dir, url=None).close()


def test_no_catalog_reads_as_empty_and_creates_nothing(tmp_path: Path) -> None:
    reader = LocalRecords.open(tmp_path / "none")
    assert list(reader.iter_records()) == [] and reader.get("0" * 36) is None
    reader.close()
    assert not (tmp_path / "none").exists()


def test_a_foreign_pickled_class_is_refused(catalog_dir: Path) -> None:
    db = catalog_dir / "collection" / "clips" / "storage.sqlite"
    with sqlite3.connect(db) as conn:  # unpickling anything but a PointStruct could run code
        conn.execute("INSERT INTO points VALUES (?, ?)", ("odd", pickle.dumps(Path("/x"))))
    with pytest.raises(UnknownStorage, match="unexpected class"):
        LocalRecords.open(catalog_dir)


def test_storage_it_does_not_know_is_read_through_the_client(catalog_dir: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    expected, _ = _client_view(catalog_dir)
    monkeypatch.setattr(local_records, "_POINT_CLASS", ("qdrant_client.future", "PointStruct"))
    source = open_records(path=catalog_dir, url=None)
    try:
        assert isinstance(source, Catalog)
        assert list(source.iter_records()) == expected
    finally:
        source.close()


def test_of_two_rows_for_one_clip_the_latest_wins(catalog_dir: Path, records: list[ClipRecord]) -> None:
    from qdrant_client.http import models

    clip = records[2]
    stale = clip.model_copy(deep=True)
    stale.file.name = "stale.mov"
    point = models.PointStruct.model_construct(id=clip.clip_id.upper(), vector={},
                                               payload=stale.model_dump(mode="json"))
    db = catalog_dir / "collection" / "clips" / "storage.sqlite"
    with sqlite3.connect(db) as conn:  # an older client's row under another key, written before
        conn.execute("INSERT INTO points (rowid, id, point) VALUES (0, 'legacy', ?)", (pickle.dumps(point),))
    reader = LocalRecords.open(catalog_dir)
    try:
        found = reader.get(clip.clip_id)
        assert found is not None and found.file.name == clip.file.name
        assert list(reader.iter_clip_ids()).count(clip.clip_id) == 1
    finally:
        reader.close()
