"""``rayflow serve``: the footage browser in a web browser (Starlette + uvicorn).

Read-only, bound to 127.0.0.1 by default. Safe to run while ``rayflow ingest`` runs
on the same home: the page then reads the JSON records and shows the ingest's live
progress; search comes back when the ingest finishes (see ``rayflow/web/access.py``).
"""

from __future__ import annotations

import ipaddress
import logging
import sys
import threading
import webbrowser
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from rayflow.config import load_settings

log = logging.getLogger(__name__)
err = Console(stderr=True, highlight=False)

EXIT_USAGE, EXIT_ENV = 2, 3
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve_command(
    host: Annotated[str, typer.Option("--host", help="Address to bind. Anything but loopback exposes your "
                                                     "catalog and footage proxies to the network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port (0: any free one).")] = 8765,
    home: Annotated[Path | None, typer.Option("--home", help="State dir (default $RAYFLOW_HOME or ~/.rayflow).")]
    = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Output dir (default <home>/output).")]
    = None,
    qdrant_url: Annotated[str | None, typer.Option("--qdrant-url", help="Qdrant server (default: embedded).")]
    = None,
    open_browser: Annotated[bool, typer.Option("--open", help="Open the page in the default web browser.")]
    = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log each request.")] = False,
) -> None:
    """Browse and search the catalog in a web browser: results grid, clip pages with the proxy
    playing from the matched moment, transcript, shots, every technical fact; ingest runs and
    live progress. Read-only; works while an ingest runs on the same home."""
    import uvicorn

    from rayflow.web.app import create_app

    try:
        settings = load_settings(home=home, output=output, qdrant_url=qdrant_url)
    except (ValueError, FileNotFoundError) as exc:
        err.print(Text(f"error: {exc}"))
        raise typer.Exit(EXIT_USAGE) from exc
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    loopback = _is_loopback(host)
    allowed = [*LOOPBACK_NAMES] if loopback else None  # DNS-rebinding guard where it is meaningful
    app = create_app(settings, allowed_hosts=allowed, warm_model=True)
    config = uvicorn.Config(app, host=host, port=port, log_level="info" if verbose else "warning",
                            access_log=verbose, server_header=False)
    server = uvicorn.Server(config)
    if not loopback:
        err.print(Text(f"warning: serving on {host}: anyone who can reach this address can browse the catalog"))

    def announce() -> None:  # after uvicorn bound the socket (port 0 -> the real one)
        while not server.started and not server.should_exit:
            threading.Event().wait(0.05)
        if not server.started:
            return
        bound = server.servers[0].sockets[0].getsockname()[1] if server.servers else port
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else shown}:{bound}/"
        err.print(Text(f"rayflow serve: {url}  (home {settings.home}; read-only; Ctrl-C to stop)"))
        if open_browser:
            webbrowser.open(url)

    threading.Thread(target=announce, daemon=True).start()
    try:
        server.run()
    except (OSError, SystemExit) as exc:  # port in use, address not available (uvicorn exits on bind errors)
        err.print(Text(f"error: cannot serve on {host}:{port}: {exc}"))
        raise typer.Exit(EXIT_ENV) from exc
    if not server.started:
        raise typer.Exit(EXIT_ENV)


def register(app: typer.Typer) -> None:
    """Add ``serve`` to the ``rayflow`` app."""
    app.command("serve")(serve_command)
