"""One Ray cluster and one Prefect server for every integration test in the session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rayflow.engine import runtime


@dataclass(frozen=True)
class Engine:
    home: Path
    prefect_url: str


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    runtime.apply_quiet_env()
    home = tmp_path_factory.mktemp("engine")
    server = runtime.start_prefect_server(home, port=int(os.environ["RAYFLOW_TEST_PREFECT_PORT"]))
    assert os.environ["PREFECT_API_URL"] == server.url
    try:
        from rayflow.config import ProxySettings
        from rayflow.engine.resources import encode_resources
        from rayflow.media.encoders import detect_encoders

        settings = ProxySettings()
        encode = encode_resources(detect_encoders(settings.encoders), settings, os.cpu_count() or 1)
        runtime.start_ray(home, address=None, prefect_api_url=server.url,
                          resources=encode.node_resources)
        yield Engine(home=home, prefect_url=server.url)
    finally:
        runtime.stop_ray()
        server.stop()
        # PREFECT_API_URL stays set: Prefect flushes its API log handler at exit, and without
        # the variable it would start a throwaway ephemeral server just to fail there.
