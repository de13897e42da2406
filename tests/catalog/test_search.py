"""Search quality and catalog behaviour on the labelled corpus of ``tests/catalog/corpus.py``
(16 ClipRecords, 30 queries with the clip and the moment a person would expect). The
text model is the real packaged all-MiniLM-L6-v2, loaded once per module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from rayflow.catalog import schema
from rayflow.catalog.moments import build_moments
from rayflow.catalog.search import search, similar
from rayflow.catalog.store import Catalog, ModelMismatch
from rayflow.ml.text_encoder import TextEncoder
from rayflow.record import ClipRecord
from rayflow.stages.embed import ClipVectors, embed_records
from tests.catalog.corpus import Labelled, labelled_corpus, moment_ok, near_copy

# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    enc = TextEncoder()
    enc.setup("cpu")
    return enc


@pytest.fixture(scope="module")
def corpus() -> tuple[list[ClipRecord], list[Labelled]]:
    return labelled_corpus()


@pytest.fixture(scope="module")
def vectors(encoder: TextEncoder, corpus: tuple[list[ClipRecord], list[Labelled]]) -> dict[str, ClipVectors]:
    """The corpus embedded once (one batched call), by clip id."""
    records, _ = corpus
    return {v.clip_id: v for v in embed_records(records, encoder)}


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory, vectors: dict[str, ClipVectors],
            corpus: tuple[list[ClipRecord], list[Labelled]]) -> Iterator[Catalog]:
    records, _ = corpus
    cat = Catalog.open(path=tmp_path_factory.mktemp("catalog"), url=None)
    cat.upsert(records, [vectors[r.clip_id] for r in records])
    yield cat
    cat.close()


def _by_name(catalog: Catalog) -> dict[str, str]:
    return {r.file.name: r.clip_id for r in catalog.iter_records()}


# ----------------------------------------------------------------------------- quality


def test_hybrid_top1_clip_and_moment_accuracy(catalog: Catalog, encoder: TextEncoder,
                                              corpus: tuple[list[ClipRecord], list[Labelled]]) -> None:
    _, queries = corpus
    ids = _by_name(catalog)
    clip_right, moment_right, moment_total, misses = 0, 0, 0, []
    for q in queries:
        hit = search(catalog, q.query, encoder=encoder, mode="hybrid", limit=5, threshold=0)[0]  # ranking only
        if hit.clip_id == ids[q.clip]:
            clip_right += 1
        else:
            misses.append(f"{q.query!r} -> {hit.name}")
        if q.at_s is not None:
            moment_total += 1
            if hit.clip_id == ids[q.clip] and moment_ok(hit.start_s, hit.end_s, q.at_s):
                moment_right += 1
            else:
                misses.append(f"{q.query!r} moment {hit.start_s}-{hit.end_s} (want {q.at_s})")
    clip_acc, moment_acc = clip_right / len(queries), moment_right / moment_total
    assert clip_acc >= 0.9, (clip_acc, misses)
    assert moment_acc >= 0.8, (moment_acc, misses)


ABSENT = ("dog barking at the mailman", "rocket launch into space", "piano concert", "a chess tournament",
          "horse riding on a beach")


def test_relevance_threshold_keeps_right_answers_and_answers_absent_topics_with_nothing(
        catalog: Catalog, encoder: TextEncoder, corpus: tuple[list[ClipRecord], list[Labelled]]) -> None:
    _, queries = corpus
    ids = _by_name(catalog)
    shown = [search(catalog, q.query, encoder=encoder, limit=10) for q in queries]
    recall = sum(any(h.clip_id == ids[q.clip] for h in hits) for q, hits in zip(queries, shown, strict=True))
    assert recall / len(queries) >= 0.8, recall
    assert sum(map(len, shown)) / len(shown) <= 2.0, [len(h) for h in shown]  # not every clip for every query
    for hits in shown:
        assert all(h.score is not None and 0.0 <= h.score <= 1.0 and h.why for h in hits)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)  # type: ignore[misc]
    empty = [q for q in ABSENT if not search(catalog, q, encoder=encoder)]
    assert len(empty) >= 4, set(ABSENT) - set(empty)


def test_hits_say_why_they_matched(catalog: Catalog, encoder: TextEncoder) -> None:
    ids = _by_name(catalog)
    hit = search(catalog, "yellow card for a late tackle", encoder=encoder)[0]
    assert hit.clip_id == ids["league_final.mp4"] and hit.why == "speech"
    assert "yellow card" in hit.text.lower() and "yellow" in hit.matched
    tech = search(catalog, "GoPro HERO12 HDR10 60 fps", encoder=encoder)[0]
    assert tech.why in ("technical", "description"), tech
    assert "gopro" in tech.text.lower()


def test_filters_alone_browse_the_catalog(catalog: Catalog,
                                          corpus: tuple[list[ClipRecord], list[Labelled]]) -> None:
    hdr = {r.clip_id for r in corpus[0] if r.video is not None and r.video.hdr.is_hdr}
    assert hdr
    for query in ("*", ""):
        hits = search(catalog, query, where="hdr=true", limit=100)
        assert {h.clip_id for h in hits} == hdr
        assert all(h.score is None and h.why == "filters" for h in hits)
    assert len(search(catalog, "*", limit=100)) == len(corpus[0])


def test_moments_target_lands_on_the_moment(catalog: Catalog, encoder: TextEncoder) -> None:
    ids = _by_name(catalog)
    hits = search(catalog, "yellow card for a late tackle", encoder=encoder, target="moments", limit=3)
    assert hits[0].clip_id == ids["league_final.mp4"]
    assert hits[0].start_s == 80 and hits[0].end_s == 86
    assert hits[0].moment_kind == "speech"
    assert hits[0].thumbnail and hits[0].thumbnail.endswith(".jpg")


def test_semantic_finds_paraphrase_without_shared_words(catalog: Catalog, encoder: TextEncoder) -> None:
    ids = _by_name(catalog)
    hit = search(catalog, "avian predator hunting in a marsh", encoder=encoder, mode="semantic")[0]
    assert hit.clip_id == ids["wetlands_dawn.mov"]


def test_keyword_mode_needs_no_model_and_finds_exact_words(catalog: Catalog) -> None:
    ids = _by_name(catalog)
    hits = search(catalog, "Keychron", mode="keyword")
    assert [h.clip_id for h in hits] == [ids["keyboard_unboxing.mp4"]]
    assert "Keychron" in hits[0].text
    moments = search(catalog, "savasana", mode="keyword", target="moments")
    assert moments[0].start_s == 560
    assert search(catalog, "zzzunknownword", mode="keyword") == []


def test_technical_query_finds_the_camera(catalog: Catalog, encoder: TextEncoder) -> None:
    ids = _by_name(catalog)
    hit = search(catalog, "GoPro HERO12 HDR10 60 fps", encoder=encoder)[0]
    assert hit.clip_id == ids["GX010077.MP4"]


# ----------------------------------------------------------------------------- filters


@pytest.mark.parametrize("mode", ["hybrid", "semantic", "keyword"])
def test_where_filters_are_exact(catalog: Catalog, encoder: TextEncoder, mode: str,
                                 corpus: tuple[list[ClipRecord], list[Labelled]]) -> None:
    by_id = {r.clip_id: r for r in corpus[0]}
    query = "people talking" if mode != "keyword" else "the"
    for where, check in [
        ("codec=hevc", lambda r: r.video.codec == "hevc"),
        ("duration>30", lambda r: r.container.duration_s > 30),
        ("hdr=true", lambda r: r.video.hdr.is_hdr),
        ("codec=h264,duration<=100", lambda r: r.video.codec == "h264" and r.container.duration_s <= 100),
        ("resolution>=3840x2160,hdr=false", lambda r: r.video.width >= 3840 and not r.video.hdr.is_hdr),
        ("make=sony", lambda r: r.camera.make == "Sony"),
        ("path=/footage/news", lambda r: r.file.path.startswith("/footage/news/")),
        ("tag=wildlife|drone", lambda r: {"wildlife", "drone"} & set(r.analysis.tags)),
        ("has_speech=false", lambda r: r.analysis.speech is None),
    ]:
        for target in ("clips", "moments"):
            hits = search(catalog, query, encoder=encoder, mode=mode, where=where, limit=50, target=target,
                          threshold=0)  # every candidate: this is about the filter, not relevance
            assert hits or mode == "keyword", (where, target)
            for hit in hits:
                assert check(by_id[hit.clip_id]), (where, target, hit.name)
    all_hevc = {r.clip_id for r in catalog.iter_records() if r.video.codec == "hevc"}
    found = {h.clip_id for h in search(catalog, "video", encoder=encoder, mode="semantic", where="codec=hevc",
                                       limit=50, threshold=0)}
    if mode == "semantic":
        assert found == all_hevc  # exact: every hevc clip, nothing else


def test_where_errors_are_clear() -> None:
    with pytest.raises(schema.WhereError, match="unknown field 'codex'.*did you mean 'codec'"):
        schema.parse_where("codex=hevc")
    with pytest.raises(schema.WhereError, match="not a number"):
        schema.parse_where("duration>long")
    with pytest.raises(schema.WhereError, match="cannot read"):
        schema.parse_where("codec hevc")
    with pytest.raises(schema.WhereError, match="missing comma"):
        schema.parse_where("codec=hevc hdr=true")
    with pytest.raises(schema.WhereError, match="only = and !="):
        schema.parse_where("codec>hevc")
    with pytest.raises(schema.WhereError, match="true/false"):
        schema.parse_where("hdr=maybe")
    assert schema.parse_where("") is None
    flt = schema.parse_where('model="EOS R5", captured>=2024-01-01')
    assert flt is not None and flt.must is not None and len(flt.must) == 2


def test_captured_date_filter(catalog: Catalog) -> None:
    assert len(search(catalog, "the", mode="keyword", where="captured=2024-05-03", limit=50)) > 0
    assert search(catalog, "the", mode="keyword", where="captured>2024-05-03", limit=50) == []
    assert search(catalog, "the", mode="keyword", where="captured<2024-05-03", limit=50) == []


# ----------------------------------------------------------------------------- writes


def test_reupsert_is_idempotent_and_drops_stale_moments(tmp_path: Path, encoder: TextEncoder,
                                                        vectors: dict[str, ClipVectors],
                                                        corpus: tuple[list[ClipRecord], list[Labelled]]) -> None:
    record = corpus[0][0]
    cat = Catalog.open(path=tmp_path / "c", url=None)
    try:
        n = len(build_moments(record))
        cat.upsert([record], [vectors[record.clip_id]])
        cat.upsert([record], [vectors[record.clip_id]])
        assert cat.count() == 1 and cat.count(schema.MOMENTS) == n
        shorter = record.model_copy(deep=True)
        assert shorter.analysis is not None and shorter.analysis.speech is not None
        shorter.analysis.speech.segments = shorter.analysis.speech.segments[:2]
        cat.upsert([shorter], embed_records([shorter], encoder))
        stored = cat.moments(record.clip_id)
        assert len(stored) == len(build_moments(shorter)) < n
        assert [m["index"] for m in stored] == list(range(len(stored)))
        assert cat.count(schema.MOMENTS) == len(stored)
        # Without vectors the clip is still stored and keyword-searchable.
        cat.upsert([record])
        assert search(cat, "ferry", mode="keyword")[0].clip_id == record.clip_id
        assert cat.get(record.clip_id) == record
    finally:
        cat.close()


def test_similar_returns_the_near_copy_first(tmp_path: Path, encoder: TextEncoder,
                                             vectors: dict[str, ClipVectors],
                                             corpus: tuple[list[ClipRecord], list[Labelled]]) -> None:
    records = corpus[0][:6]
    copy = near_copy(records[0])
    cat = Catalog.open(path=tmp_path / "c", url=None)
    try:
        cat.upsert([*records, copy], [*(vectors[r.clip_id] for r in records), *embed_records([copy], encoder)])
        hits = similar(cat, records[0].clip_id, limit=3)
        assert hits[0].clip_id == copy.clip_id
        assert hits[0].score is not None and hits[0].score > 0.9
        assert all(h.score is not None and h.score >= 0.6 for h in hits)  # the threshold
        assert records[0].clip_id not in {h.clip_id for h in hits}
        assert similar(cat, records[1].clip_id) == []  # no near-copy, nothing on its subject: "no similar clips"
        assert similar(cat, records[1].clip_id, threshold=0.0)  # ... though there are neighbours
        with pytest.raises(Exception, match="image"):
            similar(cat, records[0].clip_id, by="image")
    finally:
        cat.close()


def test_delete_removes_clip_and_moments(tmp_path: Path, vectors: dict[str, ClipVectors],
                                         corpus: tuple[list[ClipRecord], list[Labelled]]) -> None:
    records = corpus[0][:3]
    cat = Catalog.open(path=tmp_path / "c", url=None)
    try:
        cat.upsert(records, [vectors[r.clip_id] for r in records])
        before = cat.count(schema.MOMENTS)
        gone = len(cat.moments(records[0].clip_id))
        assert cat.delete(records[0].clip_id)
        assert cat.get(records[0].clip_id) is None
        assert cat.moments(records[0].clip_id) == []
        assert cat.count() == 2 and cat.count(schema.MOMENTS) == before - gone
        assert not cat.delete(records[0].clip_id)
    finally:
        cat.close()


class _OtherModel:
    """A different 'model': same vectors scaled into a random 32-d space (enough to test the switch)."""

    model_id = "other-model"
    dim = 32

    def __init__(self, base: TextEncoder) -> None:
        self.base = base
        self.proj = np.random.default_rng(0).standard_normal((base.dim, 32)).astype(np.float32)

    def encode(self, texts: list[str]) -> np.ndarray:
        out = self.base.encode(texts) @ self.proj
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_model_change_is_detected_and_reindex_reembeds(tmp_path: Path, encoder: TextEncoder,
                                                       vectors: dict[str, ClipVectors],
                                                       corpus: tuple[list[ClipRecord], list[Labelled]]) -> None:
    records = corpus[0][:4]
    cat = Catalog.open(path=tmp_path / "c", url=None)
    try:
        cat.upsert(records, [vectors[r.clip_id] for r in records])
        assert cat.meta == schema.CatalogMeta()
        other = _OtherModel(encoder)
        with pytest.raises(ModelMismatch, match="reindex"):
            search(cat, "bridge", encoder=other)
        with pytest.raises(ModelMismatch, match="reindex"):
            cat.upsert(records[:1], embed_records(records[:1], other))
        backup = tmp_path / "reindex.jsonl"
        n = cat.reindex(lambda recs: embed_records(recs, other),
                        schema.CatalogMeta(text_model=other.model_id, text_dim=other.dim), backup=backup)
        assert n == 4 and not backup.exists()
        assert cat.meta is not None and cat.meta.text_model == "other-model" and cat.meta.text_dim == 32
        assert len(cat.vectors(records[0].clip_id)[schema.SUMMARY]) == 32
        assert cat.count(schema.MOMENTS) == sum(len(build_moments(r)) for r in records)
        assert search(cat, "why is the harbor bridge closed", encoder=other)[0].clip_id == records[0].clip_id
        with pytest.raises(ModelMismatch):
            search(cat, "bridge", encoder=encoder)
    finally:
        cat.close()
    # Reopening keeps the model metadata.
    cat = Catalog.open(path=tmp_path / "c", url=None)
    try:
        assert cat.meta is not None and cat.meta.text_model == "other-model"
    finally:
        cat.close()


def test_an_empty_catalog_adopts_the_configured_model(tmp_path: Path, encoder: TextEncoder,
                                                      corpus: tuple[list[ClipRecord], list[Labelled]]) -> None:
    other = _OtherModel(encoder)
    cat = Catalog.open(path=tmp_path / "c", url=None)  # created for the default model
    try:
        record = corpus[0][0]
        cat.upsert([record], embed_records([record], other))
        assert cat.meta == schema.CatalogMeta(text_model="other-model", text_dim=32)
        assert search(cat, "harbor bridge", encoder=other)[0].clip_id == record.clip_id
    finally:
        cat.close()
