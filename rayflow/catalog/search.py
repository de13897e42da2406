"""Search the catalog: semantic, keyword, hybrid; clips or moments; filters alone; similar clips.

Every result carries a **relevance** on a 0-1 scale (see :mod:`rayflow.catalog.relevance`:
a logistic model over the query-text cosine and the share of the query's words found,
calibrated on a labelled corpus), says **why** it matched (speech, on-screen text,
description, technical facts, file name, shot tags, image) and shows the text that
matched. Results under the threshold are dropped, so a query about something no clip
holds answers nothing ("no good match").

How candidates are gathered (local mode and a server run the same code):

1. Moments: the query's text vector against each moment's ``text`` vector, and BM25
   over the moments' ``_text`` (Qdrant's text index) — the top ``candidates`` of each;
   an image-text vector against ``image`` when the catalog has one.
2. Clips: the text vector against the clip's ``summary``, ``transcript`` and
   ``technical`` vectors (one batch), and BM25 over the clip's ``_text``.
3. Each candidate is scored: a moment by its own cosine and word coverage; a clip by
   its best cosine (over its vectors and its candidate moments) and the coverage of
   its whole keyword text. A clip hit shows its best moment (time range, frame).

BM25 scores only gather candidates: they depend on the corpus and mean nothing to a
user. ``query`` ``""`` or ``"*"`` with filters browses by the filters alone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from qdrant_client import models
from qdrant_client.http.exceptions import UnexpectedResponse

from rayflow.catalog import relevance as rel
from rayflow.catalog import schema
from rayflow.catalog.hits import Hit
from rayflow.catalog.moments import name_words
from rayflow.catalog.relevance import (
    BROWSE_QUERIES,
    SIMILAR_THRESHOLD,
    STOPWORDS,
    content_terms,
    keyword_query,
    query_terms,
)
from rayflow.catalog.schema import CLIPS, MOMENTS
from rayflow.catalog.store import Catalog, ModelMismatch, record_from_payload

log = logging.getLogger(__name__)

__all__ = ["BROWSE_QUERIES", "STOPWORDS", "CANDIDATES", "Hit", "SearchError", "browse", "keyword_query", "query_terms",
           "search", "similar", "SIMILAR_THRESHOLD"]

SearchMode = Literal["semantic", "keyword", "hybrid"]
Target = Literal["clips", "moments"]
SimilarBy = Literal["text", "image"]

CANDIDATES = 50
"""Candidates each source contributes before scoring; more costs latency, rarely changes the top 10."""


class SearchError(RuntimeError):
    """A search that cannot run as asked (no vectors yet, no image model, unknown clip)."""


MOMENT_FIELDS = ["clip_id", "index", "kind", "start_s", "end_s", "text", "speech", "screen_text", "tags",
                 "thumbnail", "file"]
"""Payload fetched for moment hits (local mode copies what it returns; the keys below are small)."""
CLIP_FIELDS = ["file", "analysis.description", "analysis.caption", "analysis.best_thumbnails", "thumbnails"]
VECTOR_WHY = {schema.SUMMARY: "description", schema.TRANSCRIPT: "speech", schema.TECHNICAL: "technical"}


@dataclass
class _Evidence:
    """What is known about one candidate (a moment or a clip)."""

    payload: dict[str, Any] = field(default_factory=dict)
    cosine: float | None = None
    vector: str | None = None
    """Which clip vector gave ``cosine`` (clips only)."""
    image: float | None = None
    score: float = 0.0
    coverage: float = 0.0


def _dot(a: Sequence[float] | None, b: Any) -> float | None:
    if a is None or b is None:
        return None
    return float(np.dot(np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)))


class _Searcher:
    """One query's vectors, terms and filter, and the evidence gathered for it."""

    def __init__(self, catalog: Catalog, query: str, mode: SearchMode, encoder: Any | None,
                 image_encoder: Any | None, where: models.Filter | None, candidates: int) -> None:
        self.catalog, self.query, self.mode, self.where, self.candidates = catalog, query, mode, where, candidates
        self.terms = content_terms(query) if mode != "semantic" else []
        self.text_vector: list[float] | None = None
        self.image_vector: list[float] | None = None
        if mode in ("semantic", "hybrid"):
            if encoder is None:
                raise SearchError(f"{mode} search needs a text encoder")
            catalog.check_model(text_model=encoder.model_id, text_dim=encoder.dim)
            self.text_vector = [float(x) for x in np.asarray(encoder.encode([query]))[0]]
            meta = catalog.meta
            if image_encoder is not None and meta is not None and meta.image_model:
                if image_encoder.model_id != meta.image_model:
                    raise ModelMismatch(f"the catalog's image vectors come from {meta.image_model}, "
                                        f"not {image_encoder.model_id}; run `rayflow reindex`")
                self.image_vector = [float(x) for x in np.asarray(image_encoder.encode([query]))[0]]

    @property
    def uses_keywords(self) -> bool:
        return self.mode in ("keyword", "hybrid")

    def _query(self, collection: str, query: Any, using: str, fields: Any, flt: models.Filter | None = None,
               limit: int | None = None) -> list[models.ScoredPoint]:
        return self.catalog.client.query_points(
            collection, query=query, using=using, limit=limit or self.candidates,
            query_filter=schema.merge_filters(self.where, flt), with_payload=fields).points

    # -- moments

    def moment_evidence(self, clip_ids: list[str] | None = None) -> dict[str, _Evidence]:
        """Point id -> evidence for the candidate moments (optionally only of ``clip_ids``)."""
        only = (models.Filter(must=[models.FieldCondition(key="clip_id", match=models.MatchAny(any=clip_ids))])
                if clip_ids else None)
        found: dict[str, _Evidence] = {}
        if self.text_vector is not None:
            for p in self._query(MOMENTS, self.text_vector, schema.TEXT, MOMENT_FIELDS, only):
                found[str(p.id)] = _Evidence(payload=p.payload or {}, cosine=float(p.score))
        if self.image_vector is not None:
            for p in self._query(MOMENTS, self.image_vector, schema.IMAGE, MOMENT_FIELDS, only):
                found.setdefault(str(p.id), _Evidence(payload=p.payload or {})).image = float(p.score)
        if self.uses_keywords and self.terms:
            text = models.TextQuery(text=keyword_query(self.query))
            for p in self._query(MOMENTS, text, schema.TEXT_KEY, MOMENT_FIELDS, only):
                found.setdefault(str(p.id), _Evidence(payload=p.payload or {}))
        self._fill_cosines(MOMENTS, found, [schema.TEXT])
        for ev in found.values():
            ev.coverage = rel.coverage(self.terms, _moment_stems(ev.payload))[0]
            ev.score = self.score(ev)
        return found

    def score(self, ev: _Evidence) -> float:
        text = rel.relevance(self.mode, ev.cosine, ev.coverage)
        image = rel.IMAGE_MODEL(ev.image, 0.0) if ev.image is not None else 0.0
        return max(text, image)

    def _fill_cosines(self, collection: str, found: dict[str, _Evidence], names: list[str]) -> None:
        """Cosines for candidates that only the keyword index returned."""
        if self.text_vector is None:
            return
        missing = [pid for pid, ev in found.items() if ev.cosine is None]
        if not missing:
            return
        for point in self.catalog.client.retrieve(collection, missing, with_payload=False, with_vectors=names):
            vectors = point.vector if isinstance(point.vector, dict) else {}
            best = [(c, n) for n in names if (c := _dot(self.text_vector, vectors.get(n))) is not None]
            if best:
                ev = found[str(point.id)]
                ev.cosine, ev.vector = max(best)

    # -- clips

    def clip_evidence(self) -> dict[str, _Evidence]:
        """Clip id -> evidence (best cosine over its vectors, coverage of its keyword text)."""
        found: dict[str, _Evidence] = {}
        if self.text_vector is not None:
            requests = [models.QueryRequest(query=self.text_vector, using=name, filter=self.where,
                                            limit=self.candidates, with_payload=False)
                        for name in schema.CLIP_TEXT_VECTORS]
            for name, response in zip(schema.CLIP_TEXT_VECTORS,
                                      self.catalog.client.query_batch_points(CLIPS, requests=requests),
                                      strict=True):
                for p in response.points:
                    ev = found.setdefault(str(p.id), _Evidence())
                    if ev.cosine is None or p.score > ev.cosine:
                        ev.cosine, ev.vector = float(p.score), name
        if self.uses_keywords and self.terms:
            for p in self._query(CLIPS, models.TextQuery(text=keyword_query(self.query)), schema.TEXT_KEY, False):
                found.setdefault(str(p.id), _Evidence())
        self._fill_cosines(CLIPS, found, list(schema.CLIP_TEXT_VECTORS))
        if self.terms and found:
            for point in self.catalog.client.retrieve(CLIPS, list(found), with_payload=[schema.TEXT_KEY]):
                text = str((point.payload or {}).get(schema.TEXT_KEY, ""))
                found[str(point.id)].coverage = rel.coverage(self.terms, text)[0]
        return found


def _moment_stems(payload: dict[str, Any]) -> set[str]:
    parts = [payload.get("speech") or "", payload.get("screen_text") or "", " ".join(payload.get("tags") or []),
             name_words(str((payload.get("file") or {}).get("name", "")))]
    if not any(parts[:3]):
        parts.append(str(payload.get("text", "")))
    return rel.text_stems(" ".join(parts))


def _moment_why(terms: list[str], ev: _Evidence) -> tuple[str, str, tuple[str, ...]]:
    """(why, the field's text, words found) for a moment: the field holding most query words,
    else the moment's own kind."""
    p = ev.payload
    if ev.image is not None and rel.IMAGE_MODEL(ev.image, 0.0) > rel.relevance("semantic", ev.cosine, 0.0):
        return "image", str(p.get("text", "")), ()
    fields = [("speech", str(p.get("speech") or "")), ("on-screen text", str(p.get("screen_text") or "")),
              ("shot tags", ", ".join(p.get("tags") or [])),
              ("file name", name_words(str((p.get("file") or {}).get("name", ""))))]
    best = max(((rel.coverage(terms, text), why, text) for why, text in fields if text),
                key=lambda x: x[0][0], default=None)
    if best is not None and best[0][0] > 0:
        (_, found), why, text = best
        return why, text, tuple(found)
    by_kind = {"speech": "speech", "screen_text": "on-screen text", "shot": "shot tags"}
    why = by_kind.get(str(p.get("kind")), "speech")
    text = dict(fields).get(why) or str(p.get("text", ""))
    return why, text, ()


def _clip_why(terms: list[str], ev: _Evidence, payload: dict[str, Any]) -> tuple[str, str, tuple[str, ...]]:
    """(why, text, words found) for a clip matched as a whole: the field holding most query
    words, else the vector that gave the best cosine."""
    from rayflow.catalog.moments import summary_text, technical_text, transcript_chunks

    try:
        record = record_from_payload(payload)
    except ValueError:  # an unreadable stored record still shows its file name
        record = None
    fields: list[tuple[str, str]] = []
    if record is not None:
        screen = " / ".join(dict.fromkeys(t.text for t in record.analysis.screen_text)) if record.analysis else ""
        fields = [("speech", " ".join(transcript_chunks(record))), ("on-screen text", screen),
                  ("description", summary_text(record)), ("technical", technical_text(record))]
    fields.append(("file name", name_words(str((payload.get("file") or {}).get("name", "")))))
    scored = [(rel.coverage(terms, text), why, text) for why, text in fields if text]
    best = max(scored, key=lambda x: x[0][0], default=None)
    if best is not None and best[0][0] > 0:
        (_, found), why, text = best
        return why, text, tuple(found)
    why = VECTOR_WHY.get(ev.vector or "", "description")
    return why, dict(fields).get(why, ""), ()


def _moment_hit(searcher: _Searcher, ev: _Evidence, score: float, clip_id: str | None = None) -> Hit:
    p = ev.payload
    why, text, found = _moment_why(searcher.terms, ev)
    return Hit(
        clip_id=clip_id or str(p.get("clip_id")), score=round(score, 3),
        path=str((p.get("file") or {}).get("path", "")), name=str((p.get("file") or {}).get("name", "")),
        start_s=p.get("start_s"), end_s=p.get("end_s"), text=text, thumbnail=p.get("thumbnail"),
        moment_index=p.get("index"), moment_kind=p.get("kind"), why=why, matched=found,
        cosine=None if ev.cosine is None else round(ev.cosine, 3),
        coverage=round(ev.coverage, 3) if searcher.terms else None,
    )


def _primary_thumbnail(payload: dict[str, Any]) -> str | None:
    thumbs = (payload.get("analysis") or {}).get("best_thumbnails") or []
    primary = next((t for t in thumbs if t.get("primary")), thumbs[0] if thumbs else None)
    if primary is None and payload.get("thumbnails"):
        primary = payload["thumbnails"][0]
    return primary.get("path") if primary else None


def _clip_hit(searcher: _Searcher, clip_id: str, ev: _Evidence, payload: dict[str, Any]) -> Hit:
    why, text, found = _clip_why(searcher.terms, ev, payload)
    file = payload.get("file") or {}
    return Hit(clip_id=clip_id, score=round(ev.score, 3), path=str(file.get("path", "")),
               name=str(file.get("name", "")), text=text, thumbnail=_primary_thumbnail(payload), why=why,
               matched=found, cosine=None if ev.cosine is None else round(ev.cosine, 3),
               coverage=round(ev.coverage, 3) if searcher.terms else None)


# ----------------------------------------------------------------------------- public API

def search(catalog: Catalog, query: str, *, encoder: Any | None = None, mode: SearchMode = "hybrid",
           target: Target = "clips", where: models.Filter | str | None = None, limit: int = 10,
           image_encoder: Any | None = None, candidates: int = CANDIDATES,
           threshold: float = rel.THRESHOLD) -> list[Hit]:
    """Search clips (one hit per clip, with its best moment) or moments (one hit per moment),
    best first, only hits whose relevance is at least ``threshold`` (0 shows every candidate).

    ``encoder`` is needed for semantic and hybrid; keyword needs no model. ``where`` is
    a parsed filter or a ``--where`` string (see ``schema.parse_where``). A query of
    ``""`` or ``"*"`` browses by ``where`` alone (see :func:`browse`). Raises
    ``ModelMismatch`` when ``encoder`` is not the catalog's model, ``SearchError``
    when the search cannot run, ``schema.WhereError`` for a bad filter."""
    flt = schema.parse_where(where) if isinstance(where, str) else where
    if query.strip() in BROWSE_QUERIES:
        return browse(catalog, where=flt, limit=limit)
    searcher = _Searcher(catalog, query, mode, encoder, image_encoder, flt, max(candidates, limit))
    try:
        if target == "moments":
            return _search_moments(searcher, limit, threshold)
        return _search_clips(searcher, limit, threshold)
    except UnexpectedResponse as exc:
        hint = (" (keyword and hybrid search need Qdrant >= 1.20 for BM25 text queries; try --mode semantic)"
                if searcher.uses_keywords else "")
        raise SearchError(f"Qdrant refused the query: {exc}{hint}") from exc


def _kept(ranked: list[tuple[str, _Evidence]], limit: int, threshold: float) -> list[tuple[str, _Evidence]]:
    ranked.sort(key=lambda kv: (-kv[1].score, kv[0]))
    n = rel.keep([ev.score for _, ev in ranked], threshold=threshold) if threshold > 0 else len(ranked)
    return ranked[:min(n, limit)]


def _search_moments(searcher: _Searcher, limit: int, threshold: float) -> list[Hit]:
    top = _kept(list(searcher.moment_evidence().items()), limit, threshold)
    return [_moment_hit(searcher, ev, ev.score) for _, ev in top]


def _scored_clips(searcher: _Searcher) -> tuple[dict[str, _Evidence], dict[str, _Evidence]]:
    """Every candidate clip's evidence, scored, and each one's best candidate moment."""
    clips = searcher.clip_evidence()
    moments = searcher.moment_evidence()
    best_moment: dict[str, _Evidence] = {}
    for ev in sorted(moments.values(), key=lambda e: -e.score):
        best_moment.setdefault(str(ev.payload.get("clip_id")), ev)
    for clip_id, m in best_moment.items():
        ev = clips.setdefault(clip_id, _Evidence(coverage=m.coverage))
        if m.cosine is not None and (ev.cosine is None or m.cosine > ev.cosine):
            ev.cosine, ev.vector = m.cosine, None
        ev.image = max(ev.image or 0.0, m.image) if m.image is not None else ev.image
    for ev in clips.values():
        ev.score = searcher.score(ev)
    return clips, best_moment


def clip_features(catalog: Catalog, query: str, *, encoder: Any | None, mode: SearchMode = "hybrid",
                  where: models.Filter | None = None) -> dict[str, tuple[float | None, float]]:
    """Clip id -> (cosine, coverage) for every candidate clip: what the relevance model reads
    (used to calibrate it: ``benchmarks/search.py --relevance``)."""
    searcher = _Searcher(catalog, query, mode, encoder, None, where, CANDIDATES)
    clips, _ = _scored_clips(searcher)
    return {cid: (ev.cosine, ev.coverage) for cid, ev in clips.items()}


def _search_clips(searcher: _Searcher, limit: int, threshold: float) -> list[Hit]:
    clips, best_moment = _scored_clips(searcher)
    top = _kept(list(clips.items()), limit, threshold)
    missing = [cid for cid, _ in top if cid not in best_moment]
    if missing:  # clips found as a whole: their best moment, from a query restricted to them
        for m in sorted(searcher.moment_evidence(missing).values(), key=lambda e: -e.score):
            best_moment.setdefault(str(m.payload.get("clip_id")), m)
    plain = [cid for cid, _ in top if best_moment.get(cid) is None or best_moment[cid].score < threshold]
    payloads = {str(p.id): p.payload or {} for p in searcher.catalog.client.retrieve(CLIPS, plain)} if plain else {}
    hits: list[Hit] = []
    for clip_id, ev in top:
        if clip_id in payloads:  # no moment matches well: the clip's own text says why
            hits.append(_clip_hit(searcher, clip_id, ev, payloads[clip_id]))
        else:
            hits.append(_moment_hit(searcher, best_moment[clip_id], ev.score, clip_id))
    return hits


def browse(catalog: Catalog, *, where: models.Filter | str | None = None, limit: int = 50) -> list[Hit]:
    """Clips that pass ``where`` (every clip without one), newest first: filters, no words."""
    flt = schema.parse_where(where) if isinstance(where, str) else where
    points: list[models.Record] = []
    offset: Any = None
    while True:
        batch, offset = catalog.client.scroll(CLIPS, scroll_filter=flt, limit=256, offset=offset,
                                              with_payload=[*CLIP_FIELDS, "ingested_at"])
        points.extend(batch)
        if offset is None:
            break
    points.sort(key=lambda p: str((p.payload or {}).get("ingested_at") or ""), reverse=True)
    hits = []
    for point in points[:limit]:
        payload = point.payload or {}
        file = payload.get("file") or {}
        analysis = payload.get("analysis") or {}
        hits.append(Hit(clip_id=str(point.id), score=None, path=str(file.get("path", "")),
                        name=str(file.get("name", "")), text=str(analysis.get("description") or ""),
                        thumbnail=_primary_thumbnail(payload), why="filters"))
    return hits


def similar(catalog: Catalog, clip_id: str, *, by: SimilarBy = "text", limit: int = 10,
            where: models.Filter | str | None = None, threshold: float | None = None) -> list[Hit]:
    """Clips nearest to ``clip_id``, never itself, with a cosine similarity of at least
    ``threshold`` (an empty list: "no similar clips"; None: ``SIMILAR_THRESHOLD`` for text,
    0 for image, whose cosines no offline model lets us calibrate). ``by="text"``: best cosine over the
    content vectors (summary, transcript) — technical traits are left out on purpose,
    so a re-encode of the same footage ranks first. ``by="image"``: the primary frame's
    image vector (needs an image–text model in the catalog)."""
    if threshold is None:
        threshold = SIMILAR_THRESHOLD if by == "text" else 0.0
    stored = catalog.vectors(clip_id)
    if not catalog.client.retrieve(CLIPS, [clip_id], with_payload=False):
        raise SearchError(f"no catalogued clip {clip_id}")
    flt = schema.parse_where(where) if isinstance(where, str) else where
    not_self = models.Filter(must_not=[models.HasIdCondition(has_id=[clip_id])])
    query_filter = schema.merge_filters(flt, not_self)
    if by == "image":
        if schema.IMAGE not in stored:
            raise SearchError("this clip has no image vector (no image–text model configured when it was "
                              "embedded); use --by text, or configure one and run `rayflow reindex`")
        names: list[str] = [schema.IMAGE]
    else:
        names = [n for n in (schema.SUMMARY, schema.TRANSCRIPT) if n in stored]
        if not names:
            raise SearchError("this clip has no text vectors yet; run `rayflow reindex`")
    responses = catalog.client.query_batch_points(CLIPS, requests=[
        models.QueryRequest(query=stored[n], using=n, filter=query_filter, limit=max(CANDIDATES, limit),
                            with_payload=False, score_threshold=threshold)
        for n in names
    ])
    scores: dict[str, tuple[float, str]] = {}
    for name, response in zip(names, responses, strict=True):  # best cosine over the compared vectors
        for point in response.points:
            if point.score > scores.get(str(point.id), (float("-inf"), ""))[0]:
                scores[str(point.id)] = (float(point.score), name)
    top = sorted(scores.items(), key=lambda kv: (-kv[1][0], kv[0]))[:limit]
    payloads = {str(p.id): p.payload or {}
                for p in catalog.client.retrieve(CLIPS, [c for c, _ in top], with_payload=CLIP_FIELDS)} if top else {}
    hits = []
    for other, (score, name) in top:
        payload = payloads.get(other, {})
        analysis = payload.get("analysis") or {}
        file = payload.get("file") or {}
        hits.append(Hit(clip_id=other, score=round(score, 3), path=str(file.get("path", "")),
                        name=str(file.get("name", "")),
                        text=str(analysis.get("description") or analysis.get("caption") or ""),
                        thumbnail=_primary_thumbnail(payload), why="similar " + VECTOR_WHY.get(name, name),
                        cosine=round(score, 3)))
    return hits
