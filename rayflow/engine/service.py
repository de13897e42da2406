"""The long-lived local service of a home: a Ray head beside the Prefect server.

``rayflow server start`` starts both and records them under the home; ``ingest``
then attaches to that Ray (see ``session``) instead of starting its own, so the
analyzer and embedder actors (detached, named) stay loaded between runs and the
next run starts at once. ``rayflow server stop`` stops both and every process of
the Ray session (the detached actors with it).

The Ray head is ``ray start --head`` as a subprocess, set up as the embedded
cluster of a run is: bound to 127.0.0.1, temp dir ``runtime.ray_temp_dir(home)``,
no dashboard, no usage stats; Ray's token auth as ``ray start`` sets it up (a
driver joining it sends the token, see ``runtime.start_ray``). Its record is
``<home>/ray_service.json``: address, session dir (which names its processes) and
the head's pid. A record whose address no longer answers is stale: it is ignored
(and removed by ``server start``/``stop``), never an error.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from rayflow.config import Settings
from rayflow.engine import runtime

if TYPE_CHECKING:
    from rayflow.media.encoders import EncoderPlan

log = logging.getLogger(__name__)

_STATE = "ray_service.json"


@dataclass(frozen=True)
class RayService:
    """The Ray head ``rayflow server start`` left running under a home."""

    address: str
    """GCS address, ``127.0.0.1:<port>``: what ``ray.init(address=...)`` joins."""
    session_dir: str
    """``<temp>/session_<date>_<pid>``: every process of this Ray names it on its command line."""
    startup_s: float = 0.0
    encoders: dict[str, Any] | None = None
    """The proxy encoders found when the service started (``{"preference": [...], "plan": ...}``):
    what its node advertises encode slots for, so an ingest that attaches need not try ffmpeg's
    encoders again (``encoder_plan``)."""

    def encoder_plan(self, preference: tuple[str, ...]) -> EncoderPlan | None:
        """The plan found at start for the same encoder preference, else None (detect again)."""
        from rayflow.media.encoders import EncoderPlan

        if not self.encoders or tuple(self.encoders.get("preference", ())) != tuple(preference):
            return None
        try:
            return EncoderPlan.from_dict(self.encoders["plan"])
        except (KeyError, TypeError, ValueError):
            return None


def state_path(home: Path) -> Path:
    return home / _STATE


def recorded(home: Path) -> RayService | None:
    """The service recorded under the home, alive or not (None when no readable record)."""
    try:
        info = json.loads(state_path(home).read_text())
        return RayService(address=str(info["address"]), session_dir=str(info["session_dir"]),
                          startup_s=float(info.get("startup_s", 0.0)), encoders=info.get("encoders"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def answers(address: str, timeout_s: float = 1.0) -> bool:
    """True when something accepts TCP connections at ``host:port`` (the head's GCS)."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False


def running(home: Path) -> RayService | None:
    """The recorded service when its GCS answers and its processes are alive; None otherwise
    (no record, or a stale one: the head was stopped, killed or the machine rebooted)."""
    svc = recorded(home)
    if svc is None or not answers(svc.address):
        return None
    return svc if session_processes(svc.session_dir) else None


def session_processes(session_dir: str) -> list[psutil.Process]:
    """Processes of one Ray session (GCS, raylet, agents, workers, detached actors)."""
    found: dict[int, psutil.Process] = {}
    me = os.getpid()
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if proc.pid == me:
            continue
        text = " ".join(proc.info.get("cmdline") or [])
        if session_dir in text:
            found[proc.pid] = proc
            try:
                for child in proc.children(recursive=True):
                    found.setdefault(child.pid, child)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
    return list(found.values())


def encode_slots(settings: Settings) -> tuple[dict[str, float], EncoderPlan]:
    """The proxy-encode resources this machine advertises, as an ingest's own Ray would, and the
    encoder plan they come from (``start`` records it)."""
    from rayflow.engine.resources import encode_resources
    from rayflow.media.encoders import detect_encoders

    plan = detect_encoders(settings.proxy.encoders, timeout_s=60)
    return encode_resources(plan, settings.proxy, os.cpu_count() or 1).node_resources, plan


def start(home: Path, *, num_cpus: int | None = None, resources: dict[str, float] | None = None,
          encoders: tuple[tuple[str, ...], EncoderPlan] | None = None, timeout_s: float = 180.0) -> RayService:
    """``ray start --head`` for the home (returns once the head is up) and record it, with
    ``encoders`` (the preference and the plan ``resources`` were computed from) when given."""
    runtime.apply_quiet_env()
    temp = runtime.ray_temp_dir(home)
    temp.mkdir(parents=True, exist_ok=True)
    port = runtime.free_port()
    ray_exe = Path(sys.executable).with_name("ray")
    argv = [str(ray_exe), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
            f"--temp-dir={temp}", "--include-dashboard=false", "--disable-usage-stats",
            # Ports Ray would otherwise fix (8265, 52365, 10001): another home's head may hold them.
            "--dashboard-host=127.0.0.1", f"--dashboard-port={runtime.free_port()}",
            f"--dashboard-agent-listen-port={runtime.free_port()}",
            f"--ray-client-server-port={runtime.free_port()}",
            f"--num-cpus={num_cpus or os.cpu_count() or 1}", f"--resources={json.dumps(resources or {})}"]
    env = {**os.environ, **runtime.QUIET_ENV}
    home.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with (home / "ray_service.log").open("ab") as log_fh:
        proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=log_fh,
                              stderr=subprocess.STDOUT, timeout=timeout_s, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"`ray start --head` exited with {proc.returncode}; see {home / 'ray_service.log'}")
    session = (temp / "session_latest").resolve()
    svc = RayService(address=f"127.0.0.1:{port}", session_dir=str(session),
                     startup_s=time.monotonic() - started,
                     encoders=None if encoders is None else {"preference": list(encoders[0]),
                                                             "plan": encoders[1].to_dict()})
    tmp = state_path(home).with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(svc)))
    os.replace(tmp, state_path(home))
    log.info("Ray head for %s at %s (up in %.1f s)", home, svc.address, svc.startup_s)
    return svc


def end_processes(procs: list[psutil.Process], *, grace_s: float) -> None:
    """SIGTERM ``procs``, SIGKILL those still alive after ``grace_s``, wait for them (bounded)."""
    for proc in procs:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            continue
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(alive, timeout=grace_s)


def stop(home: Path, *, grace_s: float = 10.0) -> bool:
    """Stop every process of the recorded Ray session (the detached actors with it) and drop
    the record; False when there was nothing to stop. Only this home's session is touched
    (never ``ray stop``, which stops every Ray of the user on the machine)."""
    svc = recorded(home)
    state_path(home).unlink(missing_ok=True)
    if svc is None:
        return False
    procs = session_processes(svc.session_dir)
    end_processes(procs, grace_s=grace_s)
    return bool(procs)
