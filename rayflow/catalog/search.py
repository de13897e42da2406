"""Search the catalog: semantic, keyword, hybrid; clips or moments; similar clips.

``--in moments`` is one Qdrant query: the query's text vector (``text``), BM25 over
``_text`` (text index with ``scoring``; works in local mode too) and, when an
image–text model is configured, its vector against ``image`` — fused by Qdrant's
reciprocal-rank fusion (``RrfQuery``, k = 60).

``--in clips`` ranks clips by everything known about them, in two steps:

1. Per source, one ranking. Dense (text, image): a clip scores the *best* cosine over
   its clip-level vectors (``summary``, ``transcript``, ``technical``) and over its
   moments (best moment per clip, a grouped query on ``moments``). Max, not rank
   fusion: fusing five rankings lets clips that are merely "technically similar"
   outvote the one whose transcript says exactly what was asked; and the moments let
   one sentence in a 20-minute talk find its clip even though the clip's transcript
   vector averages 40 chunks. Keyword: BM25 over the clip's ``_text``.
2. The rankings fused with RRF (same formula as Qdrant's; here in Python, because
   the dense ranking merges two collections). The clip queries go to Qdrant as one
   batch. Each clip hit carries its best moment (time range, text, frame), picked by
   the same fused query a moments search runs, restricted to the clips shown.

Why not a ``max`` formula inside Qdrant: in local mode the formula rescoring copies
every candidate's whole payload (the full record), 10x slower than three plain
queries merged here; the server would not need it, but both modes run the same code.
Stop words are dropped from keyword queries (see ``STOPWORDS``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from qdrant_client import models
from qdrant_client.http.exceptions import UnexpectedResponse

from rayflow.catalog import schema
from rayflow.catalog.schema import CLIPS, MOMENTS
from rayflow.catalog.store import Catalog, ModelMismatch
from rayflow.catalog.vectors import Encoder

log = logging.getLogger(__name__)

SearchMode = Literal["semantic", "keyword", "hybrid"]
Target = Literal["clips", "moments"]
SimilarBy = Literal["text", "image"]

RRF_K = 60
"""Reciprocal-rank-fusion constant: 1/(k + rank). 60 is the usual choice; smaller
values let the top of one list dominate."""
CANDIDATES = 50
"""Candidates each prefetch contributes before fusion; more costs latency, rarely changes the top 10."""
MOMENTS_PER_CLIP = 5
"""Moments fetched per wanted clip when picking each clip's best moment (a clip whose
many moments all match crowds out others; 5x leaves room for that)."""


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

Source = Literal["text", "image", "keyword"]
MOMENT_FIELDS = ["clip_id", "index", "kind", "start_s", "end_s", "text", "thumbnail", "file"]
"""Payload fetched for moment hits (local mode copies what it returns; the keys below are small)."""
CLIP_FIELDS = ["file", "analysis.description", "analysis.caption", "analysis.best_thumbnails", "thumbnails"]


class _Searcher:
    """One query's vectors and filter, and the Qdrant requests built from them."""

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

    def _moment_prefetch(self, source: Source, limit: int) -> models.Prefetch:
        match source:
            case "text":
                return models.Prefetch(query=self.text_vector, using=schema.TEXT, limit=limit)
            case "image":
                return models.Prefetch(query=self.image_vector, using=schema.IMAGE, limit=limit)
            case "keyword":
                return models.Prefetch(query=models.TextQuery(text=keyword_query(self.query)),
                                       using=schema.TEXT_KEY, limit=limit)

    def _moment_query(self, limit: int, sources: Sequence[Source]) -> dict[str, Any]:
        """``query_points`` arguments over ``moments``: one source as is, several fused by Qdrant (RRF)."""
        prefetch = [self._moment_prefetch(s, max(self.candidates, limit)) for s in sources]
        if len(prefetch) == 1:
            return {"query": prefetch[0].query, "using": prefetch[0].using, "limit": limit}
        return {"prefetch": prefetch, "query": models.RrfQuery(rrf=models.Rrf(k=RRF_K)), "limit": limit}

    def moments(self, limit: int) -> list[models.ScoredPoint]:
        return self.catalog.client.query_points(
            MOMENTS, **self._moment_query(limit, self.sources), query_filter=self.where,
            with_payload=MOMENT_FIELDS,
        ).points

    def best_moments(self, limit: int, *, sources: Sequence[Source] | None = None,
                     clip_ids: list[str] | None = None) -> dict[str, models.ScoredPoint]:
        """clip_id -> its best moment (fused over ``sources``), for up to ``limit`` clips, best first.

        Grouped here from the top ``MOMENTS_PER_CLIP x limit`` moments rather than by
        ``query_points_groups``: local mode's grouping copies the payload of every point
        in the collection (~0.5 s at 4k moments); a plain query is ~10 ms."""
        extra = (models.Filter(must=[models.FieldCondition(key="clip_id", match=models.MatchAny(any=clip_ids))])
                 if clip_ids else None)
        points = self.catalog.client.query_points(
            MOMENTS, **self._moment_query(MOMENTS_PER_CLIP * max(limit, 1), sources or self.sources),
            query_filter=schema.merge_filters(self.where, extra), with_payload=MOMENT_FIELDS,
        ).points
        best: dict[str, models.ScoredPoint] = {}
        for point in points:
            clip_id = str((point.payload or {}).get("clip_id"))
            if clip_id not in best:
                best[clip_id] = point
                if len(best) >= limit:
                    break
        return best

    def _clip_requests(self, source: Source) -> list[models.QueryRequest]:
        def request(query: Any, using: str) -> models.QueryRequest:
            return models.QueryRequest(query=query, using=using, filter=self.where, limit=self.candidates,
                                       with_payload=False)

        match source:
            case "text":
                return [request(self.text_vector, name) for name in schema.CLIP_TEXT_VECTORS]
            case "image":
                return [request(self.image_vector, schema.IMAGE)]
            case "keyword":
                return [request(models.TextQuery(text=keyword_query(self.query)), schema.TEXT_KEY)]

    def clip_ranking(self) -> tuple[list[tuple[str, float]], dict[str, models.ScoredPoint]]:
        """Clips ranked for this query (score: cosine, BM25 or RRF), and best moments already found."""
        plan = [(source, self._clip_requests(source)) for source in self.sources]
        responses = iter(self.catalog.client.query_batch_points(
            CLIPS, requests=[r for _, requests in plan for r in requests]))
        rankings: list[list[tuple[str, float]]] = []
        moment_for: dict[str, models.ScoredPoint] = {}
        for source, requests in plan:
            scores: dict[str, float] = {}
            for _ in requests:  # dense: best over the named vectors
                for point in next(responses).points:
                    key = str(point.id)
                    scores[key] = max(scores.get(key, float("-inf")), float(point.score))
            if source != "keyword":
                for clip_id, moment in self.best_moments(self.candidates, sources=[source]).items():
                    scores[clip_id] = max(scores.get(clip_id, float("-inf")), float(moment.score))
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
           image_encoder: Encoder | None = None, candidates: int = CANDIDATES) -> list[Hit]:
    """Search clips (one hit per clip, with its best moment) or moments (one hit per moment).

    ``encoder`` is needed for semantic and hybrid; keyword needs no model. ``where`` is
    a parsed filter or a ``--where`` string (see ``schema.parse_where``). Raises
    ``ModelMismatch`` when ``encoder`` is not the catalog's model, ``SearchError``
    when the search cannot run, ``schema.WhereError`` for a bad filter."""
    if not query.strip():
        raise SearchError("empty query")
    flt = schema.parse_where(where) if isinstance(where, str) else where
    searcher = _Searcher(catalog, query, mode, encoder, image_encoder, flt, max(candidates, limit))
    try:
        return _search(catalog, searcher, target, limit)
    except UnexpectedResponse as exc:
        hint = (" (keyword and hybrid search need Qdrant >= 1.20 for BM25 text queries; try --mode semantic)"
                if "keyword" in searcher.sources else "")
        raise SearchError(f"Qdrant refused the query: {exc}{hint}") from exc


def _search(catalog: Catalog, searcher: _Searcher, target: Target, limit: int) -> list[Hit]:
    if target == "moments":
        return [_moment_hit(p) for p in searcher.moments(limit)]

    ranked, known = searcher.clip_ranking()
    top = ranked[:limit]
    # The moment to show: fused over every source (what a moments search would pick);
    # single-source searches already know theirs. A clip not among the top fused
    # moments shows its best dense moment, else one from a query restricted to the
    # clips still missing (a payload-filter scan in local mode, so last).
    shown = dict(top)
    found = searcher.best_moments(searcher.candidates) if len(searcher.sources) > 1 else known
    best = {k: v for k, v in found.items() if k in shown}
    best.update({k: v for k, v in known.items() if k in shown and k not in best})
    missing = [cid for cid, _ in top if cid not in best]
    if missing:
        best.update(searcher.best_moments(len(missing), clip_ids=missing))
    bare = [cid for cid, _ in top if cid not in best]  # no moment matched: show the clip's summary
    payloads = {str(p.id): p.payload or {}
                for p in catalog.client.retrieve(CLIPS, bare, with_payload=[*CLIP_FIELDS, schema.TEXT_KEY])
                } if bare else {}
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
    responses = catalog.client.query_batch_points(CLIPS, requests=[
        models.QueryRequest(query=stored[n], using=n, filter=query_filter, limit=max(CANDIDATES, limit),
                            with_payload=False)
        for n in names
    ])
    scores: dict[str, float] = {}
    for response in responses:  # best cosine over the compared vectors
        for point in response.points:
            scores[str(point.id)] = max(scores.get(str(point.id), float("-inf")), float(point.score))
    top = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    payloads = {str(p.id): p.payload or {}
                for p in catalog.client.retrieve(CLIPS, [c for c, _ in top], with_payload=[*CLIP_FIELDS,
                                                                                       schema.TEXT_KEY])}
    hits = []
    for other, score in top:
        payload = payloads.get(other, {})
        text, thumb = _clip_summary(payload)
        file = payload.get("file") or {}
        hits.append(Hit(clip_id=other, score=score, path=str(file.get("path", "")),
                        name=str(file.get("name", "")), text=text, thumbnail=thumb))
    return hits
