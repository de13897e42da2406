"""Shared test fixtures: the real footage folder, GPU gating, a per-test home."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_MEDIA = ROOT.parent / "shared" / "media"


def pytest_configure(config: pytest.Config) -> None:
    """Point Prefect at the session's server before anything imports prefect.

    Prefect reads PREFECT_API_URL when it is imported; the engine fixture starts the
    server on this port later. (Subprocess tests drop the variable on purpose.) The port is
    found here, not with ``rayflow.engine.runtime.free_port``: that module imports ray, and
    the GPU tests (tests/gpu) run on machines without ray or prefect."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    os.environ["RAYFLOW_TEST_PREFECT_PORT"] = str(port)
    os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files with slow tests run first (so ./test.sh's workers, which take whole files, end
    together instead of one finishing the heavy files alone); GPU tests skip without CUDA, but
    fail loudly when FAIL_WITHOUT_CUDA=1."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow") is not None}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: each file keeps its order
    try:
        import pynvml

        pynvml.nvmlInit()
        has_gpu = pynvml.nvmlDeviceGetCount() > 0
    except Exception:  # NVMLError (no driver) or no library: no GPU here
        has_gpu = False
    if has_gpu:
        return
    must = os.environ.get("FAIL_WITHOUT_CUDA") == "1"
    for item in items:
        if item.get_closest_marker("gpu") is not None:  # the marker, not the folder name tests/gpu
            if must:
                item.add_marker(pytest.mark.usefixtures("_fail_without_cuda"))
            else:
                item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))


@pytest.fixture
def _fail_without_cuda() -> None:
    pytest.fail("FAIL_WITHOUT_CUDA=1 but no CUDA GPU is visible")


@pytest.fixture(scope="session")
def shared_media() -> Path:
    """``../shared/media``: real footage whose facts are in MANIFEST.md."""
    if not SHARED_MEDIA.is_dir():
        pytest.skip("../shared/media is not present")
    return SHARED_MEDIA


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty RAYFLOW_HOME for one test."""
    path = tmp_path / "home"
    path.mkdir()
    return path
