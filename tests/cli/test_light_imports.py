"""Commands that only read records answer at once: on an embedded catalog, ``list``, ``show``
and ``runs`` must not import qdrant_client, ray, prefect or torch (issue #15; together
~1-8 s of CPU), nor ``doctor`` to report their versions; with the service's searcher up,
neither do ``search`` and ``list --where``. Checked on the modules a real run leaves loaded,
not on a timing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rayflow.catalog.store import Catalog
from rayflow.engine.session import save_summary
from rayflow.record import RunSummary
from tests.catalog.corpus import labelled_corpus

HEAVY = ("qdrant_client", "ray", "prefect", "torch", "transformers")
HARNESS = """
import json, sys
from rayflow.cli.main import app
try:
    app(sys.argv[1:], prog_name="rayflow")
except SystemExit as exc:
    code = exc.code
else:
    code = 0
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(sys.stdin.readline())))
sys.stderr.write("\\nRESULT " + json.dumps({"code": code, "heavy": heavy}) + "\\n")
"""


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("light-home")
    catalog = Catalog.open(path=path / "catalog", url=None)
    try:
        catalog.upsert(labelled_corpus()[0][:4])
    finally:
        catalog.close()
    save_summary(RunSummary(run_id="20260101T000000Z-abc", started_at=datetime.now(UTC), home=str(path),
                            output=str(path / "output")), path)
    return path


def _run(args: list[str], home: Path) -> tuple[dict[str, object], str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAYFLOW_QDRANT_URL", "PREFECT_API_URL")}
    env["RAYFLOW_HOME"] = str(home)
    proc = subprocess.run([sys.executable, "-c", HARNESS, *args], input=json.dumps(HEAVY) + "\n",
                          capture_output=True, text=True, timeout=120, env=env, check=False)
    line = next((ln for ln in proc.stderr.splitlines() if ln.startswith("RESULT ")), None)
    assert line is not None, proc.stderr[-2000:]
    return json.loads(line.removeprefix("RESULT ")), proc.stdout


def test_list_show_and_runs_import_no_heavy_package(home: Path) -> None:
    clip_id = labelled_corpus()[0][0].clip_id
    listed, out = _run(["list", "--json"], home)
    assert listed == {"code": 0, "heavy": []}
    assert len(json.loads(out)) == 4
    shown, out = _run(["show", clip_id[:8], "--json"], home)
    assert shown == {"code": 0, "heavy": []}
    assert json.loads(out)["clip_id"] == clip_id
    runs, out = _run(["runs", "--json"], home)
    assert runs == {"code": 0, "heavy": []}
    assert [r["run_id"] for r in json.loads(out)] == ["20260101T000000Z-abc"]


def test_doctor_reports_versions_without_importing_them(home: Path) -> None:
    result, out = _run(["doctor", "--json"], home)
    assert result["heavy"] == [], result
    checks = {(c["group"], c["name"]): c for c in json.loads(out)}
    for dist in ("ray", "prefect", "qdrant-client"):  # still checked: found, with its version
        assert checks[("python", dist)]["ok"] and checks[("python", dist)]["detail"][0].isdigit()


def test_the_harness_sees_a_heavy_import(home: Path) -> None:
    """The check can fail: ``list --where`` filters through Qdrant, so it loads the client."""
    result, out = _run(["list", "--where", "hdr=false", "--json"], home)
    assert result["code"] == 0 and "qdrant_client" in result["heavy"]  # type: ignore[operator]
    assert json.loads(out)


def test_searches_the_service_answers_import_no_heavy_package(home: Path) -> None:
    from rayflow.config import load_settings
    from rayflow.engine import searcher

    assert searcher.start(home, load_settings(home=home)) is not None, (home / searcher.LOG_NAME).read_text()
    try:
        for args in (["search", "bridge", "--json"], ["search", "bridge", "--mode", "keyword", "--json"],
                     ["list", "--where", "hdr=false", "--json"]):
            result, out = _run(args, home)
            assert result["code"] in (0, 1) and result["heavy"] == [], (args, result)
            assert json.loads(out) is not None
    finally:
        searcher.stop(home)
