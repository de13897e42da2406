"""One search result, in a module of its own: ``rayflow search`` renders hits that the service's
searcher sent (see :mod:`rayflow.engine.searcher`) without importing ``qdrant_client``."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Hit:
    """One result: a clip, where in it the query landed, how relevant and why."""

    clip_id: str
    score: float | None
    """Relevance 0-1 (calibrated; see ``relevance``), cosine for ``similar``; None when browsing by filters."""
    path: str
    name: str
    start_s: float | None = None
    end_s: float | None = None
    text: str = ""
    """The text that matched (the sentence spoken, the words on screen, the description...)."""
    thumbnail: str | None = None
    moment_index: int | None = None
    moment_kind: str | None = None
    why: str = ""
    """What matched: speech, on-screen text, description, technical, file name, shot tags, image,
    filters (browsing) or similar."""
    matched: tuple[str, ...] = ()
    """The query's words found in ``text``'s field."""
    cosine: float | None = None
    """Query-text cosine behind ``score`` (None for keyword search)."""
    coverage: float | None = None
    """Share of the query's content words found (None for semantic search)."""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["matched"] = list(self.matched)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Hit:
        """The hit :meth:`to_dict` gave (extra keys, e.g. a rank, are ignored)."""
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        fields["matched"] = tuple(fields.get("matched") or ())
        return cls(**fields)
