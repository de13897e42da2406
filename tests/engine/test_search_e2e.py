"""Search over footage that went through the whole pipeline: the held-out 8-clip catalog
of ``tests/catalog/spoken.py`` (spoken phrases by espeak-ng and burned-in captions by
drawtext, a real speech, two real clips), ingested once for the module.

Spoken and on-screen words are found on the right clip and moment, and the issue's
search figures (``tests/catalog/heldout.py``: top-1, moment +-2 s, absent topics
answered with nothing, mean results per query) hold on clips the relevance model
never saw."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rayflow.catalog.search import search
from rayflow.catalog.store import Catalog
from rayflow.config import load_settings
from rayflow.engine.session import ingest
from rayflow.ml.text_encoder import TextEncoder
from rayflow.record import ClipRecord
from tests.catalog.heldout import heldout, met
from tests.catalog.spoken import JFK, SPOKEN, make_clip, make_jfk, make_spoken, shared_clips

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")]

CLIPS = dict(list(SPOKEN.items())[:3])
"""Three of the spoken clips (name -> phrase from 2 s, caption 0-2 s, colour); the web tests reuse them."""
_make = make_clip


@pytest.fixture(scope="module")
def heldout_home(engine, shared_media: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    """A home holding the held-out catalog, ingested by the real pipeline (no proxies)."""
    root = tmp_path_factory.mktemp("heldout")
    footage = root / "footage"
    inputs = [*make_spoken(footage), make_jfk(footage), *shared_clips()]
    home = root / "home"
    settings = load_settings(env={}, home=home, prefect_api_url=engine.prefect_url, skip=("proxy",))
    summary = ingest([str(footage), *map(str, shared_clips())], settings)
    assert summary.counts["ingested"] == len(inputs) == 8, [(f.path, f.errors) for f in summary.files]
    return home


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    model = TextEncoder()
    model.setup("cpu")
    return model


def test_spoken_and_on_screen_words_find_the_right_clip_and_moment(heldout_home: Path,
                                                                   encoder: TextEncoder) -> None:
    catalog = Catalog.open(path=heldout_home / "catalog", url=None)
    try:
        queries = {
            "ferry leaving the harbour": ("harbour.mp4", 2.0),
            "counting votes at city hall": ("election.mp4", 2.0),
            "tomatoes sunshine": ("garden.mp4", 2.0),
        }
        for query, (name, start_s) in queries.items():
            hits = search(catalog, query, encoder=encoder, mode="hybrid", target="moments", limit=3)
            assert hits and hits[0].name == name, (query, [(h.name, h.text) for h in hits])
            assert hits[0].start_s is not None and abs(hits[0].start_s - start_s) <= 2.0
        for name, (_, caption, _) in SPOKEN.items():
            # The packaged PP-OCR recogniser may drop the spaces of short Latin captions
            # ("LIVERESULTS"): the text is read, so compare without spaces; hybrid search
            # (dense + keyword) still finds the clip by the caption's words.
            record = next(r for r in catalog.iter_records() if r.file.name == name)
            assert record.analysis is not None
            read = [t.text.replace(" ", "").casefold() for t in record.analysis.screen_text]
            assert caption.replace(" ", "").casefold() in read, (name, read)
            hits = search(catalog, caption.lower(), encoder=encoder, mode="hybrid", target="clips", limit=3)
            assert hits and hits[0].name == name, (caption, [h.name for h in hits])
    finally:
        catalog.close()


def test_heldout_search_figures_meet_the_issue_thresholds(heldout_home: Path, encoder: TextEncoder) -> None:
    """Issue #14: top-1 >= 0.9, moment +-2 s >= 0.8, >= 4 of 5 absent topics answered with
    nothing, <= 3 results per query on average, over the 8-clip held-out catalog."""
    records = [ClipRecord.model_validate_json(p.read_text())
               for p in sorted((heldout_home / "output" / "records").glob("*.json"))]
    assert len(records) == 8 and JFK in {r.file.name for r in records}, [r.file.name for r in records]
    figures = heldout(encoder, records, "hybrid")
    misses = [r for r in figures["rows"] if not r["top1"] or (r["at_s"] is not None and not r["moment"])]
    assert figures["absent_queries"] == 5 and figures["queries"] == 19, figures["queries"]
    assert all(met(figures).values()), ({k: figures[k] for k in met(figures)}, misses)
