"""How relevant a piece of text is to a query, on a 0-1 scale a user can read.

Two signals, each calibrated, combined by one logistic model per search mode:

- ``cosine``:   the query's MiniLM vector against the stored vector (a moment's text,
                or a clip's summary / transcript / technical text).
- ``coverage``: the share of the query's content words (stop words dropped, light
                stemming: "counting" = "counted") found in that text's words.

``relevance = sigmoid(bias + w_cos * cosine + w_cov * coverage)`` — the probability
that a person would call the text a match, fitted by logistic regression on the
labelled synthetic corpus of ``tests/catalog/corpus.py`` (30 queries with their
right clip, plus queries about absent topics; every other clip a negative). The fit
is ``benchmarks/search.py --relevance``; its output is pasted below with the date.
A hit is shown only when its relevance is at least ``THRESHOLD``; below that the
answer is "no good match". BM25 (Qdrant's text index) only gathers keyword
candidates: its scores depend on the corpus and are not comparable across queries.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

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
"""English function words dropped from keyword queries and from coverage. BM25 would
score them (the index keeps them: local mode only scores the default tokenizer), and
in a hybrid search "toast to the bride" then ranks clips for "to" and "the"."""

_SUFFIXES = ("ing", "ed", "es", "s", "er", "ly")
COMPOUND_MIN = 9
"""Words this long also match the query words they contain: run-together words such as
file names ("bigbuckbunny") and captions read without their spaces ("PORTAUTHORITY")."""


@dataclass(frozen=True)
class Model:
    """One calibrated logistic model: ``sigmoid(bias + w_cos*cosine + w_cov*coverage)``."""

    bias: float
    w_cos: float
    w_cov: float

    def __call__(self, cosine: float, coverage: float) -> float:
        z = self.bias + self.w_cos * cosine + self.w_cov * coverage
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


# Fitted 2026-12-07 by `benchmarks/search.py --relevance` on the 16-clip synthetic corpus
# of tests/catalog/corpus.py: 30 labelled queries + 5 absent-topic queries, every
# candidate clip a row (560 rows, 30 positives). At 0.5 on that set: hybrid recall 0.87,
# precision 0.96; semantic 0.83 / 0.93; keyword 0.90 / 0.93.
MODELS: dict[str, Model] = {
    "hybrid": Model(bias=-9.66, w_cos=15.04, w_cov=6.97),
    "semantic": Model(bias=-10.68, w_cos=22.38, w_cov=0.0),
    "keyword": Model(bias=-5.95, w_cos=0.0, w_cov=13.37),
}
"""Per search mode: semantic ignores word overlap, keyword ignores vectors."""

THRESHOLD = 0.5
"""Least relevance shown: below it a result is more likely wrong than right."""
RELATIVE = 0.5
"""A hit must also score at least this share of the best hit's relevance, so one
strong match is not padded with weak ones that merely pass the threshold."""
SIMILAR_THRESHOLD = 0.85
"""Least cosine between two clips' content vectors for "similar" (MiniLM). A re-encode of
the same footage scores ~1.0. Unrelated real clips score 0.73-0.82, because their
generated descriptions share most of their words ("A 6-second 240p clip in a single
shot...": measured on the 8 held-out clips of tests/catalog/spoken.py), and clips of
different subjects in tests/catalog/corpus.py stay under 0.6; 0.85 keeps near-copies
and drops both."""
BROWSE_QUERIES = ("", "*")
"""Queries that mean "no words: filters only"."""
IMAGE_MODEL = Model(bias=-6.0, w_cos=24.0, w_cov=0.0)
"""Image-text (CLIP-family) cosine -> relevance. NOT calibrated here: no image model
ships offline; CLIP text-image cosines of real matches sit near 0.25-0.35."""


def query_terms(query: str) -> list[str]:
    """Lower-cased words of a query, as the text index tokenizes them (for highlighting)."""
    return [t.lower() for t in re.findall(r"[^\W_]+", query)]


def content_terms(query: str) -> list[str]:
    """The query's words without stop words (all of them when every word is a stop word)."""
    terms = query_terms(query)
    content = [t for t in terms if t not in STOPWORDS]
    return list(dict.fromkeys(content or terms))


def keyword_query(query: str) -> str:
    """The query's content words for BM25."""
    return " ".join(content_terms(query))


def stem(word: str) -> str:
    """A light English stem: "tomatoes" -> "tomato", "counting"/"counted" -> "count"."""
    for suffix in _SUFFIXES:
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def text_stems(text: str) -> set[str]:
    """The stems of every word of ``text``, plus its long words as they are (for the
    run-together match of :func:`coverage`)."""
    words = query_terms(text)
    return {stem(w) for w in words} | {w for w in words if len(w) >= COMPOUND_MIN}


def coverage(terms: list[str], text: str | set[str]) -> tuple[float, list[str]]:
    """Share of ``terms`` whose stem occurs in ``text`` (a string or its ``text_stems``),
    and the terms found."""
    if not terms:
        return 0.0, []
    stems = text if isinstance(text, set) else text_stems(text)
    compounds = [w for w in stems if len(w) >= COMPOUND_MIN]
    found = [t for t in terms if stem(t) in stems
             or (len(t) >= 4 and any(stem(t) in w for w in compounds))]
    return len(found) / len(terms), found


def relevance(mode: str, cosine: float | None, cov: float) -> float:
    """The calibrated 0-1 relevance of one piece of evidence (``cosine`` None: not compared)."""
    return MODELS[mode](cosine if cosine is not None else 0.0, cov)


def keep(scores: list[float], *, threshold: float = THRESHOLD, relative: float = RELATIVE) -> int:
    """How many of ``scores`` (sorted best first) to show."""
    if not scores or scores[0] < threshold:
        return 0
    floor = max(threshold, relative * scores[0])
    return sum(1 for s in scores if s >= floor)
