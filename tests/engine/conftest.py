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
    server = runtime.start_prefect_server(home)
    previous = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = server.url
    try:
        runtime.start_ray(home, address=None, prefect_api_url=server.url)
        yield Engine(home=home, prefect_url=server.url)
    finally:
        runtime.stop_ray()
        server.stop()
        if previous is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = previous
