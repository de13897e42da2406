"""Helpers for fault-injection tests: the real ``rayflow`` CLI as a subprocess (its own
embedded Ray and Prefect, so it can be killed for real), small distinct clips, and a
consistency check of a home after the fact."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rayflow.catalog.store import Catalog
from rayflow.catalog.verify import Report, verify
from tests.hostile import clip

RAYFLOW = str(Path(sys.executable).with_name("rayflow"))
BATCH = 30
"""Clips in the kill/resume batches: enough for kills mid-batch, few enough for a lean suite."""
FAST = ["--skip", "analyze", "--skip", "embed"]
"""The models have their own tests; here they would only multiply the runtime."""


def cli_env(**extra: str) -> dict[str, str]:
    """The test process's environment without the test session's Prefect server."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PREFECT_API_URL", "RAYFLOW_TEST_PREFECT_PORT") and not k.startswith("RAYFLOW_")}
    env.update(extra)
    return env


def start_cli(args: list[str], *, env: dict[str, str] | None = None,
              out: Path | None = None) -> subprocess.Popen[bytes]:
    """``rayflow ARGS`` in the background; stdout/stderr to ``out``.stdout/.stderr when given."""
    stdout = (out.with_suffix(".stdout")).open("wb") if out else subprocess.DEVNULL
    stderr = (out.with_suffix(".stderr")).open("wb") if out else subprocess.DEVNULL
    return subprocess.Popen([RAYFLOW, *args], env=env or cli_env(), stdin=subprocess.DEVNULL,
                            stdout=stdout, stderr=stderr)


def run_cli(args: list[str], *, env: dict[str, str] | None = None,
            timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RAYFLOW, *args], env=env or cli_env(), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout, check=False)


def make_clips(folder: Path, count: int, *, start_hue: int = 0) -> list[Path]:
    """``count`` distinct 1 s 160x120 H.264 clips (distinct content, so distinct clip ids)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"clip_{i:03d}.mp4"
        if not path.exists():
            clip(path, hue=start_hue + i * 3 % 360, seconds=1.0 + (i % 3) * 0.2)
        paths.append(path)
    return paths


@pytest.fixture(scope="session")
def clips30(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("clips30")
    make_clips(folder, BATCH)
    return folder


def verified_home(home: Path) -> Report:
    """``rayflow verify --deep`` of ``home``, asserted clean: no discrepancy, no temp file left."""
    catalog = Catalog.open(path=home / "catalog", url=None)
    try:
        report = verify(catalog, home / "output", deep=True)
    finally:
        catalog.close()
    assert report.findings == [], report.counts()
    assert report.temp_files == []
    return report
