"""Searches of the catalog, run here or answered by the service's warm searcher.

A ``rayflow search`` process spends most of its second importing ``qdrant_client`` (its
models module alone is ~0.5 s of CPU) and setting up the query encoder. ``rayflow server
start`` therefore also starts a *searcher*: ``python -m rayflow.engine.searcher --home H``,
a process that has those imports done and the query encoders loaded, and answers on a
Unix socket only its user can open (``<home>/search.sock``, mode 0600). ``search`` and
``list --where`` send it their request as one JSON line and print what comes back; with
no searcher (no service, a stale socket, a searcher that died mid-request) they run the
same :func:`run_search` / :func:`browse_records` in their own process. Either way the
result is the same: the searcher opens the catalog for each request and closes it before
answering, so it never holds embedded Qdrant's one-process lock between requests (an
ingest, ``rayflow list`` or the web page find the catalog as free as without it).

The searcher stops with ``rayflow server stop`` (SIGTERM), and by itself when its socket
is removed or replaced (its home was deleted, another searcher took over).

Nothing here imports ray: cli/ and web/ may use it without starting anything.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rayflow.catalog.hits import Hit
from rayflow.config import Settings

if TYPE_CHECKING:
    from rayflow.catalog.store import Catalog
    from rayflow.record import ClipRecord

log = logging.getLogger(__name__)

SOCKET_NAME = "search.sock"
STATE_NAME = "searcher.json"
LOG_NAME = "searcher.log"
MAX_MESSAGE = 1 << 20
"""Bytes a request may have (a query and its filters are far smaller)."""
WATCH_S = 2.0
"""How often an idle searcher checks that its socket is still its own."""
EXIT_FAILED, EXIT_USAGE, EXIT_ENV = 1, 2, 3
"""rayflow's exit codes, which :class:`SearchFailed` carries for the CLI."""


class SearchFailed(RuntimeError):
    """A search that cannot run as asked; ``code`` is the exit code the CLI gives
    (2 a bad ``--where``, 3 the environment: catalog busy, models missing or mismatched,
    1 nothing to search: no vectors, no image model)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class SearchRequest:
    """One search or filter browse, with the settings it needs (plain data: it crosses the socket)."""

    query: str = "*"
    mode: str = "hybrid"
    target: str = "clips"
    where: str | None = None
    limit: int = 10
    catalog_dir: str = ""
    qdrant_url: str | None = None
    qdrant_api_key: str | None = None
    text_model: str | None = None
    image_model: str | None = None

    @classmethod
    def of(cls, settings: Settings, **fields: Any) -> SearchRequest:
        return cls(catalog_dir=str(settings.catalog_dir), qdrant_url=settings.qdrant_url,
                   qdrant_api_key=settings.qdrant_api_key, text_model=settings.embed.text_model,
                   image_model=settings.embed.image_model, **fields)


# ----------------------------------------------------------------------------- the search itself

class Encoders:
    """Query encoders set up once and kept (the searcher's whole point); a CLI run uses one."""

    def __init__(self) -> None:
        self._query: dict[str | None, Any] = {}
        self._image: dict[str, Any] = {}
        self._default_id: str | None = None

    def query(self, model: str | None) -> Any:
        if model not in self._query:
            self._query[model] = load_query_encoder(model)
        return self._query[model]

    def image(self, name: str) -> Any:
        if name not in self._image:
            self._image[name] = load_image_encoder(name)
        return self._image[name]

    def default_model_id(self) -> str:
        if self._default_id is None:
            from rayflow.ml.text_encoder import TextEncoder

            self._default_id = TextEncoder().model_id
        return self._default_id


def set_up(encoder: Any) -> Any:
    """``encoder`` set up on this machine's device (the NumPy MiniLM on the CPU: asking torch
    for a GPU would import it for nothing); missing weights raise :class:`SearchFailed` (3)."""
    from rayflow.ml.bert_numpy import NumpyBertEncoder
    from rayflow.ml.device import torch_device
    from rayflow.ml.text_encoder import ModelNotFound

    try:
        encoder.setup("cpu" if isinstance(encoder, NumpyBertEncoder) else torch_device())
    except ModelNotFound as exc:
        raise SearchFailed(str(exc), EXIT_ENV) from exc
    return encoder


def load_text_encoder(model: str | None) -> Any:
    """The ingest's text encoder (torch, batched), set up: what ``rayflow reindex`` embeds with."""
    from rayflow.ml.text_encoder import TextEncoder

    return set_up(TextEncoder(model_path=model))


def load_query_encoder(model: str | None) -> Any:
    """The fastest encoder of the same vectors (NumPy MiniLM where it applies), set up."""
    from rayflow.ml.text_encoder import ModelNotFound, query_encoder

    try:
        encoder = query_encoder(model)
    except ModelNotFound as exc:
        raise SearchFailed(str(exc), EXIT_ENV) from exc
    return set_up(encoder)


def load_image_encoder(name: str) -> Any:
    from rayflow.ml.text_encoder import ImageTextEncoder

    return set_up(ImageTextEncoder(model=name))


def _parse_where(where: str | None) -> Any:
    from rayflow.catalog import schema

    try:
        return schema.parse_where(where)
    except schema.WhereError as exc:
        raise SearchFailed(f"--where: {exc}", EXIT_USAGE) from exc


def _open(req: SearchRequest) -> Catalog:
    from rayflow.catalog.store import Catalog, CatalogBusy

    try:
        return Catalog.open(path=Path(req.catalog_dir), url=req.qdrant_url, api_key=req.qdrant_api_key)
    except CatalogBusy as exc:
        raise SearchFailed(str(exc), EXIT_ENV) from exc


def _stamp(folder: Path) -> tuple[tuple[str, int, int, int], ...]:
    """What changes whenever an embedded catalog is written: each file's size, mtime and ctime."""
    out = []
    for path in sorted(folder.rglob("*")):
        if path.name == ".lock":
            continue
        with contextlib.suppress(OSError):
            st = path.stat()
            if not path.is_dir():
                out.append((str(path.relative_to(folder)), st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return tuple(out)


def _let_go_of_lock(catalog: Catalog) -> bool:
    """Release embedded Qdrant's folder lock but keep the points it loaded, for reading only.

    Reaches into qdrant-client's local mode (``QdrantLocal._flock_file``, 1.20): where that
    is not there, False, and the caller closes the catalog instead."""
    local = getattr(catalog.client, "_client", None)
    flock = getattr(local, "_flock_file", None)
    if flock is None or getattr(flock, "closed", True):
        return False
    import portalocker

    portalocker.unlock(flock)
    flock.close()
    local._flock_file = None  # type: ignore[union-attr]  # its close() must not unlock it again
    return True


class Catalogs:
    """How requests get their catalog. Without a searcher: opened, used, closed. In the searcher,
    an embedded catalog stays loaded after its first request, *without* its lock (so an ingest,
    ``rayflow list`` or the web page open it as if the searcher were not there), and is reused
    while none of its files changed; any write (they all go through the lock) changes a file's
    size or times, and the next request loads it again. A Qdrant server is opened per request."""

    def __init__(self, *, keep: bool) -> None:
        self._keep = keep
        self._held: dict[str, tuple[tuple[tuple[str, int, int, int], ...], Catalog]] = {}

    @contextlib.contextmanager
    def reading(self, req: SearchRequest) -> Iterator[Catalog]:
        folder = Path(req.catalog_dir)
        held = self._held.get(req.catalog_dir)
        if held is not None and not req.qdrant_url and held[0] == _stamp(folder):
            yield held[1]
            return
        self.drop(req.catalog_dir)
        catalog = _open(req)
        keep = False
        try:
            yield catalog
            if self._keep and catalog.local:
                stamp = _stamp(folder)  # under the lock: nobody else can have written since the open
                keep = _let_go_of_lock(catalog)
                if keep:
                    self._held[req.catalog_dir] = (stamp, catalog)
        finally:
            if not keep:
                catalog.close()

    def drop(self, catalog_dir: str) -> None:
        held = self._held.pop(catalog_dir, None)
        if held is not None:
            held[1].close()

    def close(self) -> None:
        for key in list(self._held):
            self.drop(key)


def run_search(req: SearchRequest, encoders: Encoders | None = None, catalogs: Catalogs | None = None) -> list[Hit]:
    """The hits of ``req`` (``rayflow search``): relevance-ranked, above the threshold."""
    with (catalogs or Catalogs(keep=False)).reading(req) as catalog:
        return search_in(catalog, req, encoders)


def search_in(catalog: Catalog, req: SearchRequest, encoders: Encoders | None = None) -> list[Hit]:
    """:func:`run_search` on a catalog the caller has open (``rayflow export`` builds its events
    from the same catalog): the request checked, the model checked, the encoders loaded."""
    if req.mode not in ("semantic", "keyword", "hybrid"):
        raise SearchFailed(f"--mode must be semantic, keyword or hybrid, not {req.mode!r}", EXIT_USAGE)
    if req.target not in ("clips", "moments"):
        raise SearchFailed(f"--in must be clips or moments, not {req.target!r}", EXIT_USAGE)
    return _search(catalog, req, _parse_where(req.where), encoders or Encoders())


def _search(catalog: Catalog, req: SearchRequest, flt: Any, encoders: Encoders) -> list[Hit]:
    from rayflow.catalog.relevance import BROWSE_QUERIES
    from rayflow.catalog.search import SearchError, search
    from rayflow.catalog.store import ModelMismatch
    from rayflow.ml.text_encoder import model_id_for

    try:
        encoder = image_encoder = None
        if req.mode != "keyword" and req.query.strip() not in BROWSE_QUERIES:
            # before loading anything: a different model cannot search these vectors
            catalog.check_model(text_model=model_id_for(req.text_model) if req.text_model
                                else encoders.default_model_id())
            encoder = encoders.query(req.text_model)
            meta = catalog.meta
            if meta is not None and meta.image_model and req.image_model:
                image_encoder = encoders.image(req.image_model)
        return search(catalog, req.query, encoder=encoder, image_encoder=image_encoder,
                      mode=req.mode,  # type: ignore[arg-type]
                      target=req.target,  # type: ignore[arg-type]
                      where=flt, limit=req.limit)
    except ModelMismatch as exc:
        raise SearchFailed(str(exc), EXIT_ENV) from exc
    except SearchError as exc:
        raise SearchFailed(str(exc), EXIT_FAILED) from exc


def browse_records(req: SearchRequest, catalogs: Catalogs | None = None) -> list[ClipRecord]:
    """The records of the clips passing ``req.where`` (``rayflow list --where``)."""
    from rayflow.catalog.search import browse

    flt = _parse_where(req.where)
    with (catalogs or Catalogs(keep=False)).reading(req) as catalog:
        found = (catalog.get(hit.clip_id) for hit in browse(catalog, where=flt, limit=req.limit))
        return [r for r in found if r is not None]


# ----------------------------------------------------------------------------- client

def socket_path(home: Path) -> Path:
    return home / SOCKET_NAME


def ask(home: Path, op: str, req: SearchRequest, *, timeout_s: float = 120.0) -> dict[str, Any] | None:
    """The searcher's answer to ``op`` ("search" or "browse"), or None when no searcher answers
    (none started, a stale socket, one that died or failed unexpectedly: run it here then).
    An answer ``{"ok": false, ...}`` is a :class:`SearchFailed`, raised."""
    path = socket_path(home)
    if not path.exists():
        return None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout_s)
            sock.connect(str(path))
            sock.sendall(json.dumps({"op": op, "request": asdict(req)}).encode() + b"\n")
            sock.shutdown(socket.SHUT_WR)
            answer = _recv(sock, 64 * MAX_MESSAGE)
    except OSError as exc:
        log.debug("no answer from the searcher at %s: %s", path, exc)
        return None
    try:
        doc = json.loads(answer)
    except ValueError:
        return None
    if not isinstance(doc, dict) or doc.get("retry_here"):
        return None
    if not doc.get("ok"):
        raise SearchFailed(str(doc.get("error") or "the searcher failed"), int(doc.get("code") or EXIT_FAILED))
    return doc


def search_hits(home: Path, req: SearchRequest) -> tuple[list[Hit], str]:
    """``req``'s hits and who ran the search: "service" (the warm searcher) or "here"."""
    doc = ask(home, "search", req)
    if doc is not None:
        return [Hit.from_dict(h) for h in doc["hits"]], "service"
    return run_search(req), "here"


def browsed_records(home: Path, req: SearchRequest) -> tuple[list[ClipRecord], str]:
    """The records passing ``req.where`` and who looked: "service" or "here"."""
    doc = ask(home, "browse", req)
    if doc is not None:
        from rayflow.record import ClipRecord

        return [ClipRecord.model_validate(r) for r in doc["records"]], "service"
    return browse_records(req), "here"


def _recv(sock: socket.socket, limit: int, *, line: bool = False) -> bytes:
    """What ``sock`` sends until it closes (or, with ``line``, ends a line), at most ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while chunk := sock.recv(65536):
        chunks.append(chunk)
        size += len(chunk)
        if (line and b"\n" in chunk) or size > limit:
            break
    return b"".join(chunks)[:limit]


# ----------------------------------------------------------------------------- the searcher process

def answer(message: bytes, encoders: Encoders, catalogs: Catalogs) -> dict[str, Any]:
    """The searcher's reply to one request (never raises)."""
    try:
        doc = json.loads(message)
        req = SearchRequest(**doc["request"])
        op = doc["op"]
    except (ValueError, KeyError, TypeError) as exc:
        return {"ok": False, "code": EXIT_USAGE, "error": f"bad request to the searcher: {exc}"}
    try:
        if op == "search":
            return {"ok": True, "hits": [h.to_dict() for h in run_search(req, encoders, catalogs)]}
        if op == "browse":
            return {"ok": True, "records": [r.model_dump(mode="json") for r in browse_records(req, catalogs)]}
        if op == "ping":
            return {"ok": True, "pid": os.getpid()}
        return {"ok": False, "code": EXIT_USAGE, "error": f"unknown request {op!r}"}
    except SearchFailed as exc:
        return {"ok": False, "code": exc.code, "error": str(exc)}
    except Exception as exc:  # a bug or a broken environment: the client runs it itself and shows it
        log.exception("request failed")
        catalogs.close()  # whatever was loaded is suspect now
        return {"ok": False, "retry_here": True, "error": f"{type(exc).__name__}: {exc}"}


def _bind(path: Path) -> socket.socket:
    """A listening socket at ``path`` only this user can connect to; a stale socket is replaced."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    sock.listen(16)
    return sock


def _still_mine(path: Path, inode: int) -> bool:
    try:
        return path.stat().st_ino == inode
    except OSError:
        return False


def serve(home: Path, *, preload_model: str | None = None) -> None:
    """Run the searcher of ``home`` until SIGTERM or until its socket is no longer its own."""
    import rayflow.catalog.search  # noqa: F401  # the ~1 s of imports, paid once

    encoders = Encoders()
    catalogs = Catalogs(keep=True)
    try:
        encoders.query(preload_model)
        encoders.default_model_id()
    except SearchFailed as exc:  # no weights: every search will say so, as without the service
        log.warning("query encoder not loaded: %s", exc)
    path = socket_path(home)
    sock = _bind(path)
    inode = path.stat().st_ino
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    state = home / STATE_NAME
    state.write_text(json.dumps({"pid": os.getpid(), "socket": str(path)}))
    log.info("searcher %d answering on %s", os.getpid(), path)
    sock.settimeout(WATCH_S)
    try:
        while _still_mine(path, inode):
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(30)
                try:
                    reply = answer(_recv(conn, MAX_MESSAGE, line=True), encoders, catalogs)
                    conn.sendall(json.dumps(reply, ensure_ascii=False).encode())
                except OSError as exc:  # the client went away
                    log.info("client lost: %s", exc)
    finally:
        sock.close()
        catalogs.close()
        if _still_mine(path, inode):
            path.unlink(missing_ok=True)
        with contextlib.suppress(OSError, ValueError):
            if json.loads(state.read_text()).get("pid") == os.getpid():
                state.unlink()


# ----------------------------------------------------------------------------- start / stop

def recorded_pid(home: Path) -> int | None:
    try:
        return int(json.loads((home / STATE_NAME).read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def running(home: Path) -> int | None:
    """The pid of the home's searcher when it answers; None otherwise."""
    try:
        doc = ask(home, "ping", SearchRequest(), timeout_s=5.0)
    except SearchFailed:
        return None
    return int(doc["pid"]) if doc else None


def start(home: Path, settings: Settings, *, wait_s: float = 60.0) -> int | None:
    """Start the home's searcher (unless one answers) and wait until it does; its pid, or None
    when it did not come up in ``wait_s`` (searches then simply run in their own process)."""
    pid = running(home)
    if pid is not None:
        return pid
    if len(str(socket_path(home))) > 100:  # AF_UNIX paths are limited to ~108 bytes
        log.warning("home path too long for the searcher's socket: searches run in their own process")
        return None
    argv = [sys.executable, "-m", "rayflow.engine.searcher", "--home", str(home)]
    if settings.embed.text_model:
        argv += ["--model", settings.embed.text_model]
    with (home / LOG_NAME).open("ab") as log_fh:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_fh, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.warning("the searcher exited with %s; see %s", proc.returncode, home / LOG_NAME)
            return None
        pid = running(home)
        if pid is not None:
            return pid
        time.sleep(0.1)
    log.warning("the searcher did not answer within %.0f s; see %s", wait_s, home / LOG_NAME)
    return None


def stop(home: Path, *, grace_s: float = 5.0) -> bool:
    """Stop the home's searcher; False when none was running."""
    import psutil

    from rayflow.engine.service import end_processes

    pid = recorded_pid(home)
    socket_path(home).unlink(missing_ok=True)  # a searcher that misses SIGTERM exits on its own
    (home / STATE_NAME).unlink(missing_ok=True)
    if pid is None:
        return False
    try:
        proc = psutil.Process(pid)
        if "rayflow.engine.searcher" not in " ".join(proc.cmdline()):
            return False  # the pid was reused: not ours
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    end_processes([proc], grace_s=grace_s)
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--model", default=None, help="text model to load first")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    serve(args.home, preload_model=args.model)


if __name__ == "__main__":  # pragma: no cover
    main()
