"""Frames are sampled and bounded: a 4K file, a 20-minute file and a file declaring
30000x30000 frames decode (or fail) in a fresh process whose peak memory stays small.

Peak memory is the kernel's high-water mark of the measuring process (``VmHWM``) and of its children
(ffprobe, ffmpeg, the forked decord process), so nothing is estimated."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hostile import FFMPEG, huge_y4m

pytestmark = pytest.mark.slow

MEASURE = """
import json, resource, sys
from rayflow.media.decode import decode_frames
from rayflow.media.tools import ToolError
try:
    f = decode_frames(sys.argv[1], timestamps_s=None, count=12, max_side=512, rotation=0, timeout_s=300)
    out = {"shape": list(f.images.shape), "bytes": int(f.images.nbytes)}
except ToolError as exc:
    out = {"error": str(exc)}
# VmHWM, not RUSAGE_SELF: Linux carries ru_maxrss across execve, so a process spawned by a
# big pytest would report pytest's own peak.
with open("/proc/self/status") as fh:
    out["self_mb"] = next(int(l.split()[1]) for l in fh if l.startswith("VmHWM:")) / 1024
out["children_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps(out))
"""

LIMIT_MB = 600
"""Peak resident memory allowed for the decode and for any one helper process. A 4K frame
is 24 MB decoded; decoding a whole 4K second (30 frames) unbounded would need ~750 MB."""


def _measure(path: Path) -> dict[str, object]:
    proc = subprocess.run([sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("big")
    files = {"4k": folder / "uhd.mp4", "long": folder / "long.mp4", "huge": folder / "huge.mp4"}
    subprocess.run([*FFMPEG, "-f", "lavfi", "-i", "testsrc2=size=3840x2160:rate=30:duration=1",
                    "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", str(files["4k"])], check=True, timeout=600)
    subprocess.run([*FFMPEG, "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25:duration=1200",
                    "-c:v", "libx264", "-preset", "ultrafast", "-g", "250", str(files["long"])], check=True,
                   timeout=600)
    huge_y4m(files["huge"])
    return files


def test_a_4k_file_is_decoded_small_with_bounded_memory(big: dict[str, Path]) -> None:
    out = _measure(big["4k"])
    assert out["shape"] == [12, 288, 512, 3]
    assert out["self_mb"] < LIMIT_MB and out["children_mb"] < LIMIT_MB, out


def test_a_20_minute_file_costs_no_more_than_a_short_one(big: dict[str, Path]) -> None:
    out = _measure(big["long"])
    assert out["shape"] == [12, 90, 160, 3]  # 12 of its 30000 frames
    assert out["self_mb"] < LIMIT_MB and out["children_mb"] < LIMIT_MB, out


def test_absurd_declared_dimensions_fail_without_allocating_them(big: dict[str, Path]) -> None:
    out = _measure(big["huge"])  # one declared frame would be 1.35 GB
    assert "error" in out and "huge.mp4" in str(out["error"])
    assert out["self_mb"] < LIMIT_MB and out["children_mb"] < LIMIT_MB, out
