"""Ray actors rayflow owns. ``CatalogWriter`` is the single writer to Qdrant;
``ProgressBoard`` collects encode progress from proxy tasks for the live display.
(The warm model actors, analyzers and embedder, are in ``pools``.)

Embedded Qdrant allows one process, so exactly one actor opens the catalog, pinned
to the driver's node (where the home lives). Writes are upserts keyed by clip id,
so a restarted actor or a retried call cannot duplicate anything.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from rayflow.media.tempfiles import sweep_temp_files
from rayflow.record import ClipRecord

if TYPE_CHECKING:
    from rayflow.catalog.store import Catalog

log = logging.getLogger(__name__)


class CatalogWriter:
    """Owns the catalog connection for the length of a run; batches upserts."""

    def __init__(self, catalog_dir: str | None, qdrant_url: str | None, api_key: str | None,
                 records_dir: str) -> None:
        # Imported here, not at the top: the driver defines this actor the moment Ray is up,
        # before it has paid for qdrant_client (~0.5 s); only the actor's process needs it.
        from rayflow.catalog.store import Catalog

        self.catalog: Catalog = Catalog.open(
            path=Path(catalog_dir) if catalog_dir else None, url=qdrant_url, api_key=api_key
        )
        self.records_dir = Path(records_dir)
        # Temp files a killed run left behind (sidecars, thumbnails, proxies). Nothing else
        # writes there now: this run holds the home lock, the last run's processes are gone
        # (orphans stopped, tools die with their worker), and the first task starts after this.
        clips = self.records_dir.parent / "clips"
        folders = [self.records_dir, *(sorted(p for p in clips.iterdir() if p.is_dir()) if clips.is_dir() else [])]
        swept = [tmp for folder in folders for tmp in sweep_temp_files(folder)]
        if swept:
            log.warning("removed %d temp file(s) left by an interrupted run, e.g. %s", len(swept), swept[0])

    def statuses(self, clip_ids: list[str]) -> dict[str, dict[str, Any]]:
        """For clip ids already catalogued: their stored status and path."""
        return dict(self.catalog.statuses(clip_ids))

    def write(self, records: list[ClipRecord], vectors: list[Any] | None = None) -> int:
        """Sidecar first, then the catalog point (and its moments): a killed write leaves
        no point, so a re-run redoes the file; a sidecar without a point is overwritten.

        When the point cannot be written (disk full, read-only catalog, server error) the
        sidecars written here are rolled back to what they were, so records and catalog
        never disagree; the error propagates and the file is reported failed."""
        from rayflow.catalog.store import atomic_write_bytes, write_sidecar
        from rayflow.catalog.verify import prune_outputs

        previous: list[tuple[Path, bytes | None]] = []
        try:
            for record in records:
                target = self.records_dir / f"{record.clip_id}.json"
                previous.append((target, target.read_bytes() if target.is_file() else None))
                write_sidecar(record, self.records_dir)
            written = self.catalog.upsert(records) if vectors is None \
                else self.catalog.upsert(records, vectors=vectors)
        except Exception:
            for target, old in previous:
                try:
                    if old is None:
                        target.unlink(missing_ok=True)
                    else:
                        atomic_write_bytes(target, old)
                except OSError:
                    log.exception("could not roll back %s", target)
            raise
        # The record is the truth of its clip folder: outputs it does not name (left by a
        # worker killed after writing them) go. After the point: a write that failed and was
        # rolled back keeps the older record's files. A writer killed before this is sent the
        # same records again (``await_write``), so the pruning is not skipped.
        clips = self.records_dir.parent / "clips"
        for record in records:
            if removed := prune_outputs(record, clips / record.clip_id):
                log.warning("clip %s: removed %s, which its record does not name (left by an interrupted attempt)",
                            record.clip_id, ", ".join(p.name for p in removed))
        return written

    def check_model(self, text_model: str, text_dim: int) -> None:
        """Fail before the first file when the catalog was built with another text model."""
        self.catalog.check_model(text_model=text_model, text_dim=text_dim)

    def count(self) -> int:
        return self.catalog.count()

    def close(self) -> None:
        self.catalog.close()


class ProgressBoard:
    """Tiny actor workers report encode progress to; the scheduler polls it for the display."""

    def __init__(self) -> None:
        self.fractions: dict[str, float] = {}

    def report(self, key: str, fraction: float) -> None:
        self.fractions[key] = fraction

    def done(self, key: str) -> None:
        self.fractions.pop(key, None)

    def snapshot(self) -> dict[str, float]:
        return dict(self.fractions)


def start_progress_board(name: str) -> Any:
    """The run's board, named so tasks find it (``ray.get_actor(name)``), on the driver's node:
    a lost worker node must not take it with it."""
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
    return ray.remote(ProgressBoard).options(name=name, num_cpus=0, scheduling_strategy=here).remote()


def start_catalog_writer(*, catalog_dir: Path | None, qdrant_url: str | None,
                         api_key: str | None, records_dir: Path) -> tuple[Any, Any]:
    """Start the writer on this (the driver's) node; retried calls are safe (upserts).

    Returns the actor and a ref that resolves once the catalog is open (``ray.get``
    it to surface ``CatalogBusy`` or a bad URL before the first file)."""
    node_id = ray.get_runtime_context().get_node_id()
    actor_cls = ray.remote(CatalogWriter).options(
        num_cpus=0,
        # A killed writer reopens the catalog (the dead process's lock is released) and
        # retries the call: upserts keyed by clip id make that safe. Bounded per call.
        max_restarts=100,
        max_task_retries=2,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node_id, soft=False),
    )
    # Ray's stubs cannot type an actor handle's methods (``writer.count.remote``).
    writer: Any = actor_cls.remote(
        str(catalog_dir) if catalog_dir else None, qdrant_url, api_key, str(records_dir)
    )
    return writer, writer.count.remote()


def stop_catalog_writer(writer: Any) -> None:
    """Close the catalog and end the writer. A writer that dies (or hangs) while closing costs
    nothing: every write was acknowledged before (upserts, stored when they return), and a dead
    process's catalog lock is released with it. It is logged, never raised: the run's summary
    must still be written."""
    try:
        ray.get(writer.close.remote(), timeout=30)
    except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as exc:
        log.warning("the catalog writer did not close cleanly (%s); every write was acknowledged before",
                    type(exc).__name__)
    finally:
        ray.kill(writer, no_restart=True)
