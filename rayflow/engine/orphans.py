"""Processes a killed ingest left behind under a home, found and stopped by the next run.

``kill -9`` of the CLI gives it no chance to stop what it started: the per-run
Prefect server runs in its own session (it survives its parent), and Ray's head
processes may outlive the driver for a while. The home lock itself cannot go stale
(it is an ``flock``, released by the kernel when its holder dies, whatever the pid
written in the file says), so the next run on the home gets the lock and then calls
:func:`stop_leftovers` before starting its own services.

What counts as a leftover of *this* home, and nothing else:

* a ``prefect server start`` whose ``PREFECT_HOME`` is ``<home>/prefect``, unless it
  is the long-lived server ``rayflow server start`` recorded (that one is meant to run);
* a Ray process whose command line names this home's Ray temp dir (gcs_server,
  raylet, log monitor, dashboard agent...), and the workers under it, unless it belongs
  to the Ray session of the running service (``rayflow server start``, ``engine.service``).

Processes of the caller (and its children) are never touched. Each leftover gets
SIGTERM, then SIGKILL after ``grace_s``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import psutil

from rayflow.engine import runtime, service

log = logging.getLogger(__name__)


def _long_lived_server_pid(home: Path) -> int | None:
    try:
        info = json.loads((runtime.prefect_home(home) / "server.json").read_text())
        return int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def leftover_processes(home: Path, *, ray: bool = True) -> list[psutil.Process]:
    """Processes started for an earlier run on ``home`` that are still alive (see module doc)."""
    me = psutil.Process()
    ours = {me.pid, *(c.pid for c in me.children(recursive=True))}
    keep = _long_lived_server_pid(home)
    svc = service.running(home) if ray else None
    service_session = svc.session_dir if svc is not None else None
    ray_dir = str(runtime.ray_temp_dir(home))
    prefect_dir = str(runtime.prefect_home(home))
    found: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if proc.pid in ours or proc.pid == keep:
            continue
        cmdline = proc.info.get("cmdline") or []
        text = " ".join(cmdline)
        try:
            if service_session and service_session in text:
                continue
            if ray and (f"{ray_dir}/" in text or text.endswith(ray_dir)):
                found[proc.pid] = proc
                for child in proc.children(recursive=True):
                    if child.pid not in ours:
                        found[child.pid] = child
            elif ("prefect" in text and "server" in cmdline and "start" in cmdline
                  and proc.environ().get("PREFECT_HOME") == prefect_dir):
                found[proc.pid] = proc
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return list(found.values())


def stop_leftovers(home: Path, *, ray: bool = True, grace_s: float = 5.0) -> list[int]:
    """Stop the leftovers of earlier runs on ``home``; returns their pids (logged as a warning).

    Call it while holding the home lock (so no live run of this home is mistaken for
    a leftover). ``ray=False`` when this run joins an external cluster or reuses a
    Ray already running in this process (then nothing of Ray's is ours to stop)."""
    procs = leftover_processes(home, ray=ray)
    if not procs:
        return []
    pids = sorted(p.pid for p in procs)
    log.warning("stopping %d process(es) left by an interrupted run on %s: %s", len(pids), home,
                ", ".join(map(str, pids)))
    service.end_processes(procs, grace_s=grace_s)
    return pids

