"""A real multi-node Ray cluster on this machine: ``ray start --head`` plus worker nodes
started with ``ray start --address``, each its own raylet with its own resources and temp
dir, as on a cluster of machines (only the host is shared).

Small on purpose (2-core box shared with other work): 1 CPU and a 100 MB object store
per node, no dashboard UI. Ray's temp dirs sit under a short /tmp path (AF_UNIX socket
paths must stay under ~107 bytes), removed at the end. Token authentication is on, as
``ray start`` enables it by default: the token travels in ``RAY_AUTH_TOKEN``, so nothing is
written to ``~/.ray``. Every process a node starts shares the process group of its
``ray start --block``, so a node is stopped (or killed with SIGKILL, like a lost machine)
by its group id and nothing else on the machine is touched.

Nodes advertise 127.0.0.2 (see ``NODE_IP``), so all cluster traffic stays on loopback.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).with_name("ray"))
OBJECT_STORE_BYTES = 100 * 1024 * 1024
#: Loopback, but not 127.0.0.1: Ray rewrites "127.0.0.1"/"localhost" to the host's interface
#: address (it assumes a cluster spans machines), while any other 127/8 address is kept, so
#: every node advertises (and reaches the others at) a loopback address. Ray's gRPC servers
#: still listen on all interfaces, as in production.
NODE_IP = "127.0.0.2"


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports. The sockets stay open until all are chosen: one
    at a time, the kernel may hand out the same port twice (Ray then refuses to start)."""
    import socket

    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


@dataclass
class Node:
    """One ``ray start --block`` process (and, through its process group, its raylet and agents)."""

    name: str
    proc: subprocess.Popen[bytes]
    temp_dir: Path
    resources: dict[str, float]
    log: Path

    def kill(self) -> None:
        """SIGKILL the whole node at once, like a machine that vanished."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=3)  # a test node holds nothing worth a longer goodbye
        self.kill()
        # Raylet children that outlived the group leader still carry its group id.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)


@dataclass
class Cluster:
    """The head's address and the environment a driver needs to join it."""

    root: Path
    env: dict[str, str]
    nodes: list[Node] = field(default_factory=list)
    address: str = ""

    def _ports(self, extra: int = 0) -> tuple[list[str], list[int]]:
        """The agents' port flags, plus ``extra`` more free ports, all distinct."""
        ports = free_ports(4 + extra)
        return [
            f"--dashboard-agent-listen-port={ports[0]}", f"--dashboard-agent-grpc-port={ports[1]}",
            f"--runtime-env-agent-port={ports[2]}", f"--metrics-export-port={ports[3]}",
        ], ports[4:]

    def _start(self, name: str, argv: list[str], resources: dict[str, float], prefix: list[str] | None = None,
               num_gpus: int = 0, port_flags: list[str] | None = None, num_cpus: int = 1) -> Node:
        temp = self.root / name
        temp.mkdir(parents=True, exist_ok=True)
        log = self.root / f"{name}.log"
        with log.open("wb") as fh:
            proc = subprocess.Popen(
                [*(prefix or []), RAY, "start", "--block", "--disable-usage-stats", f"--node-ip-address={NODE_IP}",
                 f"--num-cpus={num_cpus}", f"--num-gpus={num_gpus}",
                 f"--object-store-memory={OBJECT_STORE_BYTES}", f"--temp-dir={temp}",
                 f"--resources={json.dumps(resources)}", *(port_flags or self._ports()[0]), *argv],
                env=self.env, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        node = Node(name, proc, temp, resources, log)
        self.nodes.append(node)
        return node

    def start_head(self, resources: dict[str, float], *, num_gpus: int = 0) -> Node:
        flags, (port, dashboard, client) = self._ports(extra=3)
        node = self._start("head", ["--head", f"--port={port}", "--include-dashboard=false",
                                    f"--dashboard-port={dashboard}",
                                    f"--ray-client-server-port={client}"], resources, port_flags=flags,
                           num_gpus=num_gpus)
        marker = node.temp_dir / "ray_current_cluster"
        deadline = time.monotonic() + 120
        while not marker.is_file() or not marker.read_text().strip():
            if node.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ray head did not start; see {node.log}:\n{node.log.read_text()[-3000:]}")
            time.sleep(0.3)
        self.address = marker.read_text().strip()
        return node

    def add_worker(self, name: str, resources: dict[str, float], *,
                   hide: tuple[Path, Path, Path] | None = None, num_gpus: int = 0, num_cpus: int = 1) -> Node:
        """Start a worker node; ``hide=(src, alt, hidden)`` starts it in a mount namespace where
        ``hidden`` is an empty tmpfs and ``src`` is visible at ``alt`` (see blind_node.py).
        ``num_gpus`` makes it advertise GPUs it does not have (Ray takes the count as given;
        the models inside still run on the CPU), so analyzers are placed there."""
        prefix = None
        if hide is not None:
            src, alt, hidden = hide
            prefix = ["unshare", "-m", "--propagation", "private", sys.executable, "-m",
                      "tests.cluster.blind_node", str(src), str(alt), str(hidden), "--"]
        node = self._start(name, [f"--address={self.address}"], {f"test_node_{name}": 1, **resources}, prefix,
                           num_gpus, num_cpus=num_cpus)
        self.wait_nodes()
        return node

    def info(self) -> list[dict[str, object]]:
        """Alive nodes as the cluster sees them (asked from a separate driver process, so this
        test process never joins the cluster itself)."""
        code = (
            "import json, ray\n"
            f"ray.init(address={self.address!r}, log_to_driver=False, logging_level='ERROR')\n"
            "print(json.dumps([{'id': n['NodeID'], 'resources': n['Resources']} "
            "for n in ray.nodes() if n['Alive']]))\n"
        )
        out = subprocess.run([sys.executable, "-c", code], env=self.env, capture_output=True, text=True,
                             timeout=120, check=True)
        return list(json.loads(out.stdout.strip().splitlines()[-1]))

    def wait_nodes(self, timeout_s: float = 120) -> list[dict[str, object]]:
        """Block until every started (and not killed) node is alive in the cluster."""
        deadline = time.monotonic() + timeout_s
        want = sum(1 for n in self.nodes if n.proc.poll() is None)
        while True:
            alive = self.info()
            if len(alive) >= want:
                return alive
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(alive)} of {want} Ray nodes alive after {timeout_s:g} s")
            time.sleep(1)

    def node_id(self, node: Node) -> str:
        """The Ray node id of ``node`` (found by its unique marker resource)."""
        marker = f"test_node_{node.name}"
        for n in self.info():
            if marker in n["resources"]:  # type: ignore[operator]
                return str(n["id"])
        raise LookupError(f"node {node.name} is not alive")

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()


@contextlib.contextmanager
def new_cluster() -> Iterator[Cluster]:
    """An empty ``Cluster`` (start its head) with its environment; every node stopped at the end."""
    root = Path(tempfile.mkdtemp(prefix="rfc-", dir="/tmp"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "PREFECT_"))}
    env.update({
        "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32), "RAY_USAGE_STATS_ENABLED": "0",
        # Notice a lost node in seconds, not the default ~30 s.
        "RAY_health_check_period_ms": "1000", "RAY_health_check_failure_threshold": "3",
        "RAY_health_check_timeout_ms": "1000",
        "PYTHONPATH": str(ROOT),
    })
    c = Cluster(root, env)
    try:
        yield c
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """Head (1 CPU, no encode slot) + ``worker`` (2 CPUs, the only ``rayflow_encode`` slot).

    The worker's second CPU is what a real node has: room beside its one encode. With one, the
    proxy of the file before held it whenever a file's inspect task was placed, SPREAD found
    only the head free, and (on a loaded box, once in a CI run) every inspect ran there."""
    with new_cluster() as c:
        c.start_head({"test_node_head": 1})
        c.add_worker("worker", {"rayflow_encode": 1}, num_cpus=2)
        yield c


@pytest.fixture(scope="module")
def gpu_cluster() -> Iterator[Cluster]:
    """One node: a head with 1 CPU and 1 stand-in GPU (Ray takes the count as given)."""
    with new_cluster() as c:
        c.start_head({"test_node_head": 1}, num_gpus=1)
        yield c
