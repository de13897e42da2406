"""The ``ingest`` Prefect flow on prefect-ray's RayTaskRunner: a thin ``@flow``.

The work is done by ``scheduler.Scheduler`` (its ``run()`` reads top-down); the
coarse Prefect tasks are in ``tasks``, record assembly in ``assemble``. Flow
parameters stay plain data (Prefect stores them and ships them to every task), so
the live objects of a run (actors, progress) are looked up in ``RUNS`` by run id.
"""

from __future__ import annotations

import logging
import threading
import traceback
import uuid
from dataclasses import replace
from datetime import UTC, datetime

from prefect import flow
from prefect.context import get_run_context
from prefect_ray import RayTaskRunner

from rayflow.config import Settings
from rayflow.engine.scheduler import RunHandles, Scheduler
from rayflow.record import RunSummary

log = logging.getLogger(__name__)


class RunRegistry:
    """The live handles of the runs in this process, keyed by run id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, RunHandles] = {}

    def add(self, run_id: str, handles: RunHandles) -> None:
        with self._lock:
            if run_id in self._runs:
                raise ValueError(f"run {run_id} is already running in this process")
            self._runs[run_id] = handles

    def get(self, run_id: str) -> RunHandles:
        with self._lock:
            handles = self._runs.get(run_id)
        if handles is None:
            raise LookupError(f"no live handles for run {run_id}: start it with run_ingest_flow()")
        return handles

    def remove(self, run_id: str) -> None:
        with self._lock:
            self._runs.pop(run_id, None)


RUNS = RunRegistry()


@flow(name="ingest", validate_parameters=False, log_prints=False, persist_result=False)
def ingest_flow(paths: list[str], run_id: str, settings: Settings) -> RunSummary:
    """Discover, fingerprint, de-duplicate, inspect, analyse, proxy, embed and store every file."""
    # The flow object is serialised into every task's context and its function is
    # pickled by value: keep the body in plain module code (pickled by name).
    return _run(paths, run_id, settings)


def _run(paths: list[str], run_id: str, settings: Settings) -> RunSummary:
    try:
        flow_run_id = str(get_run_context().flow_run.id)  # type: ignore[union-attr]
    except Exception:  # context shape differs across Prefect versions; id is informational
        flow_run_id = None
    return Scheduler(paths, run_id, settings, RUNS.get(run_id), flow_run_id=flow_run_id).run()


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]


def run_ingest_flow(paths: list[str], settings: Settings, handles: RunHandles,
                    run_id: str | None = None) -> RunSummary:
    """Run the flow on the Ray cluster already started by the caller."""
    run_id = run_id or new_run_id()
    RUNS.add(run_id, handles)
    # Flow parameters are stored by the Prefect API (and shipped to every task): never a
    # secret. The catalog writer got the key already; nothing in the flow needs it.
    settings = replace(settings, qdrant_api_key=None)
    try:
        flow_fn = ingest_flow.with_options(task_runner=RayTaskRunner())
        return flow_fn(paths=paths, run_id=run_id, settings=settings)
    except Exception:
        log.error("ingest flow failed:\n%s", traceback.format_exc())
        raise
    finally:
        RUNS.remove(run_id)
