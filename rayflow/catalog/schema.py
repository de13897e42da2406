"""The catalog's Qdrant schema: collections, named vectors, payload fields, filters.

Two collections, the same in embedded local mode and on a server:

``clips``    one point per clip, id = ``clip_id``. Payload = the ``ClipRecord`` (JSON)
             plus two private keys: ``_f`` (flat, normalised filter fields) and
             ``_text`` (everything searchable by keyword, BM25-ranked). Named vectors
             ``summary``, ``transcript``, ``technical`` (text model) and ``image``
             (image–text model, only when one is configured). A clip without a
             transcript simply has no ``transcript`` vector.
``moments``  one point per moment (a shot, a stretch of speech, an on-screen text
             event), id = ``uuid5(clip_id, str(index))``. Payload: clip_id, index,
             kind, start_s, end_s, text parts, thumbnail, file path/name, ``_f`` and
             ``_text``. Named vectors ``text`` and ``image`` (when configured).

Which models made the vectors is stored as collection metadata (``rayflow`` key):
a different configured model is detected, and ``rayflow reindex`` re-embeds.

Filters always use the ``_f`` copy (lower-cased keywords, flat keys), so ``--where``
means the same thing for clips and moments.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta
from pathlib import PurePosixPath
from typing import Any, Literal

from qdrant_client import models

from rayflow.catalog.names import CLIPS as CLIPS  # the names live apart: reading records needs no qdrant_client
from rayflow.catalog.names import FILTER_KEY as FILTER_KEY
from rayflow.catalog.names import MOMENTS as MOMENTS
from rayflow.catalog.names import PRIVATE_KEYS as PRIVATE_KEYS
from rayflow.catalog.names import TEXT_KEY as TEXT_KEY
from rayflow.config import DEFAULT_TEXT_MODEL
from rayflow.record import ClipRecord

# Named vectors.
SUMMARY = "summary"
TRANSCRIPT = "transcript"
TECHNICAL = "technical"
IMAGE = "image"
TEXT = "text"
CLIP_TEXT_VECTORS = (SUMMARY, TRANSCRIPT, TECHNICAL)

META_KEY = "rayflow"
CATALOG_SCHEMA = 1
"""Version of this layout; a different stored value means ``rayflow reindex``."""

DEFAULT_TEXT_DIM = 384


@dataclass(frozen=True)
class CatalogMeta:
    """Which models made the stored vectors; kept as collection metadata."""

    text_model: str = DEFAULT_TEXT_MODEL
    text_dim: int = DEFAULT_TEXT_DIM
    image_model: str | None = None
    """None: the collections have no ``image`` vector."""
    image_dim: int | None = None
    schema: int = CATALOG_SCHEMA

    def to_payload(self) -> dict[str, Any]:
        return {META_KEY: asdict(self)}

    @classmethod
    def from_payload(cls, metadata: dict[str, Any] | None) -> CatalogMeta | None:
        raw = (metadata or {}).get(META_KEY)
        if not isinstance(raw, dict):
            return None
        known = {k: raw[k] for k in ("text_model", "text_dim", "image_model", "image_dim", "schema") if k in raw}
        return cls(**known)


def _cosine(size: int) -> models.VectorParams:
    return models.VectorParams(size=size, distance=models.Distance.COSINE)


def clips_vectors(meta: CatalogMeta) -> dict[str, models.VectorParams]:
    vectors = {name: _cosine(meta.text_dim) for name in CLIP_TEXT_VECTORS}
    if meta.image_model and meta.image_dim:
        vectors[IMAGE] = _cosine(meta.image_dim)
    return vectors


def moments_vectors(meta: CatalogMeta) -> dict[str, models.VectorParams]:
    vectors = {TEXT: _cosine(meta.text_dim)}
    if meta.image_model and meta.image_dim:
        vectors[IMAGE] = _cosine(meta.image_dim)
    return vectors


TEXT_INDEX = models.TextIndexParams(
    type=models.TextIndexType.TEXT,
    tokenizer=models.TokenizerType.WORD,
    lowercase=True,
    scoring=True,
)
"""Full-text index on ``_text`` with BM25 scoring (Qdrant >= 1.20). Default word
tokenizer, no stemming or stop words: that is what local mode can also score, so
keyword ranking is the same in both modes."""

#: Filter fields indexed on a server (local mode scans payloads instead).
FILTER_INDEXES: dict[str, models.PayloadSchemaType] = {
    f"{FILTER_KEY}.codec": models.PayloadSchemaType.KEYWORD,
    f"{FILTER_KEY}.width": models.PayloadSchemaType.INTEGER,
    f"{FILTER_KEY}.height": models.PayloadSchemaType.INTEGER,
    f"{FILTER_KEY}.duration_s": models.PayloadSchemaType.FLOAT,
    f"{FILTER_KEY}.fps": models.PayloadSchemaType.FLOAT,
    f"{FILTER_KEY}.hdr": models.PayloadSchemaType.BOOL,
    f"{FILTER_KEY}.has_speech": models.PayloadSchemaType.BOOL,
    f"{FILTER_KEY}.camera_make": models.PayloadSchemaType.KEYWORD,
    f"{FILTER_KEY}.camera_model": models.PayloadSchemaType.KEYWORD,
    f"{FILTER_KEY}.captured_at": models.PayloadSchemaType.DATETIME,
    f"{FILTER_KEY}.tags": models.PayloadSchemaType.KEYWORD,
    f"{FILTER_KEY}.dirs": models.PayloadSchemaType.KEYWORD,
    f"{FILTER_KEY}.path": models.PayloadSchemaType.KEYWORD,
    f"{FILTER_KEY}.kind": models.PayloadSchemaType.KEYWORD,
    f"{FILTER_KEY}.status": models.PayloadSchemaType.KEYWORD,
}
CLIPS_EXTRA_INDEXES: dict[str, models.PayloadSchemaType] = {
    "file.path": models.PayloadSchemaType.KEYWORD,
    "file.checksum": models.PayloadSchemaType.KEYWORD,
}
MOMENTS_EXTRA_INDEXES: dict[str, models.PayloadSchemaType] = {
    "clip_id": models.PayloadSchemaType.KEYWORD,
    "index": models.PayloadSchemaType.INTEGER,
}


def has_speech(record: ClipRecord) -> bool:
    speech = record.analysis.speech if record.analysis else None
    return bool(speech and (speech.text.strip() or speech.segments))


def duration_of(record: ClipRecord) -> float | None:
    if record.container and record.container.duration_s is not None:
        return record.container.duration_s
    return record.video.duration_s if record.video else None


def ancestor_dirs(path: str) -> list[str]:
    """Every folder above ``path``: ``/a/b/c.mp4`` -> ``["/", "/a", "/a/b"]`` (for path-prefix filters)."""
    return [str(p) for p in reversed(PurePosixPath(path).parents)]


def filter_payload(record: ClipRecord) -> dict[str, Any]:
    """The ``_f`` payload: flat, normalised copies of the fields ``--where`` filters on.

    Keywords are lower-cased (``codec=HEVC`` and ``codec=hevc`` agree); unknown values
    are None, which no range or match condition matches."""
    video = record.video
    tags = sorted({t.strip().lower() for t in (record.analysis.tags if record.analysis else []) if t.strip()})
    created = record.capture.created_at
    return {
        "codec": video.codec.lower() if video and video.codec else None,
        "width": video.width if video else None,
        "height": video.height if video else None,
        "fps": video.fps if video else None,
        "duration_s": duration_of(record),
        "hdr": video.hdr.is_hdr if video else None,
        "has_speech": has_speech(record),
        "camera_make": record.camera.make.strip().lower() if record.camera.make else None,
        "camera_model": record.camera.model.strip().lower() if record.camera.model else None,
        "captured_at": created.isoformat() if created else None,
        "tags": tags,
        "path": record.file.path,
        "dirs": ancestor_dirs(record.file.path),
        "kind": record.kind,
        "status": record.status,
    }


# ----------------------------------------------------------------------------- --where

FieldKind = Literal["keyword", "number", "int", "bool", "datetime", "resolution", "path"]


@dataclass(frozen=True)
class WhereField:
    key: str
    """Key under ``_f``."""
    kind: FieldKind
    help: str


WHERE_FIELDS: dict[str, WhereField] = {
    "codec": WhereField("codec", "keyword", "video codec as ffprobe names it: h264, hevc, av1, prores"),
    "width": WhereField("width", "int", "coded width in pixels"),
    "height": WhereField("height", "int", "coded height in pixels"),
    "resolution": WhereField("", "resolution", "WxH (e.g. 3840x2160) or Np (height), with = or >=, <= ..."),
    "duration": WhereField("duration_s", "number", "seconds"),
    "fps": WhereField("fps", "number", "average frame rate"),
    "hdr": WhereField("hdr", "bool", "true/false"),
    "has_speech": WhereField("has_speech", "bool", "true when a transcript exists"),
    "make": WhereField("camera_make", "keyword", "camera make, e.g. sony"),
    "model": WhereField("camera_model", "keyword", "camera model, e.g. ilce-7m4"),
    "captured": WhereField("captured_at", "datetime", "capture date/time, ISO: 2024-05-03 or 2024-05-03T10:00"),
    "tag": WhereField("tags", "keyword", "one of the clip's tags"),
    "path": WhereField("path", "path", "the file, or any folder above it (prefix match by folder)"),
    "kind": WhereField("kind", "keyword", "video, audio, image"),
    "status": WhereField("status", "keyword", "ingested or failed"),
}
WHERE_ALIASES = {
    "duration_s": "duration", "speech": "has_speech", "camera_make": "make", "camera_model": "model",
    "camera": "model", "date": "captured", "created": "captured", "captured_at": "captured", "tags": "tag",
    "res": "resolution", "dir": "path", "folder": "path",
}

_OPS = (">=", "<=", "!=", "=", ">", "<")
_CLAUSE = re.compile(
    r"""\s*(?P<key>[A-Za-z_][\w.]*)\s*(?P<op>>=|<=|!=|==|=|>|<)\s*"""
    r"""(?P<value>"[^"]*"|'[^']*'|[^,]*?)\s*(?:,|$)"""
)


class WhereError(ValueError):
    """A ``--where`` expression that cannot be understood; the message says why and where."""


def where_help() -> str:
    """One line per filterable field, for error messages and ``--help``."""
    return "; ".join(f"{name} ({f.help})" for name, f in WHERE_FIELDS.items())


def _field(name: str) -> tuple[str, WhereField]:
    lowered = name.lower()
    canonical = WHERE_ALIASES.get(lowered, lowered)
    if canonical in WHERE_FIELDS:
        return canonical, WHERE_FIELDS[canonical]
    close = difflib.get_close_matches(lowered, [*WHERE_FIELDS, *WHERE_ALIASES], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise WhereError(f"unknown field {name!r}{hint}; known fields: {', '.join(WHERE_FIELDS)}")


def _number(name: str, raw: str, *, integer: bool = False) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise WhereError(f"{name}: {raw!r} is not a number") from None
    if integer and not value.is_integer():
        raise WhereError(f"{name}: {raw!r} is not a whole number")
    return value


def _bool(name: str, raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("true", "yes", "1", "on"):
        return True
    if lowered in ("false", "no", "0", "off"):
        return False
    raise WhereError(f"{name}: {raw!r} is not true/false")


def _datetime_bounds(name: str, raw: str) -> tuple[datetime, datetime | None]:
    """A date means the whole day [start, next day); a datetime means that instant."""
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
            day = date.fromisoformat(raw)
            start = datetime.combine(day, time.min)
            return start, start + timedelta(days=1)
        return datetime.fromisoformat(raw), None
    except ValueError:
        raise WhereError(f"{name}: {raw!r} is not an ISO date (2024-05-03) or datetime (2024-05-03T10:00)") from None


def _range(op: str, value: Any, *, as_datetime: bool = False) -> models.Range | models.DatetimeRange:
    bounds = {">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}
    kwargs = {bounds[op]: value}
    return models.DatetimeRange(**kwargs) if as_datetime else models.Range(**kwargs)


def _cond(key: str, **kwargs: Any) -> models.FieldCondition:
    return models.FieldCondition(key=f"{FILTER_KEY}.{key}", **kwargs)


def _clause(name: str, op: str, raw: str) -> tuple[list[models.Condition], list[models.Condition]]:
    """(must, must_not) conditions for one ``name op value`` clause."""
    _, spec = _field(name)
    op = "=" if op == "==" else op
    if raw == "":
        raise WhereError(f"{name}{op}: missing value")
    must: list[models.Condition] = []
    must_not: list[models.Condition] = []
    target = must_not if op == "!=" else must
    ordered = op in (">", ">=", "<", "<=")
    match spec.kind:
        case "keyword":
            if ordered:
                raise WhereError(f"{name}: only = and != work on text fields")
            values = [v.strip().lower() for v in raw.split("|") if v.strip()]
            match_ = (models.MatchValue(value=values[0]) if len(values) == 1
                      else models.MatchAny(any=values))
            target.append(_cond(spec.key, match=match_))
        case "bool":
            if ordered:
                raise WhereError(f"{name}: only = and != work on true/false fields")
            target.append(_cond(spec.key, match=models.MatchValue(value=_bool(name, raw))))
        case "number" | "int":
            value = _number(name, raw, integer=spec.kind == "int")
            if ordered:
                must.append(_cond(spec.key, range=_range(op, value)))
            else:
                target.append(_cond(spec.key, range=models.Range(gte=value, lte=value)))
        case "datetime":
            start, end = _datetime_bounds(name, raw)
            if end is None:  # an instant
                window = (_range(op, start, as_datetime=True) if ordered
                          else models.DatetimeRange(gte=start, lte=start))
            else:  # a whole day [start, end)
                window = {
                    ">": models.DatetimeRange(gte=end), ">=": models.DatetimeRange(gte=start),
                    "<": models.DatetimeRange(lt=start), "<=": models.DatetimeRange(lt=end),
                }.get(op, models.DatetimeRange(gte=start, lt=end))
            (must if ordered else target).append(_cond(spec.key, range=window))
        case "resolution":
            width, height = _resolution(name, raw)
            conds: list[models.Condition] = []
            for key, pixels in (("width", width), ("height", height)):
                if pixels is None:
                    continue
                if ordered:
                    conds.append(_cond(key, range=_range(op, pixels)))
                else:
                    conds.append(_cond(key, match=models.MatchValue(value=pixels)))
            if op == "!=":
                must_not.append(models.Filter(must=conds))
            else:
                must.extend(conds)
        case "path":
            if ordered:
                raise WhereError(f"{name}: only = and != work on paths")
            folder = os.path.abspath(os.path.expanduser(raw)).rstrip("/") or "/"
            either = models.Filter(should=[
                _cond("path", match=models.MatchValue(value=folder)),
                _cond("dirs", match=models.MatchValue(value=folder)),
            ])
            target.append(either)
    return must, must_not


def _resolution(name: str, raw: str) -> tuple[int | None, int | None]:
    text = raw.lower().replace(" ", "")
    if m := re.fullmatch(r"(\d+)[x×](\d+)", text):
        return int(m.group(1)), int(m.group(2))
    if m := re.fullmatch(r"(\d+)p", text):
        return None, int(m.group(1))
    aliases = {"4k": (3840, 2160), "uhd": (3840, 2160), "hd": (1280, 720), "fhd": (1920, 1080)}
    if text in aliases:
        return aliases[text]
    raise WhereError(f"{name}: {raw!r} is not WxH (3840x2160), Np (1080p) or 4k/uhd/fhd/hd")


def parse_where(expr: str | None) -> models.Filter | None:
    """Parse ``--where``: comma-separated ``field OP value`` clauses, all must hold.

    OP is ``= != > >= < <=``; values may be quoted (``model="EOS R5"``); ``a|b`` on a
    text field means either. Examples: ``codec=hevc,hdr=true,duration>30``,
    ``resolution>=1920x1080``, ``captured>=2024-01-01``, ``path=/footage/day1``,
    ``tag=interview|drone``. Raises :class:`WhereError` naming the bad part."""
    if expr is None or not expr.strip():
        return None
    must: list[models.Condition] = []
    must_not: list[models.Condition] = []
    pos = 0
    text = expr.strip()
    while pos < len(text):
        m = _CLAUSE.match(text, pos)
        if m is None or m.end() == pos:
            bad = text[pos:].split(",", 1)[0].strip()
            raise WhereError(
                f"cannot read {bad!r} in --where {expr!r}: expected field OP value with OP one of "
                f"{' '.join(_OPS)}, clauses separated by commas (e.g. codec=hevc,duration>30)"
            )
        value = m.group("value").strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        elif any(op in value for op in ("=", ">", "<")):
            raise WhereError(f"cannot read {m.group(0).strip(' ,')!r} in --where: a missing comma?")
        clause_must, clause_not = _clause(m.group("key"), m.group("op"), value)
        must.extend(clause_must)
        must_not.extend(clause_not)
        pos = m.end()
    return models.Filter(must=must or None, must_not=must_not or None)


def merge_filters(*filters: models.Filter | None) -> models.Filter | None:
    """AND of the given filters (None entries ignored)."""
    present = [f for f in filters if f is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]
    return models.Filter(must=list(present))
