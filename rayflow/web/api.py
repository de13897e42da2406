"""The JSON API the page uses (``/api/...``); documented in docs/web.md.

Search and "similar" call the same engine as ``rayflow search`` / ``rayflow similar``
(:mod:`rayflow.catalog.search`); the filter controls become ``--where`` clauses,
each parsed on its own by :func:`rayflow.catalog.schema.parse_where` (so a value can
never smuggle in another clause). Clip pages read the record from the catalog, or
from its JSON sidecar while the catalog is busy (see :mod:`rayflow.web.access`).
Records go out as JSON; the page escapes everything it shows.
"""

from __future__ import annotations

import logging
import re
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard, get_args

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from rayflow import __version__
from rayflow.catalog import schema
from rayflow.catalog.schema import CLIPS
from rayflow.catalog.search import (
    BROWSE_QUERIES,
    SIMILAR_THRESHOLD,
    STOPWORDS,
    Hit,
    SearchError,
    SearchMode,
    Target,
    query_terms,
    search,
    similar,
)
from rayflow.catalog.store import ModelMismatch
from rayflow.config import Settings
from rayflow.engine.progress import read_live
from rayflow.engine.searcher import SearchFailed
from rayflow.engine.session import last_summaries
from rayflow.record import ClipRecord
from rayflow.web.access import CatalogAccess, CatalogUnavailable, SidecarRecords, ingest_pid
from rayflow.web.media import media_url, valid_clip_id

if TYPE_CHECKING:
    from rayflow.catalog.vectors import Encoder

log = logging.getLogger(__name__)

MAX_LIMIT = 200
RESOLUTIONS = {"4k": ">=2160p", "1440p": ">=1440p", "1080p": ">=1080p", "720p": ">=720p", "sd": "<720p"}
"""Resolution control values -> ``resolution`` clause (height, as ``--where`` reads ``Np``)."""


class BadRequest(ValueError):
    """A parameter the API cannot use (400)."""


def _json(doc: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(doc, status_code=status, headers={"cache-control": "no-store"})


def _is_mode(value: str) -> TypeGuard[SearchMode]:
    return value in get_args(SearchMode)


def _is_target(value: str) -> TypeGuard[Target]:
    return value in get_args(Target)


def _error(message: str, status: int, **extra: Any) -> JSONResponse:
    return _json({"error": message, **extra}, status)


# ----------------------------------------------------------------------------- cards

def resolution_label(width: int | None, height: int | None) -> str | None:
    """``4K``, ``1080p``... from the shorter side (so vertical video reads the same)."""
    if not width or not height:
        return None
    short = min(width, height)
    for threshold, label in ((2160, "4K"), (1440, "1440p"), (1080, "1080p"), (720, "720p")):
        if short >= threshold:
            return label
    return f"{short}p"


def primary_thumbnail(record: ClipRecord) -> str | None:
    best = record.analysis.best_thumbnails if record.analysis else []
    chosen = next((t for t in best if t.primary), best[0] if best else None)
    if chosen is not None:
        return chosen.path
    return record.thumbnails[0].path if record.thumbnails else None


def _card(clip_id: str, name: str, path: str, filters: dict[str, Any], thumb: str | None,
          extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a result card shows: name, duration, resolution badge, HDR/speech badges, a frame."""
    return {
        "clip_id": clip_id, "name": name, "path": path,
        "duration_s": filters.get("duration_s"), "codec": filters.get("codec"),
        "width": filters.get("width"), "height": filters.get("height"),
        "resolution": resolution_label(filters.get("width"), filters.get("height")),
        "hdr": bool(filters.get("hdr")), "has_speech": bool(filters.get("has_speech")),
        "camera": " ".join(x for x in (filters.get("camera_make"), filters.get("camera_model")) if x) or None,
        "captured_at": filters.get("captured_at"), "status": filters.get("status"),
        "thumbnail": media_url(thumb), **(extra or {}),
    }


def record_card(record: ClipRecord) -> dict[str, Any]:
    hdr_format = record.video.hdr.format if record.video else None
    return _card(record.clip_id, record.file.name, record.file.path, schema.filter_payload(record),
                 primary_thumbnail(record),
                 {"hdr_format": hdr_format, "errors": len(record.errors),
                  "ingested_at": record.ingested_at.isoformat() if record.ingested_at else None})


def _payload_card(clip_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    file = payload.get("file") or {}
    analysis = payload.get("analysis") or {}
    best = analysis.get("best_thumbnails") or []
    chosen = next((t for t in best if t.get("primary")), best[0] if best else None)
    if chosen is None and payload.get("thumbnails"):
        chosen = payload["thumbnails"][0]
    hdr = ((payload.get("video") or {}).get("hdr") or {}).get("format")
    extra = {"hdr_format": hdr, "errors": len(payload.get("errors") or {})}
    return _card(clip_id, str(file.get("name", "")), str(file.get("path", "")), payload.get(schema.FILTER_KEY) or {},
                 chosen.get("path") if chosen else None, extra)


CARD_FIELDS = [schema.FILTER_KEY, "file", "analysis.best_thumbnails", "thumbnails", "video.hdr.format", "errors"]


def _hit_cards(catalog: Any, hits: list[Hit]) -> list[dict[str, Any]]:
    """Each hit as a card (badges from the clip's payload) plus the moment that matched."""
    ids = list(dict.fromkeys(h.clip_id for h in hits))
    payloads = {str(p.id): p.payload or {} for p in catalog.client.retrieve(CLIPS, ids, with_payload=CARD_FIELDS)}
    out = []
    for rank, hit in enumerate(hits, start=1):
        card = _payload_card(hit.clip_id, payloads.get(hit.clip_id, {"file": {"name": hit.name, "path": hit.path}}))
        card.update({
            "rank": rank, "score": hit.score, "start_s": hit.start_s, "end_s": hit.end_s, "text": hit.text,
            "moment_kind": hit.moment_kind, "moment_index": hit.moment_index, "why": hit.why,
            "matched": list(hit.matched),
        })
        moment_thumb = media_url(hit.thumbnail)
        if hit.start_s is not None and moment_thumb:
            card["moment_thumbnail"] = moment_thumb
        out.append(card)
    return out


# ----------------------------------------------------------------------------- filters

def _clean(name: str, value: str) -> str:
    if any(ch in value for ch in "\"'\n\r") or len(value) > 200:
        raise BadRequest(f"{name}: quotes, line breaks and values over 200 characters are not accepted")
    return value.strip()


def where_clauses(params: dict[str, str]) -> list[str]:
    """The filter controls as ``--where`` clauses (one per control that is set)."""
    clauses: list[str] = []
    if codec := params.get("codec", "").strip():
        clauses.append(f'codec="{_clean("codec", codec)}"')
    if res := params.get("resolution", "").strip().lower():
        if res not in RESOLUTIONS:
            raise BadRequest(f"resolution must be one of {', '.join(RESOLUTIONS)}")
        clauses.append(f"resolution{RESOLUTIONS[res]}")
    for key, field_name in (("hdr", "hdr"), ("speech", "has_speech")):
        value = params.get(key, "").strip().lower()
        if value:
            if value not in ("true", "false"):
                raise BadRequest(f"{key} must be true or false")
            clauses.append(f"{field_name}={value}")
    if camera := params.get("camera", "").strip():
        clauses.append(f'model="{_clean("camera", camera)}"')
    if make := params.get("make", "").strip():
        clauses.append(f'make="{_clean("make", make)}"')
    for key, op in (("from", ">="), ("to", "<=")):
        if value := params.get(key, "").strip():
            clauses.append(f'captured{op}"{_clean(key, value)}"')
    for key, op in (("min_duration", ">="), ("max_duration", "<=")):
        if value := params.get(key, "").strip():
            clauses.append(f'duration{op}"{_clean(key, value)}"')
    return clauses


def build_filter(params: dict[str, str]) -> tuple[Any, list[str]]:
    """Parsed filter (controls AND the raw ``where`` text, if any) and the clauses it came from."""
    clauses = where_clauses(params)
    parts = [schema.parse_where(c) for c in clauses]
    raw = params.get("where", "").strip()
    if raw:
        parts.append(schema.parse_where(raw))
        clauses.append(raw)
    return schema.merge_filters(*parts), clauses


def _limit(params: dict[str, str], default: int) -> int:
    try:
        value = int(params.get("limit", default))
    except ValueError:
        raise BadRequest("limit must be a whole number") from None
    return max(1, min(MAX_LIMIT, value))


# ----------------------------------------------------------------------------- the API

@dataclass
class Api:
    settings: Settings
    access: CatalogAccess
    records: SidecarRecords = field(init=False)
    _encoders: dict[str, Encoder] = field(default_factory=dict, init=False)
    _encoder_lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        self.records = SidecarRecords(self.settings.records_dir)

    # -- models (loaded once, on the first semantic/hybrid search)

    def text_encoder(self) -> Encoder:
        with self._encoder_lock:
            if "text" not in self._encoders:
                from rayflow.engine.searcher import load_query_encoder

                embed = getattr(self.settings, "embed", None)
                # NumPy MiniLM: no torch
                self._encoders["text"] = load_query_encoder(getattr(embed, "text_model", None))
            return self._encoders["text"]

    def image_encoder(self, catalog: Any) -> Encoder | None:
        meta = catalog.meta
        name = getattr(getattr(self.settings, "embed", None), "image_model", None)
        if meta is None or not meta.image_model or not name:
            return None
        with self._encoder_lock:
            if "image" not in self._encoders:
                from rayflow.engine.searcher import load_image_encoder

                self._encoders["image"] = load_image_encoder(name)
            return self._encoders["image"]

    def warm(self) -> None:
        """Load the text model now (``rayflow serve`` does this in the background at startup)."""
        try:
            self.text_encoder()
        except Exception as exc:  # the first search will report it to the user
            log.warning("could not preload the text model: %s", exc)

    # -- endpoints

    def status(self, request: Request) -> JSONResponse:
        reason = self.access.unavailable_reason()
        return _json({
            "version": __version__, "home": str(self.settings.home), "output": str(self.settings.output_dir),
            "catalog": {"mode": "server" if self.access.shared else "embedded", "available": reason is None,
                        "open": self.access.is_open, "reason": reason},
            "ingest_pid": ingest_pid(self.settings.home), "read_only": True,
            "where_fields": list(schema.WHERE_FIELDS),
        })

    def _records(self) -> tuple[list[ClipRecord], str, str | None]:
        """All records, from the catalog when it can be opened, else from the sidecars."""
        try:
            with self.access.open() as catalog:
                return list(catalog.iter_records()), "catalog", None
        except CatalogUnavailable as exc:
            return self.records.all(), "records", str(exc)

    def clips(self, request: Request) -> JSONResponse:
        params = dict(request.query_params)
        limit = _limit(params, 60)
        try:
            offset = max(0, int(params.get("offset", 0)))
        except ValueError:
            return _error("offset must be a whole number", 400)
        records, source, notice = self._records()
        records.sort(key=lambda r: (r.ingested_at is not None, r.ingested_at, r.clip_id), reverse=True)
        page = records[offset:offset + limit]
        return _json({"total": len(records), "offset": offset, "source": source, "notice": notice,
                      "results": [record_card(r) for r in page]})

    def facets(self, request: Request) -> JSONResponse:
        """Values present in the catalog, for the filter controls."""
        records, source, notice = self._records()
        codecs: set[str] = set()
        cameras: set[str] = set()
        makes: set[str] = set()
        durations: list[float] = []
        dates: list[str] = []
        for record in records:
            f = schema.filter_payload(record)
            if f["codec"]:
                codecs.add(f["codec"])
            if f["camera_model"]:
                cameras.add(f["camera_model"])
            if f["camera_make"]:
                makes.add(f["camera_make"])
            if f["duration_s"] is not None:
                durations.append(f["duration_s"])
            if f["captured_at"]:
                dates.append(f["captured_at"][:10])
        return _json({
            "source": source, "notice": notice, "clips": len(records),
            "codecs": sorted(codecs), "cameras": sorted(cameras), "makes": sorted(makes),
            "resolutions": list(RESOLUTIONS),
            "duration_s": [min(durations), max(durations)] if durations else None,
            "captured": [min(dates), max(dates)] if dates else None,
        })

    def search(self, request: Request) -> JSONResponse:
        params = dict(request.query_params)
        done = self._search(params, _hit_cards)
        if isinstance(done, JSONResponse):
            return done
        (query, mode, target, clauses), results = done
        browsing = query in BROWSE_QUERIES
        terms = [t for t in query_terms(query) if t not in STOPWORDS] or query_terms(query)
        note = None
        if not results:
            note = ("no clips pass these filters" if browsing else
                    "no good match: every clip scored under the relevance threshold")
        return _json({"query": query, "mode": "filters" if browsing else mode, "in": target, "where": clauses,
                      "terms": [] if browsing else terms, "results": results, "note": note})

    def export(self, request: Request) -> Response:
        """The search's results as a timeline file (``format`` = edl | otio | fcpxml | csv)."""
        from rayflow.handoff.export import FORMATS, MEDIA_TYPES, events_for_hits, is_export_format, write

        params = dict(request.query_params)
        fmt = params.pop("format", "edl")
        if not is_export_format(fmt):
            return _error(f"format must be one of {', '.join(FORMATS)}", 400)
        query = params.get("q", "").strip()
        done = self._search(params, lambda catalog, hits: events_for_hits(catalog, hits, query))
        if isinstance(done, JSONResponse):
            return done
        _, events = done
        if not events:
            return _error("no results to export", 404)
        media_type, ext = MEDIA_TYPES[fmt]
        with tempfile.TemporaryDirectory(prefix="rayflow-export-") as tmp:
            out = Path(tmp) / f"export{ext}"
            write(events, fmt, out, name=f"rayflow: {query}")
            body = out.read_bytes()
        name = re.sub(r"[^A-Za-z0-9_-]+", "_", query)[:40].strip("_") or "export"
        return Response(body, media_type=media_type,
                        headers={"content-disposition": f'attachment; filename="rayflow_{name}{ext}"'})

    def _search(self, params: dict[str, str], use: Callable[[Any, list[Hit]], Any]
                ) -> tuple[tuple[str, str, str, list[str]], Any] | JSONResponse:
        """Validate the search parameters, run the search, and ``use(catalog, hits)`` while the
        catalog is open; ((query, mode, in, where clauses), what ``use`` returned) or an error."""
        query = params.get("q", "").strip()
        mode = params.get("mode", "hybrid")
        target = params.get("in", "clips")
        browsing = query in BROWSE_QUERIES  # no words: the clips that pass the filters
        if not _is_mode(mode):
            return _error("mode must be semantic, keyword or hybrid", 400)
        if not _is_target(target):
            return _error("in must be clips or moments", 400)
        try:
            limit = _limit(params, 24)
            flt, clauses = build_filter(params)
        except (BadRequest, schema.WhereError) as exc:
            return _error(str(exc), 400)
        reason = self.access.unavailable_reason()
        if reason is not None:  # before loading a model for nothing
            return _error(reason, 503, busy=True)
        try:
            encoder = self.text_encoder() if mode != "keyword" and not browsing else None
            with self.access.open() as catalog:
                image_encoder = self.image_encoder(catalog) if encoder is not None else None
                hits = search(catalog, query, encoder=encoder, image_encoder=image_encoder,
                              mode=mode, target=target, where=flt, limit=limit)
                used = use(catalog, hits)
        except CatalogUnavailable as exc:
            return _error(str(exc), 503, busy=True)
        except ModelMismatch as exc:
            return _error(str(exc), 409)
        except SearchFailed as exc:  # the model's files are missing here
            return _error(str(exc), 503)
        except SearchError as exc:
            return _error(str(exc), 400)
        return (query, mode, target, clauses), used

    def _record(self, clip_id: str) -> tuple[ClipRecord | None, str, str | None]:
        try:
            with self.access.open() as catalog:
                record = catalog.get(clip_id)
            if record is not None:
                return record, "catalog", None
            return self.records.get(clip_id), "records", None
        except CatalogUnavailable as exc:
            return self.records.get(clip_id), "records", str(exc)

    def clip(self, request: Request) -> JSONResponse:
        clip_id = request.path_params["clip_id"]
        if not valid_clip_id(clip_id):
            return _error("not a clip id", 404)
        record, source, notice = self._record(clip_id)
        if record is None:
            return _error("no such clip", 404)
        return _json({"source": source, "notice": notice, "card": record_card(record),
                      "record": record.model_dump(mode="json"), **clip_media(record)})

    def similar(self, request: Request) -> JSONResponse:
        clip_id = request.path_params["clip_id"]
        if not valid_clip_id(clip_id):
            return _error("not a clip id", 404)
        try:
            limit = _limit(dict(request.query_params), 8)
            with self.access.open() as catalog:
                try:
                    hits = similar(catalog, clip_id, by="text", limit=limit)
                except SearchError as exc:
                    return _json({"clip_id": clip_id, "results": [], "threshold": SIMILAR_THRESHOLD,
                                  "note": str(exc)})
                results = _hit_cards(catalog, hits)
        except BadRequest as exc:
            return _error(str(exc), 400)
        except CatalogUnavailable as exc:
            return _error(str(exc), 503, busy=True)
        note = None if results else f"No similar clips (none at similarity ≥ {SIMILAR_THRESHOLD:.0%})."
        return _json({"clip_id": clip_id, "results": results, "threshold": SIMILAR_THRESHOLD, "note": note})

    def runs(self, request: Request) -> JSONResponse:
        try:
            limit = _limit(dict(request.query_params), 20)
        except BadRequest as exc:
            return _error(str(exc), 400)
        out = []
        for s in last_summaries(self.settings.home, limit):
            seconds = (s.finished_at - s.started_at).total_seconds() if s.finished_at else None
            out.append({
                "run_id": s.run_id, "started_at": s.started_at.isoformat(),
                "finished_at": s.finished_at.isoformat() if s.finished_at else None, "seconds": seconds,
                "files": len(s.files), "counts": s.counts, "notes": s.notes,
                "failures": [{"path": f.path, "clip_id": f.clip_id, "errors": f.errors}
                             for f in s.files if f.status == "failed"],
            })
        return _json({"runs": out})

    def dupes(self, request: Request) -> JSONResponse:
        """Near-duplicate pairs among the catalogued videos (their proxies), each with both clips'
        cards, the time offset and the overlap in each clip (see :mod:`rayflow.web.dupes`)."""
        from rayflow.web.dupes import find_dupes

        records, source, notice = self._records()
        found = find_dupes(records, output_dir=self.settings.output_dir, cache_dir=self.settings.home / "vhash")
        return _json({
            "source": source, "notice": notice, "compared": found.compared,
            "pairs": [{**pair.to_dict(), "a": record_card(a), "b": record_card(b)} for pair, a, b in found.pairs],
            "no_proxy": [record_card(r) for r in found.no_proxy],
            "errors": [{"card": record_card(r), "error": error} for r, error in found.errors],
        })

    def progress(self, request: Request) -> JSONResponse:
        live = read_live(self.settings.home)
        return _json(live if live is not None else {"state": "none"})


def clip_media(record: ClipRecord) -> dict[str, Any]:
    """URLs of a clip's proxy and frames, the three ranked thumbnails with their reasons,
    and the shot strip (one frame per shot: the sampled thumbnail nearest the shot's middle)."""
    best = record.analysis.best_thumbnails if record.analysis else []
    thumbs = sorted(record.thumbnails, key=lambda t: t.timestamp_s)
    shots = record.analysis.shots.shots if record.analysis and record.analysis.shots else []
    strip = []
    for shot in shots:
        mid = (shot.start_s + shot.end_s) / 2
        inside = [t for t in thumbs if shot.start_s <= t.timestamp_s <= shot.end_s] or thumbs
        frame = min(inside, key=lambda t: abs(t.timestamp_s - mid)) if inside else None
        strip.append({"index": shot.index, "start_s": shot.start_s, "end_s": shot.end_s,
                      "thumbnail": media_url(frame.path) if frame else None,
                      "thumbnail_s": frame.timestamp_s if frame else None})
    return {
        "proxy": media_url(record.proxy.path) if record.proxy else None,
        "best": [{"url": media_url(b.path), "timestamp_s": b.timestamp_s, "score": b.score, "reason": b.reason,
                  "primary": b.primary} for b in best],
        "frames": [{"url": media_url(t.path), "timestamp_s": t.timestamp_s} for t in thumbs],
        "shots": strip,
    }
