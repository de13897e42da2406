"""The Qdrant catalog: one point per clip (payload = the record), same code for
embedded local mode (on disk under the home) and a Qdrant server.

Local mode allows one process at a time, so during an ingest only the
``CatalogWriter`` actor opens it; ``CatalogBusy`` tells other processes why they
cannot, and what to do.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from qdrant_client import QdrantClient, models

from rayflow.record import ClipRecord

log = logging.getLogger(__name__)

CLIPS = "clips"
TEXT_DIM = 384
"""Dimension of the default text embedder (all-MiniLM-L6-v2); vectors arrive with the embed stage."""

#: Payload fields people filter by; indexed on a Qdrant server (local mode scans).
PAYLOAD_INDEXES: dict[str, models.PayloadSchemaType] = {
    "file.path": models.PayloadSchemaType.KEYWORD,
    "file.checksum": models.PayloadSchemaType.KEYWORD,
    "status": models.PayloadSchemaType.KEYWORD,
    "kind": models.PayloadSchemaType.KEYWORD,
    "video.codec": models.PayloadSchemaType.KEYWORD,
    "video.width": models.PayloadSchemaType.INTEGER,
    "video.height": models.PayloadSchemaType.INTEGER,
    "video.duration_s": models.PayloadSchemaType.FLOAT,
    "video.hdr.is_hdr": models.PayloadSchemaType.BOOL,
    "camera.make": models.PayloadSchemaType.KEYWORD,
    "camera.model": models.PayloadSchemaType.KEYWORD,
    "capture.created_at": models.PayloadSchemaType.DATETIME,
}


class CatalogBusy(RuntimeError):
    """The embedded catalog is open in another process."""


def connect(*, path: Path | None, url: str | None, api_key: str | None = None) -> QdrantClient:
    """Open the catalog: a server when ``url`` is set, else local mode at ``path``."""
    if url:
        return QdrantClient(url=url, api_key=api_key, timeout=30)
    assert path is not None
    path.mkdir(parents=True, exist_ok=True)
    try:
        return QdrantClient(path=str(path))
    except RuntimeError as exc:
        if "already accessed" in str(exc):
            raise CatalogBusy(
                f"the catalog at {path} is open in another rayflow process (embedded Qdrant "
                "allows one process at a time); wait for it to finish, or run a Qdrant server "
                "and pass --qdrant-url to share the catalog"
            ) from exc
        raise


class Catalog:
    """Typed access to the clips collection."""

    def __init__(self, client: QdrantClient, *, local: bool) -> None:
        self.client = client
        self.local = local
        self.ensure_schema()

    @classmethod
    def open(cls, *, path: Path | None, url: str | None, api_key: str | None = None) -> Catalog:
        return cls(connect(path=path, url=url, api_key=api_key), local=url is None)

    def ensure_schema(self) -> None:
        if not self.client.collection_exists(CLIPS):
            self.client.create_collection(
                CLIPS,
                vectors_config={
                    "summary": models.VectorParams(size=TEXT_DIM, distance=models.Distance.COSINE),
                    "technical": models.VectorParams(size=TEXT_DIM, distance=models.Distance.COSINE),
                },
            )
            if not self.local:
                for field_name, schema in PAYLOAD_INDEXES.items():
                    self.client.create_payload_index(CLIPS, field_name, schema)
        elif self.local:
            warnings.filterwarnings("ignore", message="Payload indexes have no effect")

    def close(self) -> None:
        self.client.close()

    def upsert(self, records: Iterable[ClipRecord]) -> int:
        points = [
            models.PointStruct(id=r.clip_id, vector={}, payload=r.model_dump(mode="json"))
            for r in records
        ]
        if points:
            self.client.upsert(CLIPS, points=points, wait=True)
        return len(points)

    def get(self, clip_id: str) -> ClipRecord | None:
        found = self.client.retrieve(CLIPS, [clip_id], with_payload=True)
        return ClipRecord.model_validate(found[0].payload) if found else None

    def statuses(self, clip_ids: list[str]) -> dict[str, str]:
        """clip_id -> stored status (``ingested``/``failed``) for those already catalogued."""
        if not clip_ids:
            return {}
        found = self.client.retrieve(CLIPS, clip_ids, with_payload=["status", "file"])
        return {str(p.id): str((p.payload or {}).get("status", "ingested")) for p in found}

    def stored_path(self, clip_id: str) -> str | None:
        found = self.client.retrieve(CLIPS, [clip_id], with_payload=["file"])
        return str(found[0].payload["file"]["path"]) if found and found[0].payload else None

    def find_by_path(self, path: str) -> ClipRecord | None:
        points, _ = self.client.scroll(
            CLIPS,
            scroll_filter=models.Filter(
                must=[models.FieldCondition(key="file.path", match=models.MatchValue(value=path))]
            ),
            limit=1,
            with_payload=True,
        )
        return ClipRecord.model_validate(points[0].payload) if points else None

    def count(self) -> int:
        return int(self.client.count(CLIPS, exact=True).count)

    def iter_records(self, *, batch: int = 256) -> Iterator[ClipRecord]:
        offset: Any = None
        while True:
            points, offset = self.client.scroll(CLIPS, limit=batch, offset=offset, with_payload=True)
            for point in points:
                yield ClipRecord.model_validate(point.payload)
            if offset is None:
                return


def write_sidecar(record: ClipRecord, records_dir: Path) -> Path:
    """Write ``<records_dir>/<clip_id>.json`` atomically (temp file in the same dir + rename)."""
    records_dir.mkdir(parents=True, exist_ok=True)
    target = records_dir / f"{record.clip_id}.json"
    fd, tmp = tempfile.mkstemp(prefix=f".{record.clip_id}.", suffix=".tmp", dir=records_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(record.model_dump(mode="json"), fh, indent=2, ensure_ascii=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
