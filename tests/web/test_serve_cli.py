"""``rayflow serve`` as a user runs it: a real uvicorn process on a free loopback port."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

RAYFLOW = [sys.executable, "-m", "rayflow.cli.main"]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "RAY_ADDRESS", "RAYFLOW_HOME")}


def _get(url: str, host: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as res:
            return res.status, res.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_serve_binds_loopback_prints_its_url_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    proc = subprocess.Popen([*RAYFLOW, "serve", "--port", "0", "--home", str(tmp_path / "h")],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                            text=True, env=_env())
    try:
        deadline = time.monotonic() + 120
        seen = ""
        match = None
        while match is None and time.monotonic() < deadline and proc.poll() is None:
            seen += proc.stderr.readline()  # type: ignore[union-attr]
            match = re.search(r"http://127\.0\.0\.1:(\d+)/", seen)
        assert match, seen
        base = match.group(0).rstrip("/")
        status, body = _get(base + "/api/status")
        assert status == 200 and b'"read_only":true' in body.replace(b" ", b"")
        assert _get(base + "/api/status", host="attacker.example")[0] == 400  # DNS-rebinding guard
        status, page = _get(base + "/")
        assert status == 200 and b"/static/app.js" in page
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) in (0, 130)  # uvicorn re-raises Ctrl-C after a clean shutdown: 128 + 2
        assert "Traceback" not in proc.stderr.read()  # type: ignore[union-attr]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def test_serve_on_a_busy_port_exits_3_with_the_reason(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run([*RAYFLOW, "serve", "--port", str(port), "--home", str(tmp_path / "h")],
                              capture_output=True, text=True, timeout=120, env=_env(), stdin=subprocess.DEVNULL)
    assert proc.returncode == 3, proc.stderr
    assert f"cannot serve on 127.0.0.1:{port}" in proc.stderr


def test_serve_help_lists_its_flags() -> None:
    proc = subprocess.run([*RAYFLOW, "serve", "--help"], capture_output=True, text=True, timeout=120,
                          env={**_env(), "COLUMNS": "200"})
    assert proc.returncode == 0
    for flag in ("--host", "--port", "--home", "--output", "--qdrant-url", "--open"):
        assert flag in proc.stdout, flag
    assert "127.0.0.1" in proc.stdout and "read-only" in proc.stdout.lower()
