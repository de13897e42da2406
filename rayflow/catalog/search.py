"""Search the catalog: semantic, keyword, hybrid; clips or moments; similar clips.

How a query is answered (one Qdrant query per collection, then a cheap merge):

- **semantic**: the query's text vector against each named vector; a clip's dense
  score is the best of its ``summary``/``transcript``/``technical`` cosines (a
  ``max`` formula over three prefetches, inside Qdrant). Max, not rank fusion:
  fusing three rankings lets a clip that is merely "technically similar" outvote
  the one whose transcript says exactly what was asked.
- **keyword**: BM25 over the ``_text`` field (Qdrant text index with ``scoring``;
  word tokenizer, lower-cased; works in local mode too).
- **hybrid** (default): the two lists fused with reciprocal-rank fusion by Qdrant's
  query API (``RrfQuery``, k = 60).

For ``--in clips`` the clip ranking is also fused (RRF, here in Python since Qdrant
cannot fuse across collections) with the best moment per clip from the ``moments``
collection: a query about one sentence in a 20-minute talk finds its clip through
that moment even when the clip-level transcript vector is an average of 40 chunks.
Each clip hit carries that moment's time range, text and frame.

Image vectors (an image–text model configured) join as one more prefetch: the
query's text embedded by that model against the ``image`` vectors.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

import numpy as np
from qdrant_client import models

from rayflow.catalog import schema
from rayflow.catalog.schema import CLIPS, MOMENTS
from rayflow.catalog.store import Catalog, ModelMismatch

log = logging.getLogger(__name__)

SearchMode = Literal["semantic", "keyword", "hybrid"]
Target = Literal["clips", "moments"]
SimilarBy = Literal["text", "image"]

RRF_K = 60
"""Reciprocal-rank-fusion constant: 1/(k + rank). 60 is the usual choice; smaller
values let the top of one list dominate."""
CANDIDATES = 50
"""Candidates each prefetch contributes before fusion; more costs latency, rarely changes the top 10."""


class Encoder(Protocol):
    """What search needs to embed a query (``ml.text_encoder.TextEncoder`` fits)."""

    @property
    def model_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def encode(self, texts: list[str]) -> np.ndarray: ...


class SearchError(RuntimeError):
    """A search that cannot run as asked (no vectors yet, no image model, unknown clip)."""


@dataclass(frozen=True)
class Hit:
    """One result: a clip, and where in it the query landed."""

    clip_id: str
    score: float
    """Fusion score for hybrid (RRF), cosine for semantic, BM25 for keyword: compare within one search only."""
    path: str
    name: str
    start_s: float | None = None
    end_s: float | None = None
    text: str = ""
    """The text that matched: the moment's text, else the clip's summary."""
    thumbnail: str | None = None
    moment_index: int | None = None
    moment_kind: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


STOPWORDS = frozenset({
    "a", "about", "above", "after", "again", "against", "all", "am", "an", "and", "any", "are", "as", "at",
    "be", "because", "been", "before", "being", "below", "between", "both", "but", "by", "can", "could", "did",
    "do", "does", "doing", "down", "during", "each", "few", "for", "from", "further", "had", "has", "have",
    "having", "he", "her", "here", "hers", "herself", "him", "himself", "his", "how", "i", "if", "in", "into",
    "is", "it", "its", "itself", "just", "me", "more", "most", "my", "myself", "no", "nor", "not", "now", "of",
    "off", "on", "once", "only", "or", "other", "our", "ours", "out", "over", "own", "same", "she", "should",
    "so", "some", "such", "than", "that", "the", "their", "theirs", "them", "then", "there", "these", "they",
    "this", "those", "through", "to", "too", "under", "until", "up", "very", "was", "we", "were", "what",
    "when", "where", "which", "while", "who", "whom", "why", "will", "with", "would", "you", "your", "yours",
})
"""English function words dropped from keyword queries. BM25 would score them (the
index keeps them: local mode only scores the default tokenizer), and in a hybrid
search "toast to the bride" then ranks clips for "to" and "the"."""


def query_terms(query: str) -> list[str]:
    """Lower-cased words of a query, as the text index tokenizes them (for highlighting)."""
    return [t.lower() for t in re.findall(r"[^\W_]+", query)]


def keyword_query(query: str) -> str:
    """The query's content words for BM25 (all of them when every word is a stop word)."""
    terms = query_terms(query)
    content = [t for t in terms if t not in STOPWORDS]
    return " ".join(content or terms)


# ----------------------------------------------------------------------------- building blocks

def _dense_clip_prefetch(vector: list[float], limit: int, names: Sequence[str]) -> models.Prefetch:
    """Best cosine over several named vectors of the clips collection (Qdrant ``max`` formula)."""
    inner = [models.Prefetch(query=vector, using=name, limit=limit) for name in names]
    if len(inner) == 1:
        return inner[0]
    slots = [f"$score[{i}]" for i in range(len(inner))]
    return models.Prefetch(
        prefetch=inner,
        # A clip missing from one list (no transcript, or ranked below `limit`) counts -1 there.
        query=models.FormulaQuery(formula=models.MaxExpression(max=list(slots)),
                                  defaults=dict.fromkeys(slots, -1.0)),
        limit=limit,
    )


def _keyword_prefetch(query: str, limit: int) -> models.Prefetch:
    return models.Prefetch(query=models.TextQuery(text=keyword_query(query)), using=schema.TEXT_KEY, limit=limit)


@dataclass
class _Plan:
    prefetch: list[models.Prefetch]

    def query(self, limit: int) -> dict[str, Any]:
        """Arguments for ``query_points``: a single source as is, several fused with RRF."""
        if len(self.prefetch) == 1:
            only = self.prefetch[0]
            if only.prefetch is not None:
                return {"prefetch": only.prefetch, "query": only.query, "limit": limit}
            return {"query": only.query, "using": only.using, "limit": limit}
        return {"prefetch": self.prefetch, "query": models.RrfQuery(rrf=models.Rrf(k=RRF_K)), "limit": limit}


Source = Literal["text", "image", "keyword"]


class _Searcher:
    def __init__(self, catalog: Catalog, query: str, mode: SearchMode, encoder: Encoder | None,
                 image_encoder: Encoder | None, where: models.Filter | None, candidates: int) -> None:
        self.catalog = catalog
        self.query = query
        self.mode = mode
        self.where = where
        self.candidates = candidates
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
    def sources(self) -> list[Source]:
        out: list[Source] = []
        if self.text_vector is not None:
            out.append("text")
        if self.image_vector is not None:
            out.append("image")
        if self.mode in ("keyword", "hybrid"):
            out.append("keyword")
        return out

    def prefetch(self, collection: str, source: Source) -> models.Prefetch:
        if source == "text":
            assert self.text_vector is not None
            names = schema.CLIP_TEXT_VECTORS if collection == CLIPS else (schema.TEXT,)
            return _dense_clip_prefetch(self.text_vector, self.candidates, names)
        if source == "image":
            assert self.image_vector is not None
            return models.Prefetch(query=self.image_vector, using=schema.IMAGE, limit=self.candidates)
        return _keyword_prefetch(self.query, self.candidates)

    def plan(self, collection: str, sources: Sequence[Source] | None = None) -> _Plan:
        return _Plan([self.prefetch(collection, s) for s in (sources or self.sources)])

    def clips(self, limit: int, source: Source) -> list[models.ScoredPoint]:
        return self.catalog.client.query_points(
            CLIPS, **self.plan(CLIPS, [source]).query(limit), query_filter=self.where, with_payload=False,
        ).points

    def moments(self, limit: int) -> list[models.ScoredPoint]:
        return self.catalog.client.query_points(
            MOMENTS, **self.plan(MOMENTS).query(limit), query_filter=self.where, with_payload=True,
        ).points

    def best_moments(self, limit: int, *, sources: Sequence[Source] | None = None,
                     clip_ids: list[str] | None = None) -> dict[str, models.ScoredPoint]:
        """clip_id -> its best moment (fused over ``sources``), for up to ``limit`` clips, best first."""
        extra = (models.Filter(must=[models.FieldCondition(key="clip_id", match=models.MatchAny(any=clip_ids))])
                 if clip_ids else None)
        groups = self.catalog.client.query_points_groups(
            MOMENTS, **self.plan(MOMENTS, sources).query(limit), group_by="clip_id", group_size=1,
            query_filter=schema.merge_filters(self.where, extra), with_payload=True,
        ).groups
        return {str(g.id): g.hits[0] for g in groups if g.hits}

    def clip_ranking(self, pool: int) -> tuple[list[tuple[str, float]], dict[str, models.ScoredPoint]]:
        """Clips ranked for this query, and the best moment already known for some of them.

        Dense sources (text, image): a clip scores the best cosine over its clip-level
        vectors *and* its moments (max merges two collections, so it runs here). The
        per-source rankings are then fused with RRF, like Qdrant's own fusion."""
        rankings: list[list[tuple[str, float]]] = []
        moment_for: dict[str, models.ScoredPoint] = {}
        for source in self.sources:
            scores = {str(p.id): float(p.score) for p in self.clips(pool, source)}
            if source != "keyword":
                for clip_id, moment in self.best_moments(pool, sources=[source]).items():
                    if moment.score > scores.get(clip_id, -2.0):
                        scores[clip_id] = float(moment.score)
                    if source == "text" or clip_id not in moment_for:
                        moment_for.setdefault(clip_id, moment)
            rankings.append(sorted(scores.items(), key=lambda kv: (-kv[1], kv[0])))
        if len(rankings) == 1:
            return rankings[0], moment_for
        return _rrf([[clip_id for clip_id, _ in r] for r in rankings]), moment_for


def _rrf(rankings: Sequence[Sequence[str]], k: int = RRF_K) -> list[tuple[str, float]]:
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking, start=1):
            scores[key] = scores.get(key, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def _clips_only(searcher: _Searcher, pool: int) -> tuple[list[tuple[str, float]], dict[str, models.ScoredPoint]]:
    """Clip-level vectors and text only (no moment evidence), fused with RRF by Qdrant."""
    points = searcher.catalog.client.query_points(
        CLIPS, **searcher.plan(CLIPS).query(pool), query_filter=searcher.where, with_payload=False).points
    return [(str(p.id), float(p.score)) for p in points], {}


def _moment_hit(point: models.ScoredPoint, score: float | None = None) -> Hit:
    p = point.payload or {}
    return Hit(
        clip_id=str(p.get("clip_id")), score=float(point.score if score is None else score),
        path=str(p.get("file", {}).get("path", "")), name=str(p.get("file", {}).get("name", "")),
        start_s=p.get("start_s"), end_s=p.get("end_s"), text=str(p.get("text", "")),
        thumbnail=p.get("thumbnail"), moment_index=p.get("index"), moment_kind=p.get("kind"),
    )


def _clip_summary(payload: dict[str, Any]) -> tuple[str, str | None]:
    analysis = payload.get("analysis") or {}
    text = analysis.get("description") or analysis.get("caption") or ""
    if not text:
        keywords = str(payload.get(schema.TEXT_KEY, ""))
        text = keywords[:300]
    thumbs = analysis.get("best_thumbnails") or []
    primary = next((t for t in thumbs if t.get("primary")), thumbs[0] if thumbs else None)
    if primary is None and payload.get("thumbnails"):
        primary = payload["thumbnails"][0]
    return text, primary.get("path") if primary else None


# ----------------------------------------------------------------------------- public API

def search(catalog: Catalog, query: str, *, encoder: Encoder | None = None, mode: SearchMode = "hybrid",
           target: Target = "clips", where: models.Filter | str | None = None, limit: int = 10,
           image_encoder: Encoder | None = None, candidates: int = CANDIDATES,
           use_moments: bool = True) -> list[Hit]:
    """Search clips (one hit per clip, with its best moment) or moments (one hit per moment).

    ``encoder`` is needed for semantic and hybrid; keyword needs no model. ``where`` is
    a parsed filter or a ``--where`` string (see ``schema.parse_where``). Raises
    ``ModelMismatch`` when ``encoder`` is not the catalog's model, ``SearchError``
    when the search cannot run, ``schema.WhereError`` for a bad filter.
    ``use_moments=False`` ranks clips by clip-level vectors/text only."""
    if not query.strip():
        raise SearchError("empty query")
    flt = schema.parse_where(where) if isinstance(where, str) else where
    searcher = _Searcher(catalog, query, mode, encoder, image_encoder, flt, max(candidates, limit))
    if target == "moments":
        return [_moment_hit(p) for p in searcher.moments(limit)]

    pool = max(candidates, limit)
    ranked, known = searcher.clip_ranking(pool) if use_moments else _clips_only(searcher, pool)
    top = ranked[:limit]
    # The moment to show: fused over every source (what a moments search would pick),
    # restricted to the clips shown; semantic-only searches already know theirs.
    best = {} if len(searcher.sources) > 1 else {k: v for k, v in known.items() if k in dict(top)}
    missing = [cid for cid, _ in top if cid not in best]
    if missing:
        best.update(searcher.best_moments(len(missing), clip_ids=missing))
    payloads = {
        str(p.id): p.payload or {}
        for p in catalog.client.retrieve(
            CLIPS, [cid for cid, _ in top],
            with_payload=["file", "analysis.description", "analysis.caption", "analysis.best_thumbnails",
                          "thumbnails", schema.TEXT_KEY],
        )
    }
    hits: list[Hit] = []
    for clip_id, score in top:
        moment = best.get(clip_id)
        if moment is not None:
            hit = _moment_hit(moment, score)
            hits.append(Hit(**{**hit.to_dict(), "clip_id": clip_id}))
            continue
        payload = payloads.get(clip_id, {})
        text, thumb = _clip_summary(payload)
        file = payload.get("file") or {}
        hits.append(Hit(clip_id=clip_id, score=score, path=str(file.get("path", "")),
                        name=str(file.get("name", "")), text=text, thumbnail=thumb))
    return hits


def similar(catalog: Catalog, clip_id: str, *, by: SimilarBy = "text", limit: int = 10,
            where: models.Filter | str | None = None) -> list[Hit]:
    """Clips nearest to ``clip_id``, never itself. ``by="text"``: best cosine over the
    content vectors (summary, transcript) — technical traits are left out on purpose,
    so a re-encode of the same footage ranks first. ``by="image"``: the primary frame's
    image vector (needs an image–text model in the catalog)."""
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
    inner = [models.Prefetch(query=stored[n], using=n, limit=max(CANDIDATES, limit)) for n in names]
    if len(inner) == 1:
        kwargs: dict[str, Any] = {"query": stored[names[0]], "using": names[0]}
    else:
        slots = [f"$score[{i}]" for i in range(len(inner))]
        kwargs = {"prefetch": inner, "query": models.FormulaQuery(
            formula=models.MaxExpression(max=list(slots)), defaults=dict.fromkeys(slots, -1.0))}
    points = catalog.client.query_points(CLIPS, **kwargs, query_filter=query_filter, limit=limit,
                                         with_payload=["file", "analysis.description", "analysis.caption",
                                                       "analysis.best_thumbnails", "thumbnails",
                                                       schema.TEXT_KEY]).points
    hits = []
    for p in points:
        payload = p.payload or {}
        text, thumb = _clip_summary(payload)
        file = payload.get("file") or {}
        hits.append(Hit(clip_id=str(p.id), score=float(p.score), path=str(file.get("path", "")),
                        name=str(file.get("name", "")), text=text, thumbnail=thumb))
    return hits
