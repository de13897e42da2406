"""One small real catalog for every web test, built by the real pipeline while the web
app is already serving the same home (so building it also exercises "serve while
ingest runs").

Footage: the three spoken/captioned clips of tests/engine/test_search_e2e.py (same
maker, reused), one more whose *file name* is an HTML injection attempt, and one
truncated MP4 that must fail with a reason. Ingested by ``rayflow ingest`` in a
subprocess (its own Ray and Prefect, like a user's terminal), while this process
polls the API as the page would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from rayflow.config import Settings, load_settings
from rayflow.web.app import create_app
from tests import media
from tests.engine.test_search_e2e import CLIPS, _make

XSS_NAME = "<img src=x onerror=alert(1)>.mp4"
XSS_CLIP = ("a quiet library with wooden shelves full of old books", "READING ROOM", "saddlebrown")
BROKEN_NAME = "broken.mp4"
RAYFLOW = [sys.executable, "-m", "rayflow.cli.main"]


@dataclass
class Observed:
    """What the page's API calls returned while the ingest ran."""

    progress: list[dict[str, Any]] = field(default_factory=list)
    clip_sources: list[tuple[str, str | None]] = field(default_factory=list)
    search_status: list[int] = field(default_factory=list)


@dataclass
class WebHome:
    home: Path
    settings: Settings
    footage: Path
    ingest_rc: int
    summary: dict[str, Any]
    observed: Observed

    def app(self, **kwargs: Any) -> Any:
        return create_app(self.settings, **kwargs)


def _poll(client: TestClient, observed: Observed, done: threading.Event) -> None:
    while not done.is_set():
        try:
            observed.progress.append(client.get("/api/progress").json())
            body = client.get("/api/clips").json()
            observed.clip_sources.append((body["source"], body["notice"]))
            if body["notice"] and "ingest is running" in body["notice"]:
                observed.search_status.append(client.get("/api/search", params={"q": "ferry"}).status_code)
        except Exception as exc:  # recorded, so a test can fail on it
            observed.clip_sources.append(("error", repr(exc)))
        done.wait(0.5)


@pytest.fixture(scope="session")
def web_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebHome]:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    root = tmp_path_factory.mktemp("web")
    footage = root / "footage"
    footage.mkdir()
    for name, (phrase, caption, colour) in CLIPS.items():
        _make(footage, name, phrase, caption, colour)
    _make(footage, XSS_NAME, *XSS_CLIP)
    for wav in footage.glob("*.wav"):
        wav.unlink()
    media.truncated(footage / BROKEN_NAME)
    home = root / "home"
    settings = load_settings(env={}, home=home)
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "RAY_ADDRESS")}
    observed = Observed()
    app = create_app(settings, idle_release_s=0.5)
    with TestClient(app) as client:
        done = threading.Event()
        poller = threading.Thread(target=_poll, args=(client, observed, done), daemon=True)
        poller.start()
        try:
            proc = subprocess.run([*RAYFLOW, "ingest", str(footage), "--home", str(home), "--json"],
                                  capture_output=True, text=True, timeout=1200, env=env,
                                  stdin=subprocess.DEVNULL, check=False)
        finally:
            time.sleep(1.5)  # one more poll after the ingest let go
            done.set()
            poller.join(timeout=30)
    if proc.returncode not in (0, 1) or not proc.stdout.strip():
        pytest.fail(f"rayflow ingest failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    yield WebHome(home=home, settings=settings, footage=footage, ingest_rc=proc.returncode,
                  summary=json.loads(proc.stdout), observed=observed)


@pytest.fixture
def client(web_home: WebHome) -> Iterator[TestClient]:
    with TestClient(web_home.app()) as c:
        yield c


def clip_id_of(client: TestClient, name: str) -> str:
    for card in client.get("/api/clips", params={"limit": 200}).json()["results"]:
        if card["name"] == name:
            return str(card["clip_id"])
    raise AssertionError(f"{name} is not in the catalog")
