"""Run the web app with uvicorn on a free loopback port in a background thread (tests, screenshots)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from rayflow.config import Settings
from rayflow.web.app import create_app


@contextmanager
def serving(settings: Settings, *, timeout_s: float = 60.0) -> Iterator[str]:
    """Yields the base URL (``http://127.0.0.1:<port>``) while the server runs."""
    app = create_app(settings, allowed_hosts=["127.0.0.1", "localhost"])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, name="rayflow-serve-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
