"""runtime.preload_prefect: Prefect is imported while Ray starts, and only with the API URL
set (imported without it, Prefect would settle on an ephemeral server of its own)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import os, sys
from rayflow.engine import runtime
url = "http://127.0.0.1:9/api"
assert runtime.preload_prefect(url) is None and "prefect" not in sys.modules  # URL not exported yet
os.environ["PREFECT_API_URL"] = url
thread = runtime.preload_prefect(url)
assert thread is not None
thread.join(timeout=120)
assert all(name in sys.modules for name in runtime.PRELOADED)
from prefect.settings import get_current_settings
assert get_current_settings().api.url == url, get_current_settings().api.url
assert runtime.preload_prefect(url) is None  # loaded already: nothing to do
print("ok")
"""


def test_preload_imports_prefect_with_the_api_url_it_was_given() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")
