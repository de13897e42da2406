"""Run the real CLI as a user would, for one home, in a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

RAYFLOW = [sys.executable, "-m", "rayflow.cli.main"]


def run_in_home(args: list[str], home: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``rayflow ARGS`` with ``RAYFLOW_HOME=home``, without the test session's Prefect API or Ray."""
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "RAY_ADDRESS")}
    env["RAYFLOW_HOME"] = str(home)
    return subprocess.run([*RAYFLOW, *args], capture_output=True, text=True, timeout=timeout,
                          env=env, stdin=subprocess.DEVNULL, check=False)
