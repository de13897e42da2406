"""Persistent analyzers on a real multi-node cluster (``ray start`` processes, see conftest.py):
a run with changed settings replaces the old ones unless another run uses them, work on an
analyzer that can never be placed fails with the free and total GPUs instead of hanging, and
the pool grows when a GPU node joins mid-run, asks the autoscaler for the backlog, and
releases what it added once idle.

GPU counts are stand-ins (``ray start --num-gpus``) and the analyzer is a stand-in stage
(``tests.cluster.standin``, no models): what is under test is the real AnalyzerPool and
AnalysisQueue, driven by ``tests.cluster.pool_driver`` as a separate driver process per run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.conftest import ROOT, Cluster

pytestmark = pytest.mark.slow


class Driver:
    """One ``pool_driver`` run in the background, read line by line."""

    def __init__(self, cluster: Cluster, home: Path, folder: Path, files: int, *args: str) -> None:
        argv = [sys.executable, "-m", "tests.cluster.pool_driver", cluster.address, str(home), str(folder),
                str(files), *args]
        self.log = home.with_suffix(".log")
        with self.log.open("w") as err:  # a file, not a pipe nobody reads while the run goes on
            self.proc = subprocess.Popen(argv, env=cluster.env, cwd=ROOT, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=err, text=True)
        self.seen: list[dict[str, Any]] = []

    def until(self, event: str, timeout_s: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if line.startswith("{"):
                self.seen.append(json.loads(line))
                if self.seen[-1]["event"] == event:
                    return self.seen[-1]
        self.proc.kill()
        self.proc.wait()
        raise AssertionError(f"no {event!r} from the driver in {timeout_s:g} s; seen {self.seen}; "
                             f"stderr:\n{self.log.read_text()[-3000:]}")

    def end(self, timeout_s: float = 120) -> dict[str, Any]:
        last = self.until("end", timeout_s)
        assert self.proc.wait(timeout=30) == 0
        return last


def served_by(result: str) -> str:
    assert not result.startswith("error"), result
    return result.split()[0]  # the Ray node id


def test_persistent_analyzers_across_runs_on_a_changing_cluster(gpu_cluster: Cluster, tmp_path: Path) -> None:
    cluster = gpu_cluster
    head = cluster.node_id(cluster.nodes[0])  # it holds the cluster's only GPU at first
    folder = tmp_path / "clips"
    folder.mkdir()
    hold = tmp_path / "hold"
    hold.touch()
    # Run A (settings "threads 2") analyses a file and still holds its analyzer, and the GPU.
    a = Driver(cluster, tmp_path / "a", folder, 1, "--threads", "2", "--hold", str(hold))
    assert served_by(a.until("holding")["results"][f"{folder}/f00.mp4"]) == head

    # Run B (other settings) must not kill A's analyzer in use: B's waits for the GPU, and its
    # files fail after the bound, naming the free GPUs and the run holding them; no hang.
    started = time.monotonic()
    b = Driver(cluster, tmp_path / "b", folder, 2, "--threads", "3", "--gpu-wait", "4").end()
    assert time.monotonic() - started < 90
    assert len(b["results"]) == 2
    for result in b["results"].values():
        assert "not placed by Ray after waiting 4 s" in result and "0 of 1 GPU(s) free" in result, result
        assert "in use by run on" in result, result
    assert any("left running, in use by run on" in e for e in b["events"]), b["events"]
    assert len(b["analyzers"]) == 1  # A's only: B released its never-placed one, nothing pends
    old = b["analyzers"][0]
    hold.unlink()
    assert a.end()["analyzers"] == [old]  # A's stays warm after A ends (persistent)

    # Run C (B's settings) finds A's analyzer idle: retires it, and its own gets the GPU. Its
    # files wait at the gate (the stand-in analyzer holds them) while a GPU node joins.
    gate = folder / "gate"
    gate.touch()
    c = Driver(cluster, tmp_path / "c", folder, 8, "--threads", "3", "--idle", "2", "--linger", "40")
    started_c = c.until("started")
    assert started_c["actors"] == 1  # one GPU in the cluster at the start
    assert any("retired 1 idle persistent analyzer(s)" in e for e in started_c["events"]), started_c
    joined = cluster.add_worker("gpu2", {}, num_gpus=1)
    assert c.until("grew", timeout_s=120)["actors"] == 2
    gate.unlink()
    end = c.end(timeout_s=180)
    assert len(end["results"]) == 8
    # Both analyzers took work: the first on the head, the added one on the joined node.
    assert {served_by(r) for r in end["results"].values()} == {head, cluster.node_id(joined)}, end
    # The autoscaler was asked for one GPU bundle per running analyzer and waiting file (8 files,
    # all waiting at the gate), and the request withdrawn at the end.
    assert end["requested"] == 8 and end["after_stop"] == 0, end
    # The analyzer added for the backlog was released once idle; A's was replaced, not leaked.
    assert any("released analyzer 1" in e for e in end["events"]), end["events"]
    assert end["live"] == 1 and len(end["analyzers"]) == 1 and end["analyzers"] != [old], end
