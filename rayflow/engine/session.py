"""One ingest run end to end: the Prefect API, Ray, the catalog writer, the flow.

This is what the CLI (and benchmarks, and tests) call. Startup overlaps: the
Prefect server migrates its database while Ray starts.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from rayflow.config import Settings
from rayflow.engine import runtime
from rayflow.engine.progress import Progress
from rayflow.record import RunSummary

log = logging.getLogger(__name__)


@dataclass
class RunTimings:
    """Seconds spent before the first file could start, by part."""

    prefect_s: float = 0.0
    ray_s: float = 0.0
    writer_s: float = 0.0
    flow_s: float = 0.0
    total_s: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)


def runs_dir(home: Path) -> Path:
    return home / "runs"


def save_summary(summary: RunSummary, home: Path) -> Path:
    """Keep each run's summary under ``<home>/runs/<run_id>.json`` (atomic write)."""
    folder = runs_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{summary.run_id}.json"
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(summary.model_dump_json(indent=2), encoding="utf-8")
    os.replace(tmp, target)
    return target


def ingest(
    paths: list[str], settings: Settings, *, progress: Progress | None = None,
    run_id: str | None = None, timings: RunTimings | None = None,
) -> RunSummary:
    """Run the ingest flow over ``paths`` with ``settings``; returns the run summary."""
    runtime.apply_quiet_env()
    timings = timings or RunTimings()
    started = time.monotonic()
    settings.home.mkdir(parents=True, exist_ok=True)
    server: runtime.PrefectServer | None = None
    if settings.prefect_api_url:
        api_url = settings.prefect_api_url
    else:
        server = runtime.running_server(settings.home) or runtime.start_prefect_server(
            settings.home, wait=False
        )
        api_url = server.url
    previous_api = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = api_url
    import ray

    owns_ray = not ray.is_initialized()  # tests and benchmarks may keep one cluster warm
    try:
        t = time.monotonic()
        if owns_ray:
            runtime.start_ray(settings.home, address=settings.address, prefect_api_url=api_url)
        timings.ray_s = time.monotonic() - t
        from rayflow.engine.actors import start_catalog_writer, stop_catalog_writer
        from rayflow.engine.flow import new_run_id, run_ingest_flow

        t = time.monotonic()
        writer = start_catalog_writer(
            catalog_dir=None if settings.qdrant_url else settings.catalog_dir,
            qdrant_url=settings.qdrant_url, api_key=settings.qdrant_api_key,
            records_dir=settings.records_dir,
        )
        timings.writer_s = time.monotonic() - t
        # Warm every worker (imports of prefect, stages, decord: ~2 s each) while the
        # Prefect server migrates its database; tasks then reuse these workers.
        from rayflow.engine.flow import warm_worker

        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        warm_refs = [ray.remote(warm_worker).options(num_cpus=1).remote() for _ in range(cpus)]
        if server is not None:
            t = time.monotonic()
            server.wait_ready()
            timings.prefect_s = time.monotonic() - t
        ray.get(warm_refs)
        try:
            t = time.monotonic()
            summary = run_ingest_flow(paths, settings, writer, progress=progress,
                                      run_id=run_id or new_run_id())
            timings.flow_s = time.monotonic() - t
        finally:
            stop_catalog_writer(writer)
    finally:
        if owns_ray:
            runtime.stop_ray()
        if previous_api is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = previous_api
        if server is not None:
            server.stop()
    summary.prefect_api_url = api_url
    timings.total_s = time.monotonic() - started
    save_summary(summary, settings.home)
    return summary


def last_summaries(home: Path, limit: int = 10) -> list[RunSummary]:
    folder = runs_dir(home)
    if not folder.is_dir():
        return []
    files = sorted(folder.glob("*.json"), reverse=True)[:limit]
    out = []
    for f in files:
        try:
            out.append(RunSummary.model_validate(json.loads(f.read_text())))
        except (OSError, ValueError):
            log.warning("unreadable run summary %s", f)
    return out
