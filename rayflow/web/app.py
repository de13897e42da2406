"""The ``rayflow serve`` web app: a Starlette app over one home's catalog.

Routes: ``/`` (the page), ``/static/...`` (its CSS/JS, shipped in the package),
``/api/...`` (JSON, see :mod:`rayflow.web.api`), ``/media/<clip_id>/<name>``
(thumbnails and proxies, with HTTP range requests so the video element can seek;
see :mod:`rayflow.web.media`). Read-only, strict headers (:mod:`rayflow.web.security`).

Example::

    app = create_app(load_settings(home=Path("~/.rayflow").expanduser()))
    uvicorn.run(app, host="127.0.0.1", port=8765)
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from rayflow.config import Settings
from rayflow.web.access import IDLE_RELEASE_S, CatalogAccess
from rayflow.web.api import Api
from rayflow.web.media import media_file
from rayflow.web.security import ReadOnlySecurity

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
MEDIA_TYPES = {".mp4": "video/mp4", ".jpg": "image/jpeg", ".webp": "image/webp"}


def create_app(settings: Settings, *, allowed_hosts: Sequence[str] | None = None,
               idle_release_s: float = IDLE_RELEASE_S, warm_model: bool = False) -> Starlette:
    """The app for ``settings.home``. ``allowed_hosts``: Host header values accepted (None:
    any) — ``rayflow serve`` passes the loopback names when bound to loopback, which stops
    DNS-rebinding pages from reading the catalog through the user's browser.
    ``warm_model``: load the text model in the background at startup, so the first
    semantic/hybrid search does not wait for it (a few seconds, ~100 MB); off by default
    so tests and short-lived apps only load it when a search needs it."""
    access = CatalogAccess(settings, idle_release_s=idle_release_s)
    api = Api(settings, access)
    output_dir = settings.output_dir

    def media(request: Request) -> Response:
        path = media_file(output_dir, request.path_params["clip_id"], request.path_params["name"])
        if path is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        return FileResponse(path, media_type=MEDIA_TYPES.get(path.suffix, "application/octet-stream"),
                            headers={"cache-control": "private, max-age=300"})

    def index(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8",
                            headers={"cache-control": "no-cache"})

    def not_found(request: Request) -> Response:
        return JSONResponse({"error": "not found"}, status_code=404)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        access.start()
        if warm_model:
            threading.Thread(target=api.warm, name="rayflow-serve-warm", daemon=True).start()
        try:
            yield
        finally:
            access.close()

    routes = [
        Route("/", index),
        Route("/api/status", api.status),
        Route("/api/clips", api.clips),
        Route("/api/facets", api.facets),
        Route("/api/search", api.search),
        Route("/api/export", api.export),
        Route("/api/clips/{clip_id}", api.clip),
        Route("/api/clips/{clip_id}/similar", api.similar),
        Route("/api/runs", api.runs),
        Route("/api/progress", api.progress),
        Route("/api/dupes", api.dupes),
        Route("/api/{rest:path}", not_found),
        Route("/media/{clip_id}/{name}", media),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    middleware = [Middleware(ReadOnlySecurity)]
    if allowed_hosts:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts)))
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.access = access
    app.state.api = api
    return app
