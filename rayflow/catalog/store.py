"""The Qdrant catalog: one point per clip (payload = the record) and one per moment,
same code for embedded local mode (on disk under the home) and a Qdrant server.

Layout (collections, named vectors, payload keys, indexes) lives in
:mod:`rayflow.catalog.schema`. Local mode allows one process at a time, so during an
ingest only the ``CatalogWriter`` actor opens it; ``CatalogBusy`` tells other
processes why they cannot, and what to do (run a Qdrant server).

What differs between the modes, and what does not:

- Same calls, same results: filters, dense search, RRF fusion and BM25 keyword
  ranking (a text index with ``scoring``, Qdrant >= 1.20) work in both.
- Speed: local mode keeps only the text index; it scans payloads for filters and
  re-tokenizes every ``_text`` per keyword query (~50 ms per 4k moments, ~140 ms per
  1k clips with transcripts). Fine to ~10k clips; beyond, use a server (HNSW and
  payload indexes).
- Concurrency: a server takes any number of readers and writers; local mode one
  process (``CatalogBusy``).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from rayflow.catalog import schema
from rayflow.catalog.errors import ModelMismatch as ModelMismatch
from rayflow.catalog.local_records import CatalogBusy as CatalogBusy
from rayflow.catalog.local_records import busy_message
from rayflow.catalog.local_records import record_from_payload as record_from_payload
from rayflow.catalog.moments import Moment, build_moments, clip_texts, moment_keywords, moment_point_id
from rayflow.catalog.schema import CLIPS, MOMENTS, CatalogMeta
from rayflow.record import ClipRecord

if TYPE_CHECKING:
    from rayflow.catalog.vectors import ClipVectors

log = logging.getLogger(__name__)

TEXT_DIM = schema.DEFAULT_TEXT_DIM
"""Dimension of the default text embedder (all-MiniLM-L6-v2)."""
UPSERT_BATCH = 256
"""Points per upsert request: big enough to amortise a request, small enough for 32 MB request limits."""

#: Kept for callers of the first catalog version; the indexes now live in ``schema``.
PAYLOAD_INDEXES = {**schema.CLIPS_EXTRA_INDEXES, **schema.FILTER_INDEXES}

_LOCAL_INDEX_WARNING = "Payload indexes have no effect"


def connect(*, path: Path | None, url: str | None, api_key: str | None = None) -> QdrantClient:
    """Open the catalog: a server when ``url`` is set, else local mode at ``path``."""
    if url:
        return QdrantClient(url=url, api_key=api_key, timeout=30)
    assert path is not None
    path.mkdir(parents=True, exist_ok=True)
    _import_portalocker_without_redis()
    try:
        return QdrantClient(path=str(path))
    except RuntimeError as exc:
        if "already accessed" in str(exc):
            raise CatalogBusy(busy_message(path)) from exc
        raise


def clip_payload(record: ClipRecord) -> dict[str, Any]:
    """Payload of a clip point: the record, its filter fields and its keyword text."""
    payload = record.model_dump(mode="json")
    payload[schema.FILTER_KEY] = schema.filter_payload(record)
    payload[schema.TEXT_KEY] = clip_texts(record).keywords
    return payload


def moment_payload(record: ClipRecord, moment: Moment, filters: dict[str, Any]) -> dict[str, Any]:
    """Payload of a moment point (the filter fields are the clip's, copied)."""
    return {
        "clip_id": record.clip_id,
        "index": moment.index,
        "kind": moment.kind,
        "start_s": moment.start_s,
        "end_s": moment.end_s,
        "text": moment.text,
        "speech": moment.speech,
        "screen_text": moment.screen_text,
        "tags": list(moment.tags),
        "shot_index": moment.shot_index,
        "thumbnail": moment.thumbnail_path,
        "thumbnail_s": moment.thumbnail_s,
        "file": {"path": record.file.path, "name": record.file.name},
        schema.FILTER_KEY: filters,
        schema.TEXT_KEY: moment_keywords(record, moment),
    }


def _vec(array: Any) -> list[float]:
    return [float(x) for x in array]


def _import_portalocker_without_redis() -> None:
    """Embedded Qdrant locks its folder with portalocker, whose ``__init__`` imports redis (there
    through prefect) for an optional ``RedisLock`` nothing here uses: 0.1-0.5 s of CPU per
    command. Hiding redis while portalocker is first imported takes its documented no-redis
    path (a stub ``RedisLock``); redis itself stays importable afterwards."""
    if "portalocker" in sys.modules or "redis" in sys.modules:
        return
    sys.modules["redis"] = None  # type: ignore[assignment]  # `import redis` now raises ImportError
    try:
        import portalocker  # noqa: F401
    finally:
        if "redis" in sys.modules and sys.modules["redis"] is None:
            del sys.modules["redis"]


class Catalog:
    """Typed access to the ``clips`` and ``moments`` collections."""

    def __init__(self, client: QdrantClient, *, local: bool, meta: CatalogMeta | None = None) -> None:
        self.client = client
        self.local = local
        self._meta: CatalogMeta | None = None
        if local:
            warnings.filterwarnings("ignore", message=_LOCAL_INDEX_WARNING)
        self.ensure_schema(meta)

    @classmethod
    def open(cls, *, path: Path | None, url: str | None, api_key: str | None = None) -> Catalog:
        return cls(connect(path=path, url=url, api_key=api_key), local=url is None)

    # ------------------------------------------------------------------ schema

    def _create(self, name: str, vectors: dict[str, models.VectorParams], meta: CatalogMeta,
                indexes: dict[str, models.PayloadSchemaType]) -> None:
        try:
            self.client.create_collection(name, vectors_config=vectors, metadata=meta.to_payload())
        except UnexpectedResponse as exc:  # another process created it first (server mode)
            if exc.status_code != 409 and not self.client.collection_exists(name):
                raise
            return
        self._ensure_indexes(name, indexes, existing=set())

    def _ensure_indexes(self, name: str, indexes: dict[str, models.PayloadSchemaType],
                        existing: set[str]) -> None:
        # The same calls in both modes; local mode keeps only the BM25 text index and
        # scans payloads for the others (its warning about that is silenced above).
        if schema.TEXT_KEY not in existing:
            try:
                self.client.create_payload_index(name, schema.TEXT_KEY, schema.TEXT_INDEX)
            except UnexpectedResponse as exc:  # a server older than 1.20: no BM25 scoring
                log.warning("Qdrant refused a BM25 text index on %s (%s): keyword and hybrid search need "
                            "Qdrant >= 1.20; semantic search and filters work", name, exc)
        for field_name, field_schema in indexes.items():
            if field_name not in existing:
                self.client.create_payload_index(name, field_name, field_schema)

    def ensure_schema(self, meta: CatalogMeta | None = None) -> None:
        """Create the collections (with ``meta``, default: the packaged text model) when missing.

        On a server, payload indexes a newer rayflow added are created on open; local
        mode creates its text index with the collection."""
        meta = meta or CatalogMeta()
        existing = self.meta
        if existing is not None:
            meta = existing
        clip_indexes = {**schema.CLIPS_EXTRA_INDEXES, **schema.FILTER_INDEXES}
        moment_indexes = {**schema.MOMENTS_EXTRA_INDEXES, **schema.FILTER_INDEXES}
        for name, vectors, indexes in ((CLIPS, schema.clips_vectors(meta), clip_indexes),
                                       (MOMENTS, schema.moments_vectors(meta), moment_indexes)):
            if not self.client.collection_exists(name):
                self._create(name, vectors, meta, indexes)
            elif not self.local:
                have = set(self.client.get_collection(name).payload_schema or {})
                self._ensure_indexes(name, indexes, have)

    @property
    def meta(self) -> CatalogMeta | None:
        """Which models made the stored vectors; None for a catalog from before vectors existed.

        Read once per open (and after ``recreate``); another process reindexing a shared
        server catalog meanwhile makes this process's writes fail on the vector size."""
        if self._meta is None and self.client.collection_exists(CLIPS):
            self._meta = CatalogMeta.from_payload(self.client.get_collection(CLIPS).config.metadata)
        return self._meta

    def needs_reindex(self, *, text_model: str, text_dim: int | None = None) -> str | None:
        """Why the stored vectors cannot be compared with ``text_model``'s (None when they can)."""
        meta = self.meta
        if meta is None or meta.schema != schema.CATALOG_SCHEMA:
            return "the catalog was built by an older rayflow"
        if meta.text_model != text_model or (text_dim is not None and meta.text_dim != text_dim):
            return (f"the catalog's vectors were made by {meta.text_model} ({meta.text_dim}-d), "
                    f"the configured text model is {text_model}" + (f" ({text_dim}-d)" if text_dim else ""))
        return None

    def check_model(self, *, text_model: str, text_dim: int | None = None) -> None:
        """Raise :class:`ModelMismatch` (saying to run ``rayflow reindex``) when the models differ."""
        reason = self.needs_reindex(text_model=text_model, text_dim=text_dim)
        if reason:
            raise ModelMismatch(f"{reason}; run `rayflow reindex` to re-embed from the stored records")

    def recreate(self, meta: CatalogMeta) -> None:
        """Drop both collections and create them empty for ``meta`` (reindex only)."""
        for name in (CLIPS, MOMENTS):
            if self.client.collection_exists(name):
                self.client.delete_collection(name)
        self._meta = None
        self.ensure_schema(meta)

    def close(self) -> None:
        self.client.close()

    # ------------------------------------------------------------------ writes

    def upsert(self, records: Iterable[ClipRecord], vectors: Sequence[ClipVectors | None] | None = None) -> int:
        """Write clips and their moments; returns the number of clips written.

        ``vectors``, when given, lines up with ``records`` (a None entry: that record
        has no vectors). Without vectors a clip is stored without them (keyword search
        and filters still find it; ``rayflow reindex`` embeds it later), and any old
        vectors of that clip are replaced. Moments are written before the clip point,
        and moments left over from an earlier, longer version of the clip are deleted,
        so re-ingest never duplicates. Raises :class:`ModelMismatch` when the vectors
        come from a model other than the catalog's."""
        records = list(records)
        if not records:
            return 0
        per_record: list[ClipVectors | None] = list(vectors) if vectors is not None else [None] * len(records)
        if len(per_record) != len(records):
            raise ValueError(f"{len(per_record)} vector sets for {len(records)} records")
        if any(v is not None for v in per_record):
            self._check_vectors([v for v in per_record if v is not None])
        clip_points: list[models.PointStruct] = []
        moment_points: list[models.PointStruct] = []
        counts: dict[str, int] = {}
        for record, vec in zip(records, per_record, strict=True):
            if vec is not None and vec.clip_id != record.clip_id:
                raise ValueError(f"vectors of {vec.clip_id} given for record {record.clip_id}")
            filters = schema.filter_payload(record)
            moments = build_moments(record)
            if vec is not None and len(vec.moments) != len(moments):
                raise ValueError(f"{record.clip_id}: {len(vec.moments)} moment vectors for {len(moments)} moments")
            clip_points.append(models.PointStruct(
                id=record.clip_id, vector=self._clip_vectors(vec), payload=clip_payload(record)))
            for moment in moments:
                moment_points.append(models.PointStruct(
                    id=moment_point_id(record.clip_id, moment.index),
                    vector=self._moment_vectors(vec, moment.index),
                    payload=moment_payload(record, moment, filters),
                ))
            counts[record.clip_id] = len(moments)
        stale = self._stale_moments(counts)
        for start in range(0, len(moment_points), UPSERT_BATCH):
            self.client.upsert(MOMENTS, points=moment_points[start:start + UPSERT_BATCH], wait=True)
        if stale:
            self.client.delete(MOMENTS, points_selector=models.PointIdsList(points=stale), wait=True)
        for start in range(0, len(clip_points), UPSERT_BATCH):
            self.client.upsert(CLIPS, points=clip_points[start:start + UPSERT_BATCH], wait=True)
        return len(clip_points)

    def _stale_moments(self, counts: dict[str, int]) -> list[models.ExtendedPointId]:
        """Stored moments of these clips beyond their new count (left by a longer earlier version).

        One scroll on ``clip_id`` (a single indexed condition) instead of a delete by a
        per-clip ``index >= n`` filter, which local mode evaluates point by point per clip."""
        stale: list[models.ExtendedPointId] = []
        offset: Any = None
        flt = models.Filter(must=[models.FieldCondition(key="clip_id", match=models.MatchAny(any=list(counts)))])
        while True:
            points, offset = self.client.scroll(MOMENTS, scroll_filter=flt, limit=1024, offset=offset,
                                                with_payload=["clip_id", "index"])
            for point in points:
                payload = point.payload or {}
                if int(payload.get("index", 0)) >= counts.get(str(payload.get("clip_id")), 0):
                    stale.append(point.id)
            if offset is None:
                return stale

    def _check_vectors(self, vectors: list[ClipVectors]) -> None:
        """Vectors must come from the catalog's models. An empty catalog adopts theirs
        (a first ingest with a configured model needs no reindex); a filled one raises."""
        first = vectors[0]
        image_dim = next((len(v.image) for v in vectors if v.image is not None), None)
        wanted = CatalogMeta(text_model=first.model_id, text_dim=first.dim,
                             image_model=first.image_model_id if image_dim else None, image_dim=image_dim)
        meta = self.meta
        if meta is None or meta.schema != schema.CATALOG_SCHEMA:
            if self.count() == 0:
                log.info("empty catalog without model metadata: creating it for %s", wanted)
                self.recreate(wanted)
                meta = wanted
            else:
                raise ModelMismatch("the catalog was built by an older rayflow; run `rayflow reindex` first")
        for vec in vectors:
            text_differs = vec.model_id != meta.text_model or vec.dim != meta.text_dim
            image_differs = bool(vec.image_model_id) and vec.image_model_id != meta.image_model
            if (text_differs or image_differs) and meta != wanted and self.count() == 0:
                log.info("empty catalog: switching it from %s to %s", meta, wanted)
                self.recreate(wanted)
                return self._check_vectors(vectors)
            if text_differs:
                raise ModelMismatch(
                    f"vectors from {vec.model_id} ({vec.dim}-d) but the catalog holds {meta.text_model} "
                    f"({meta.text_dim}-d); run `rayflow reindex` to switch the catalog to the configured model"
                )
            if image_differs:
                raise ModelMismatch(
                    f"image vectors from {vec.image_model_id} but the catalog's image model is "
                    f"{meta.image_model}; run `rayflow reindex`"
                )

    @staticmethod
    def _clip_vectors(vec: ClipVectors | None) -> dict[str, list[float]]:
        if vec is None:
            return {}
        out = {schema.SUMMARY: _vec(vec.summary), schema.TECHNICAL: _vec(vec.technical)}
        if vec.transcript is not None:
            out[schema.TRANSCRIPT] = _vec(vec.transcript)
        if vec.image is not None:
            out[schema.IMAGE] = _vec(vec.image)
        return out

    @staticmethod
    def _moment_vectors(vec: ClipVectors | None, index: int) -> dict[str, list[float]]:
        if vec is None:
            return {}
        out = {schema.TEXT: _vec(vec.moments[index])}
        if vec.moment_images and vec.moment_images[index] is not None:
            out[schema.IMAGE] = _vec(vec.moment_images[index])
        return out

    def delete(self, clip_id: str) -> bool:
        """Remove a clip's point and all its moments; True when the clip was catalogued."""
        existed = bool(self.client.retrieve(CLIPS, [clip_id], with_payload=False))
        self.client.delete(MOMENTS, points_selector=models.FilterSelector(filter=models.Filter(must=[
            models.FieldCondition(key="clip_id", match=models.MatchValue(value=clip_id))])), wait=True)
        self.client.delete(CLIPS, points_selector=models.PointIdsList(points=[clip_id]), wait=True)
        return existed

    def reindex(self, embed: Callable[[list[ClipRecord]], Sequence[ClipVectors | None]], meta: CatalogMeta,
                *, backup: Path, batch: int = 64, on_batch: Callable[[int, int], None] | None = None) -> int:
        """Re-embed every stored record with ``embed`` into collections rebuilt for ``meta``.

        Records come from the stored payloads (no video is decoded). They are first
        written to ``backup`` (JSON lines); if a previous reindex died midway, that file
        is the source instead, so nothing is lost. ``on_batch(done, total)`` reports
        progress. Returns the number of clips re-embedded."""
        if backup.is_file():
            log.warning("resuming an interrupted reindex from %s", backup)
            with backup.open(encoding="utf-8") as fh:
                records = [ClipRecord.model_validate_json(line) for line in fh if line.strip()]
        else:
            records = list(self.iter_records())
            backup.parent.mkdir(parents=True, exist_ok=True)
            tmp = backup.with_suffix(".tmp")
            with tmp.open("w", encoding="utf-8") as fh:
                for record in records:
                    fh.write(record.model_dump_json() + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, backup)
        self.recreate(meta)
        done = 0
        for start in range(0, len(records), batch):
            chunk = records[start:start + batch]
            self.upsert(chunk, list(embed(chunk)))
            done += len(chunk)
            if on_batch:
                on_batch(done, len(records))
        backup.unlink(missing_ok=True)
        return done

    # ------------------------------------------------------------------ reads

    def get(self, clip_id: str) -> ClipRecord | None:
        found = self.client.retrieve(CLIPS, [clip_id], with_payload=True)
        return record_from_payload(found[0].payload) if found else None

    def statuses(self, clip_ids: list[str]) -> dict[str, dict[str, str | None]]:
        """For clip ids already catalogued: stored ``status`` (ingested/failed) and ``path``,
        in one query for the whole batch."""
        if not clip_ids:
            return {}
        found = self.client.retrieve(CLIPS, clip_ids, with_payload=["status", "file"])
        out: dict[str, dict[str, str | None]] = {}
        for point in found:
            payload = point.payload or {}
            path = (payload.get("file") or {}).get("path")
            out[str(point.id)] = {"status": str(payload.get("status", "ingested")),
                                  "path": str(path) if path is not None else None}
        return out

    def find_by_path(self, path: str) -> ClipRecord | None:
        points, _ = self.client.scroll(
            CLIPS,
            scroll_filter=models.Filter(
                must=[models.FieldCondition(key="file.path", match=models.MatchValue(value=path))]
            ),
            limit=1,
            with_payload=True,
        )
        return record_from_payload(points[0].payload) if points else None

    def resolve(self, clip: str) -> str | None:
        """A clip id from a full id, a unique id prefix (8+ chars) or a stored file path."""
        if len(clip) == 36 and self.client.retrieve(CLIPS, [clip], with_payload=False):
            return clip
        record = self.find_by_path(os.path.abspath(os.path.expanduser(clip)))
        if record is not None:
            return record.clip_id
        if len(clip) >= 8:
            matches = [cid for cid in self.iter_clip_ids() if cid.startswith(clip.lower())]
            if len(matches) == 1:
                return matches[0]
        return None

    def count(self, collection: str = CLIPS) -> int:
        return int(self.client.count(collection, exact=True).count)

    def iter_clip_ids(self, *, batch: int = 1024) -> Iterator[str]:
        offset: Any = None
        while True:
            points, offset = self.client.scroll(CLIPS, limit=batch, offset=offset, with_payload=False)
            yield from (str(p.id) for p in points)
            if offset is None:
                return

    def iter_records(self, *, batch: int = 256) -> Iterator[ClipRecord]:
        offset: Any = None
        while True:
            points, offset = self.client.scroll(CLIPS, limit=batch, offset=offset, with_payload=True)
            for point in points:
                yield record_from_payload(point.payload)
            if offset is None:
                return

    def moments(self, clip_id: str) -> list[dict[str, Any]]:
        """The stored moment payloads of a clip, by index."""
        points, _ = self.client.scroll(
            MOMENTS,
            scroll_filter=models.Filter(must=[
                models.FieldCondition(key="clip_id", match=models.MatchValue(value=clip_id))]),
            limit=10_000, with_payload=True,
        )
        return sorted((p.payload or {} for p in points), key=lambda p: p.get("index", 0))

    def vectors(self, clip_id: str) -> dict[str, list[float]]:
        """The named vectors stored for a clip ({} when it has none)."""
        found = self.client.retrieve(CLIPS, [clip_id], with_payload=False, with_vectors=True)
        if not found or not isinstance(found[0].vector, dict):
            return {}
        return {k: list(v) for k, v in found[0].vector.items() if _is_dense(v)}


def _is_dense(vector: object) -> TypeGuard[list[float]]:
    """A dense vector (a list of numbers), not a multi-vector (a list of lists) or a sparse one."""
    return isinstance(vector, list) and all(isinstance(x, (int, float)) for x in vector)


def write_sidecar(record: ClipRecord, records_dir: Path) -> Path:
    """Write ``<records_dir>/<clip_id>.json`` atomically (temp file in the same dir + rename)."""
    records_dir.mkdir(parents=True, exist_ok=True)
    target = records_dir / f"{record.clip_id}.json"
    data = json.dumps(record.model_dump(mode="json"), indent=2, ensure_ascii=False).encode("utf-8")
    atomic_write_bytes(target, data)
    return target


def atomic_write_bytes(target: Path, data: bytes) -> None:
    """Write ``target`` through a hidden temp file in its folder, fsync, rename.

    A failure (disk full, read-only folder) or a kill leaves ``target`` as it was; a
    failure also removes the temp file (a kill leaves it, and the next run sweeps it)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
