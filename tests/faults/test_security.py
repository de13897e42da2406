"""No shell strings; secrets kept out of reach; doctor warns about exposed endpoints."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

import rayflow
from rayflow.config import load_settings
from rayflow.engine.doctor import check_endpoints

PACKAGE = Path(rayflow.__file__).parent
SUBPROCESS_CALLS = {"run", "Popen", "call", "check_call", "check_output", "getoutput", "getstatusoutput"}


def _violations(tree: ast.AST, filename: str) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
        where = f"{filename}:{node.lineno}"
        if owner == "os" and (name in ("system", "popen") or name.startswith("spawn")):
            found.append(f"{where}: os.{name}")
        if owner == "subprocess" and name in ("getoutput", "getstatusoutput"):
            found.append(f"{where}: subprocess.{name} runs a shell")
        if name in SUBPROCESS_CALLS or owner == "asyncio" and name == "create_subprocess_shell":
            for kw in node.keywords:
                if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                    found.append(f"{where}: {name}(shell=...)")
            if owner == "subprocess" and node.args and isinstance(node.args[0], ast.Constant | ast.JoinedStr):
                found.append(f"{where}: subprocess.{name} with a string command")
    return found


def test_the_scanner_catches_shell_strings() -> None:
    bad = ast.parse("import os, subprocess\nos.system('ls')\nsubprocess.run('ls', shell=True)\n"
                    "subprocess.Popen(f'ls {x}')\nos.popen('x')\n")
    lines = {v.split(":")[1] for v in _violations(bad, "bad.py")}
    assert lines == {"2", "3", "4", "5"}


def test_no_shell_strings_anywhere_in_the_package() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 30
    found = [v for f in files for v in _violations(ast.parse(f.read_text(encoding="utf-8")), str(f))]
    assert found == []


def test_a_config_file_with_a_key_must_not_be_readable_by_others(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('qdrant_url = "https://q.example:6333"\nqdrant_api_key = "secret-1"\n')
    config.chmod(0o644)
    with pytest.raises(ValueError, match="chmod 600"):
        load_settings(env={}, home=tmp_path)
    config.chmod(0o600)
    settings = load_settings(env={}, home=tmp_path)
    assert settings.qdrant_api_key == "secret-1"
    assert "secret-1" not in repr(settings)
    # Without a key, the usual 0644 is fine.
    config.write_text('qdrant_url = "https://q.example:6333"\n')
    config.chmod(0o644)
    assert load_settings(env={}, home=tmp_path).qdrant_api_key is None


def test_doctor_warns_about_plain_http_and_missing_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("RAY_USE_TLS", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE", "PREFECT_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ray/auth_token
    risky = load_settings(env={}, home=tmp_path, qdrant_url="http://10.1.2.3:6333",
                          prefect_api_url="http://10.1.2.4:4200/api", address="ray://10.1.2.5:10001")
    checks = {c.name: c for c in check_endpoints(risky)}
    assert set(checks) == {"qdrant_url", "prefect_api_url", "ray address"}
    for check in checks.values():
        assert not check.ok and not check.required and check.fix
    assert "plain HTTP" in checks["qdrant_url"].detail and "no API key" in checks["qdrant_url"].detail
    assert "unencrypted gRPC" in checks["ray address"].detail and "auth token" in checks["ray address"].detail
    safe = load_settings(env={}, home=tmp_path, qdrant_url="https://q.example:6333", qdrant_api_key="k",
                         prefect_api_url="http://127.0.0.1:4200/api", address="ray://127.0.0.1:10001")
    assert all(c.ok for c in check_endpoints(safe))
    monkeypatch.setenv("RAY_USE_TLS", "1")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "t")
    assert all(c.ok for c in check_endpoints(load_settings(env={}, home=tmp_path, address="10.1.2.5:6379")))
    assert os.environ["RAY_USE_TLS"] == "1"


def test_doctor_cli_shows_the_warnings(tmp_path: Path) -> None:
    from tests.faults.conftest import cli_env, run_cli

    env = cli_env(HOME=str(tmp_path), RAYFLOW_QDRANT_URL="http://10.1.2.3:6333")
    proc = run_cli(["doctor", "--home", str(tmp_path / "home"), "--json"], env=env, timeout=300)
    rows = {(r["group"], r["name"]): r for r in __import__("json").loads(proc.stdout)}
    row = rows[("security", "qdrant_url")]
    assert row["ok"] is False and "plain HTTP" in row["detail"]
