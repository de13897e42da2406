"""Reading clip records without ``qdrant_client``: ``rayflow list``, ``show`` and the like
answer in a fraction of a second.

Importing ``qdrant_client`` costs ~0.7 s of CPU and opening an embedded catalog loads
every vector of both collections; a command that only prints stored records needs
neither. Embedded Qdrant (local mode) keeps each collection as a SQLite table of
pickled points (``<catalog>/collection/<name>/storage.sqlite``, rows ``id, point``;
a later row of the same id replaces an earlier one) and locks ``<catalog>/.lock``
with ``flock`` while a client has it open. :class:`LocalRecords` takes the same lock
(so a running ingest still means :class:`CatalogBusy`, as with :class:`Catalog`),
reads the ``clips`` table read-only and unpickles only ``PointStruct`` into a stand-in
class, refusing any other pickled class. Anything it does not recognise raises
:class:`UnknownStorage` and :func:`open_records` falls back to the real client; with
``--qdrant-url`` it always uses the client.
"""

from __future__ import annotations

import fcntl
import io
import json
import logging
import pickle
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from rayflow.catalog.names import CLIPS, PRIVATE_KEYS
from rayflow.record import ClipRecord

if TYPE_CHECKING:
    from rayflow.catalog.store import Catalog

log = logging.getLogger(__name__)

_POINT_CLASS = ("qdrant_client.http.models.models", "PointStruct")
"""The one class the stored pickles may name (qdrant-client's ``CollectionPersistence``)."""
_SAFE_BUILTINS = {("builtins", "set"): set, ("builtins", "frozenset"): frozenset}


class CatalogBusy(RuntimeError):
    """The embedded catalog is open in another process."""


class UnknownStorage(RuntimeError):
    """The embedded catalog's files are not in the layout :class:`LocalRecords` reads."""


def busy_message(path: Path) -> str:
    return (f"the catalog at {path} is open in another rayflow process (embedded Qdrant "
            "allows one process at a time, e.g. a running ingest); wait for it to finish, or run "
            "a Qdrant server and pass --qdrant-url (or RAYFLOW_QDRANT_URL) to share the catalog")


def record_from_payload(payload: dict[str, Any] | None) -> ClipRecord:
    """The ``ClipRecord`` stored in a clip point (private search keys dropped)."""
    data = {k: v for k, v in (payload or {}).items() if k not in PRIVATE_KEYS}
    return ClipRecord.model_validate(data)


class RecordSource(Protocol):
    """What record readers need: :class:`LocalRecords` or a :class:`~rayflow.catalog.store.Catalog`."""

    def get(self, clip_id: str) -> ClipRecord | None: ...
    def find_by_path(self, path: str) -> ClipRecord | None: ...
    def iter_clip_ids(self) -> Iterator[str]: ...
    def iter_records(self) -> Iterator[ClipRecord]: ...
    def close(self) -> None: ...


class _StoredPoint:
    """Stand-in for a pickled ``PointStruct``: keeps its fields (pydantic v2 or v1 state)."""

    fields: dict[str, Any]

    def __setstate__(self, state: Any) -> None:
        inner = state.get("__dict__", state) if isinstance(state, dict) else None
        if not isinstance(inner, dict):
            raise pickle.UnpicklingError("a stored point without fields")
        self.fields = inner


class _PointUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == _POINT_CLASS:
            return _StoredPoint
        if (module, name) in _SAFE_BUILTINS:
            return _SAFE_BUILTINS[(module, name)]
        raise pickle.UnpicklingError(f"unexpected class {module}.{name} in a stored point")


def _point_key(point_id: Any) -> tuple[str, int]:
    """Local Qdrant's scroll order: string (UUID) ids by text, integer ids first by value."""
    return (point_id, 0) if isinstance(point_id, str) else ("", int(point_id))


def _canonical(point_id: Any) -> Any:
    if isinstance(point_id, str):
        try:
            return str(uuid.UUID(point_id))
        except ValueError:
            return point_id
    return point_id


def _payloads(db: Path) -> dict[Any, dict[str, Any]]:
    """Payload of every point stored in ``db``, by id (the latest row of each id)."""
    out: dict[Any, dict[str, Any]] = {}
    try:
        with sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True) as conn:
            rows = conn.execute("SELECT point FROM points ORDER BY rowid DESC").fetchall()
    except sqlite3.Error as exc:
        raise UnknownStorage(f"{db}: {exc}") from exc
    for (blob,) in rows:
        try:
            point = _PointUnpickler(io.BytesIO(blob)).load()
        except (pickle.UnpicklingError, EOFError, AttributeError, TypeError, ValueError) as exc:
            raise UnknownStorage(f"{db}: {exc}") from exc
        if not isinstance(point, _StoredPoint) or "id" not in point.fields:
            raise UnknownStorage(f"{db}: a row that is not a stored point")
        out.setdefault(_canonical(point.fields["id"]), point.fields.get("payload") or {})
    return out


class LocalRecords:
    """The clip records of an embedded catalog, read-only, holding its lock until :meth:`close`."""

    def __init__(self, payloads: dict[Any, dict[str, Any]], lock: IO[str] | None) -> None:
        self._payloads = dict(sorted(payloads.items(), key=lambda item: _point_key(item[0])))
        self._lock = lock

    @classmethod
    def open(cls, path: Path) -> LocalRecords:
        """Read the catalog at ``path``; :class:`CatalogBusy` while another process has it open,
        :class:`UnknownStorage` when its files are not what this reader knows. A catalog that
        does not exist yet reads as empty (nothing is created)."""
        meta_path = path / "meta.json"
        if not meta_path.is_file():
            return cls({}, None)
        lock_path = path / ".lock"
        lock = lock_path.open("r+") if lock_path.is_file() else None
        try:
            if lock is not None:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise CatalogBusy(busy_message(path)) from None
            try:
                collections = json.loads(meta_path.read_text(encoding="utf-8"))["collections"]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise UnknownStorage(f"{meta_path}: {exc}") from exc
            db = path / "collection" / CLIPS / "storage.sqlite"
            payloads = _payloads(db) if CLIPS in collections and db.is_file() else {}
            return cls(payloads, lock)
        except BaseException:
            if lock is not None:
                lock.close()  # closing the file releases the flock
            raise

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def get(self, clip_id: str) -> ClipRecord | None:
        payload = self._payloads.get(_canonical(clip_id))
        return None if payload is None else record_from_payload(payload)

    def find_by_path(self, path: str) -> ClipRecord | None:
        for payload in self._payloads.values():
            if (payload.get("file") or {}).get("path") == path:
                return record_from_payload(payload)
        return None

    def iter_clip_ids(self) -> Iterator[str]:
        yield from (str(point_id) for point_id in self._payloads)

    def iter_records(self) -> Iterator[ClipRecord]:
        yield from (record_from_payload(payload) for payload in self._payloads.values())


def open_records(*, path: Path, url: str | None, api_key: str | None = None) -> LocalRecords | Catalog:
    """Records of the catalog: straight from the embedded storage, else (a server, or files this
    reader does not know) through :class:`~rayflow.catalog.store.Catalog`."""
    if url is None:
        try:
            return LocalRecords.open(path)
        except UnknownStorage as exc:
            log.info("reading the catalog through qdrant_client: %s", exc)
    from rayflow.catalog.store import Catalog

    return Catalog.open(path=path, url=url, api_key=api_key)
