"""Ray actors rayflow owns. ``CatalogWriter`` is the single writer to Qdrant.

Embedded Qdrant allows one process, so exactly one actor opens the catalog, pinned
to the driver's node (where the home lives). Writes are upserts keyed by clip id,
so a restarted actor or a retried call cannot duplicate anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from rayflow.catalog.store import Catalog, write_sidecar
from rayflow.record import ClipRecord


class CatalogWriter:
    """Owns the catalog connection for the length of a run; batches upserts."""

    def __init__(self, catalog_dir: str | None, qdrant_url: str | None, api_key: str | None,
                 records_dir: str) -> None:
        self.catalog = Catalog.open(
            path=Path(catalog_dir) if catalog_dir else None, url=qdrant_url, api_key=api_key
        )
        self.records_dir = Path(records_dir)

    def statuses(self, clip_ids: list[str]) -> dict[str, dict[str, Any]]:
        """For clip ids already catalogued: their stored status and path."""
        return dict(self.catalog.statuses(clip_ids))

    def write(self, records: list[ClipRecord], vectors: list[Any] | None = None) -> int:
        """Sidecar first, then the catalog point (and its moments): a killed write leaves
        no point, so a re-run redoes the file; a sidecar without a point is overwritten."""
        for record in records:
            write_sidecar(record, self.records_dir)
        if vectors is None:
            return self.catalog.upsert(records)
        return self.catalog.upsert(records, vectors=vectors)

    def check_model(self, text_model: str, text_dim: int) -> None:
        """Fail before the first file when the catalog was built with another text model."""
        self.catalog.check_model(text_model=text_model, text_dim=text_dim)

    def count(self) -> int:
        return self.catalog.count()

    def close(self) -> None:
        self.catalog.close()


def start_catalog_writer(*, catalog_dir: Path | None, qdrant_url: str | None,
                         api_key: str | None, records_dir: Path) -> tuple[Any, Any]:
    """Start the writer on this (the driver's) node; retried calls are safe (upserts).

    Returns the actor and a ref that resolves once the catalog is open (``ray.get``
    it to surface ``CatalogBusy`` or a bad URL before the first file)."""
    node_id = ray.get_runtime_context().get_node_id()
    actor_cls = ray.remote(CatalogWriter).options(
        num_cpus=0,
        max_restarts=2,
        max_task_retries=2,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node_id, soft=False),
    )
    writer = actor_cls.remote(
        str(catalog_dir) if catalog_dir else None, qdrant_url, api_key, str(records_dir)
    )
    return writer, writer.count.remote()


def stop_catalog_writer(writer: Any) -> None:
    try:
        ray.get(writer.close.remote(), timeout=30)
    finally:
        ray.kill(writer, no_restart=True)
