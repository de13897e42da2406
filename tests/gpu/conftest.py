"""Fixtures of the GPU tests: the clips they read (they run where ../shared/media may not exist)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_MEDIA = Path(__file__).resolve().parents[3] / "shared" / "media"


@pytest.fixture(scope="session")
def gpu_media() -> Path:
    """``RAYFLOW_GPU_MEDIA`` (the clips carried to a GPU machine, see docs/gpu.md), else
    ``../shared/media``. Missing clips fail a run that promised a GPU (FAIL_WITHOUT_CUDA=1)."""
    folder = Path(os.environ.get("RAYFLOW_GPU_MEDIA") or SHARED_MEDIA)
    if not (folder / "sintel_trailer_10s.mp4").is_file():
        message = f"no clips at {folder}: set RAYFLOW_GPU_MEDIA to the carried media folder"
        if os.environ.get("FAIL_WITHOUT_CUDA") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return folder
