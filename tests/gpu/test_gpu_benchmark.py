"""benchmarks/gpu.py: its --smoke path on the CPU, and its refusal without CUDA."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu.py"


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.fixture(scope="module")
def tiny_media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One 1 s clip, 96x54 at 25 fps, with a hard cut at 0.48 s (testsrc2 then smptebars)."""
    folder = tmp_path_factory.mktemp("media")
    graph = ("testsrc2=size=96x54:rate=25:duration=0.48[a];smptebars=size=96x54:rate=25:duration=0.52[b];"
             "[a][b]concat=n=2:v=1:a=0[out0]")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", graph, "-c:v", "libx264",
                    "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(folder / "cut.mp4")],
                   check=True, timeout=60, capture_output=True)
    return folder


def test_smoke_runs_every_step_on_the_cpu_and_claims_no_cuda(tiny_media: Path, tmp_path: Path) -> None:
    out = tmp_path / "gpu-smoke.json"
    done = _bench("--smoke", "--media", str(tiny_media), "--roles", "shots,text,faces", "--threads", "1",
                  "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(out.read_text())
    assert found["smoke"] is True and found["machine"]["gpu"] is None and found["roles_on_cuda"] == []
    assert set(found["roles"]) == {"shots", "text", "faces"}
    for name, role in found["roles"].items():
        assert role["not_run"] is None, (name, role)
        assert role["parity"] is True, (name, role["parity_detail"])  # CPU against CPU: the same answers
        assert role["speedup"] is None  # no CUDA side, no speedup claimed
        for side in ("cpu", "cuda"):
            assert role[side]["observed"]["device"] == "cpu" and role[side]["items"] == 1
    assert "1 cuts" in found["roles"]["shots"]["parity_detail"]  # TransNetV2 found the one cut
    analysis = found["analysis"]
    assert analysis["clips"] == 1 and analysis["errors"] == {} and analysis["embedded"] is True
    assert all(run["device"] == "cpu" for run in analysis["roles"].values())
    assert "shots" in done.stdout and "batched analysis" in done.stdout


def test_without_cuda_it_refuses_and_writes_nothing(tiny_media: Path, tmp_path: Path) -> None:
    from rayflow.ml.device import cuda_visible

    if cuda_visible():
        pytest.skip("this machine has CUDA: the refusal cannot happen here")
    out = tmp_path / "gpu.json"
    done = _bench("--media", str(tiny_media), "--out", str(out))
    assert done.returncode == 2
    assert "needs a CUDA GPU" in done.stderr and "--smoke" in done.stderr
    assert not out.exists()
