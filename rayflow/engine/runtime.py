"""Starting or joining Ray and the one Prefect API every process reports to.

Embedded defaults need no server set up by hand:

* Ray: a local cluster bound to 127.0.0.1 with its temp dir under the home, no
  usage stats, no dashboard. ``address`` joins an existing cluster instead.
* Prefect: a ``prefect server`` subprocess on a free loopback port with its SQLite
  database under ``<home>/prefect``, started for the run and stopped after it —
  unless one started by ``rayflow server start`` is already running (then it is
  reused), or ``PREFECT_API_URL`` points elsewhere. The URL is exported to the
  flow process and, through Ray's runtime env, to every Ray worker, so no worker
  ever starts its own ephemeral server. On a cluster (``address``) the managed
  server binds to the address the other nodes reach this one by (``cluster_host``),
  not to loopback, since remote workers report their task runs to it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

#: Environment every rayflow process (flow and Ray workers) runs with.
QUIET_ENV: dict[str, str] = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_UI_ENABLED": "false",
    "PREFECT_LOGGING_TO_API_ENABLED": "true",
    # Keep the CLI's stdout for our own rendering; Prefect logs go to the API.
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_CLIENT_ENABLE_METRICS": "false",
    "PYTHONWARNINGS": "ignore::DeprecationWarning",
    # Models load from packages and folders only: nothing may reach a hub at run time.
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TQDM_DISABLE": "1",
}

#: Server-side services a catalogue run never needs (schedules, late-run marking, …).
_SERVER_ENV: dict[str, str] = {
    "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_FOREMAN_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_CANCELLATION_CLEANUP_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_REPOSSESSOR_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_CLEANUP_RECONCILER_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_EVENT_LOGGER_ENABLED": "false",
    "PREFECT_SERVER_EVENTS_STREAM_OUT_ENABLED": "false",
    # Needed: these turn task-run events into the task runs `prefect task-run ls` shows.
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_ENABLED": "true",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED": "true",
    "PREFECT_API_DATABASE_TIMEOUT": "30",
}

_SERVER_STATE = "server.json"
# Ray appends "/session_<date>_<time>_<usec>_<pid>/sockets/plasma_store": up to 64 chars (7-digit
# pids); AF_UNIX allows 107. A longer temp dir makes ray.init fail ("AF_UNIX path length").
_SOCKET_PATH_LIMIT = 40


def apply_quiet_env() -> None:
    """Set the environment rayflow needs before ray or prefect are imported."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)


def prefect_home(home: Path) -> Path:
    return home / "prefect"


def ray_temp_dir(home: Path) -> Path:
    """Ray's temp dir under the home, unless that path is too long for Unix sockets.

    Ray puts sockets under ``<temp>/session_<date>_<pid>/sockets/``; a long home
    (deep pytest tmp dirs) would overflow the 107-byte AF_UNIX limit, so those
    homes get a short ``/tmp/rayflow-<hash>`` dir instead, named in the log.
    """
    wanted = home / "ray"
    if len(str(wanted)) <= _SOCKET_PATH_LIMIT:
        return wanted
    digest = hashlib.blake2s(str(home).encode(), digest_size=6).hexdigest()
    short = Path(tempfile.gettempdir()) / f"rayflow-{digest}"
    log.info("home path too long for Ray's sockets; Ray temp dir is %s", short)
    return short


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` (default loopback) nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def api_healthy(url: str, timeout_s: float = 2.0) -> bool:
    """True when the Prefect API at ``url`` answers its health check."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=timeout_s) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


@dataclass
class PrefectServer:
    """A ``prefect server`` process rayflow started (or found running) under a home."""

    url: str
    pid: int | None
    owned: bool
    """True when this process started it and must stop it."""
    startup_s: float = 0.0
    _proc: subprocess.Popen[bytes] | None = None
    _started: float = 0.0
    _log: Path | None = None

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        """Block until the API answers; raise with the log's path if it never does."""
        if self._proc is None:
            return
        deadline = self._started + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"prefect server exited with {self._proc.returncode}; see {self._log}"
                )
            if api_healthy(self.url, timeout_s=1.0):
                self.startup_s = time.monotonic() - self._started
                log.info("Prefect server at %s (ready in %.1f s)", self.url, self.startup_s)
                return
            time.sleep(0.2)
        self.owned = True
        self.stop()
        raise RuntimeError(f"prefect server did not answer within {timeout_s:g} s; see {self._log}")

    def stop(self) -> None:
        if not self.owned or self.pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                break
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, os.WNOHANG)
            time.sleep(0.1)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)


def running_server(home: Path) -> PrefectServer | None:
    """The long-lived server recorded under the home, when it is alive."""
    state = prefect_home(home) / _SERVER_STATE
    if not state.is_file():
        return None
    try:
        info = json.loads(state.read_text())
    except (OSError, ValueError):
        return None
    url = str(info.get("url", ""))
    if url and api_healthy(url):
        return PrefectServer(url=url, pid=info.get("pid"), owned=False)
    return None


def start_prefect_server(home: Path, *, detach: bool = False, wait: bool = True,
                         timeout_s: float = 90.0, port: int | None = None,
                         host: str = "127.0.0.1") -> PrefectServer:
    """Start ``prefect server start`` on ``host`` (default 127.0.0.1) with its database under the home.

    ``detach`` keeps it running after this process exits (``rayflow server start``)
    and records its URL and pid in ``<home>/prefect/server.json`` for reuse. With
    ``wait=False`` it returns at once (the URL is already known) so Ray can start
    while the server migrates its database; call ``wait_ready()`` before use.
    """
    phome = prefect_home(home)
    phome.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host)
    url = f"http://{host}:{port}/api"
    env = {**os.environ, **QUIET_ENV, **_SERVER_ENV, "PREFECT_HOME": str(phome)}
    env.pop("PREFECT_API_URL", None)
    env["PREFECT_API_DATABASE_CONNECTION_URL"] = f"sqlite+aiosqlite:///{phome / 'prefect.db'}"
    _seed_database(phome / "prefect.db")
    prefect_exe = Path(sys.executable).with_name("prefect")
    argv = [str(prefect_exe), "server", "start", "--host", host, "--port", str(port)]
    log_path = phome / "server.log"
    with log_path.open("ab") as log_fh:
        proc = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=log_fh, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = PrefectServer(url=url, pid=proc.pid, owned=not detach, _proc=proc,
                           _started=time.monotonic(), _log=log_path)
    if wait:
        server.wait_ready(timeout_s)
    if detach:
        (phome / _SERVER_STATE).write_text(json.dumps({"url": url, "pid": proc.pid}))
    return server


def db_template_path() -> Path:
    """A migrated, empty Prefect database for this Prefect version (XDG cache)."""
    import importlib.metadata

    version = importlib.metadata.version("prefect")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rayflow"
    return cache / f"prefect-{version}-empty.db"


def ensure_db_template(timeout_s: float = 180.0) -> Path:
    """Create the empty-database template once (``prefect server database upgrade``).

    A server on a fresh database spends ~7 s migrating it; a copy of this template
    starts in ~4 s, so new homes (and every test) start faster. scripts/setup.sh
    calls this; a missing template only means a slower first start.
    """
    target = db_template_path()
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    env = {**os.environ, **QUIET_ENV, **_SERVER_ENV,
           "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{tmp}"}
    env.pop("PREFECT_API_URL", None)
    prefect_exe = Path(sys.executable).with_name("prefect")
    subprocess.run([str(prefect_exe), "server", "database", "upgrade", "-y"], env=env,
                   stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout_s, check=True)
    os.replace(tmp, target)
    return target


def _seed_database(db: Path) -> None:
    """Copy the migrated template into a home that has no Prefect database yet."""
    if db.exists():
        return
    template = db_template_path()
    if template.is_file():
        tmp = db.with_suffix(".seeding")
        shutil.copyfile(template, tmp)
        os.replace(tmp, db)


def stop_detached_server(home: Path) -> bool:
    """Stop the server ``rayflow server start`` left running; False when none was."""
    server = running_server(home)
    state = prefect_home(home) / _SERVER_STATE
    if server is None:
        state.unlink(missing_ok=True)
        return False
    server.owned = True
    server.stop()
    state.unlink(missing_ok=True)
    return True


#: Variables a remote Ray worker needs from the driver besides RAYFLOW_* (credentials for
#: the Prefect API and Qdrant; Ray's own token is handled by Ray).
_FORWARDED = ("PREFECT_API_KEY", "PREFECT_API_AUTH_STRING", "RAYFLOW_QDRANT_API_KEY")


def worker_env(prefect_api_url: str, *, home: Path | None = None,
               environ: dict[str, str] | None = None) -> dict[str, str]:
    """Environment every Ray worker gets, on this machine or any other node.

    prefect-ray does not forward the driver's environment, and a worker on another
    machine inherits nothing from it. So workers get: the quiet/offline flags, the one
    Prefect API URL (and its key), every ``RAYFLOW_*`` variable of the run (model
    folders and model choices the ml/ loaders read from the environment), and
    ``RAYFLOW_HOME`` for the run's home. Everything else a stage reads (timeouts,
    output paths, steps, shared prefixes) travels inside the ``Settings`` object that
    every task and actor receives, so it needs no variable.
    """
    environ = dict(os.environ) if environ is None else environ
    env = {**QUIET_ENV, "PREFECT_API_URL": prefect_api_url}
    for key, value in sorted(environ.items()):
        if value and (key.startswith("RAYFLOW_") or key in _FORWARDED):
            env[key] = value
    if home is not None:
        env["RAYFLOW_HOME"] = str(home)
    return env


def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def cluster_host(address: str | None) -> str:
    """The IP other Ray nodes reach this machine by (where the managed Prefect API listens).

    Embedded Ray: 127.0.0.1. With ``address``: the local interface that routes to the
    cluster's head (a UDP ``connect`` sends nothing). When the head is this machine, its
    own address (the one Ray advertises to the workers) is used. ``auto`` is resolved the
    way Ray does (``RAY_ADDRESS``, then the last cluster started here).
    """
    if not address:
        return "127.0.0.1"
    target = address
    if target.startswith("ray://"):
        target = target[len("ray://"):]
    if target == "auto":
        from ray._private.services import canonicalize_bootstrap_address

        target = canonicalize_bootstrap_address("auto") or "127.0.0.1:0"
    host = target.rsplit(":", 1)[0].strip("[]") if ":" in target else target
    try:
        ip = socket.gethostbyname(host)
    except OSError:
        return "127.0.0.1"
    if is_loopback(ip):
        return "127.0.0.1"
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect((ip, 9))
            return str(sock.getsockname()[0])
    except OSError:
        return "127.0.0.1"


def _enable_ray_token_auth() -> None:
    """Clusters started by ``ray start`` use token auth by default (Ray >= 2.5x); a driver
    connecting to one must send the token. Ray's own helper turns token mode on (and
    refreshes Ray's cached config) when a token is available (``RAY_AUTH_TOKEN``,
    ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``) and ``RAY_AUTH_MODE`` is unset."""
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # a Ray without token auth
        return
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


PRELOADED: tuple[str, ...] = ("prefect", "prefect_ray", "prefect.flow_engine", "prefect.task_engine")
"""Modules the flow needs that take seconds to import (prefect ~2 s on an idle 2-core box,
~8 s on a loaded one); :func:`preload_prefect` imports them while Ray starts."""


def preload_prefect(prefect_api_url: str) -> threading.Thread | None:
    """Import Prefect on a daemon thread, so the import overlaps ``ray.init`` (which mostly
    waits for the GCS and raylet processes to come up) instead of following it.

    Only once ``PREFECT_API_URL`` is exported as ``prefect_api_url``: Prefect reads its
    settings when first imported, and imported without the URL it would start an
    ephemeral server of its own. None when it is not set (or Prefect is already loaded).
    An import that fails here only logs: the flow's own import raises it where it matters."""
    global _preloading
    if os.environ.get("PREFECT_API_URL") != prefect_api_url or "prefect_ray" in sys.modules \
            or (_preloading is not None and _preloading.is_alive()):
        return None

    def load() -> None:
        for name in PRELOADED:
            try:
                importlib.import_module(name)
            except Exception:
                log.debug("preloading %s failed", name, exc_info=True)
                return

    thread = threading.Thread(target=load, name="rayflow-preload", daemon=True)
    thread.start()
    _preloading = thread
    return thread


_preloading: threading.Thread | None = None
"""The preload under way, so a second call (the run's, then ``start_ray``'s) starts no other."""


class ClusterUnreachable(RuntimeError):
    """``--address`` names a Ray cluster this process cannot join."""


@dataclass(frozen=True)
class RayInfo:
    address: str
    embedded: bool
    num_cpus: float
    num_gpus: float
    nodes: int
    startup_s: float


def start_ray(
    home: Path, *, address: str | None, prefect_api_url: str, num_cpus: int | None = None,
    resources: dict[str, float] | None = None,
) -> RayInfo:
    """Start an embedded loopback Ray cluster, or connect to ``address``."""
    apply_quiet_env()
    import ray

    started = time.monotonic()
    preload_prefect(prefect_api_url)
    runtime_env = {"env_vars": worker_env(prefect_api_url, home=home)}
    # Ray writes the runtime env to its logs (runtime_env_agent.log): no secret goes through
    # it. No worker needs the Qdrant key (the catalog writer gets it as an argument), and
    # embedded workers inherit the driver's environment, Prefect's key included.
    for key in ("RAYFLOW_QDRANT_API_KEY", *(() if address else ("PREFECT_API_KEY", "PREFECT_API_AUTH_STRING"))):
        runtime_env["env_vars"].pop(key, None)
    if ray.is_initialized():
        ray.shutdown()
    if address:
        _enable_ray_token_auth()
        if is_loopback(address.rsplit(":", 1)[0]):  # this machine's service (engine/service.py)
            _single_machine_ray()
        try:
            ray.init(address=address, runtime_env=runtime_env, log_to_driver=False,
                     logging_level=logging.WARNING)
        except ConnectionError as exc:
            raise ClusterUnreachable(
                f"cannot join the Ray cluster at {address}: {str(exc).splitlines()[0]}. Is it up "
                "(`ray status`)? Token auth: export RAY_AUTH_TOKEN (or copy the head's ~/.ray/auth_token)"
            ) from exc
        embedded = False
    else:
        temp = ray_temp_dir(home)
        temp.mkdir(parents=True, exist_ok=True)
        _single_machine_ray()
        ray.init(
            num_cpus=num_cpus or os.cpu_count() or 1,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            _temp_dir=str(temp),
            runtime_env=runtime_env,
            resources=resources or {},
            log_to_driver=False,
            logging_level=logging.WARNING,
            configure_logging=True,
        )
        embedded = True
    resources = ray.cluster_resources()
    return RayInfo(
        address=address or "embedded (127.0.0.1)",
        embedded=embedded,
        num_cpus=float(resources.get("CPU", 0)),
        num_gpus=float(resources.get("GPU", 0)),
        nodes=len([n for n in ray.nodes() if n.get("Alive")]),
        startup_s=time.monotonic() - started,
    )


def _single_machine_ray() -> None:
    """Ray replaces a loopback node (or GCS) address with the host's LAN IP (and its gRPC servers
    then listen on every interface) unless its single-machine switch is off. The switch
    (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, in QUIET_ENV) is read when ray is imported, which may
    have happened before apply_quiet_env: set the constant it became as well."""
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False


def stop_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


if __name__ == "__main__":  # scripts/setup.sh: python -m rayflow.engine.runtime --prepare
    if sys.argv[1:] == ["--prepare"]:
        print(f"prefect database template: {ensure_db_template()}")
