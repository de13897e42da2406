"""``rayflow search | similar | rm | reindex``: the catalog's search side.

``search`` is answered by the service's warm searcher when ``rayflow server start`` runs
(``rayflow.engine.searcher``; ``--json`` says ``answered_by``), else it opens the catalog
itself, as the other commands do. Embedded Qdrant allows one process, so while an ingest
holds it they exit 3 and say to wait or run a Qdrant server (``--qdrant-url``), which any
number of readers can share with a running ingest. Keyword search loads no model; semantic and hybrid embed the query
with the NumPy copy of the packaged MiniLM (``rayflow.ml.bert_numpy``: ~0.2 s of CPU,
no torch import), or the torch encoder for other models. Results carry a relevance
(0-100 %) and why they matched; none above the threshold is "no good match". Exit
codes follow ``rayflow``'s: 0 ok, 1 nothing found / not catalogued, 2 usage (bad ``--where``), 3 environment (catalog
busy, model mismatch: run ``rayflow reindex``).
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from rayflow.catalog.relevance import SIMILAR_THRESHOLD
from rayflow.config import Settings, load_settings

if TYPE_CHECKING:
    from rayflow.catalog.hits import Hit
    from rayflow.catalog.store import Catalog

log = logging.getLogger(__name__)
_E = TypeVar("_E")

out = Console(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ENV = 0, 1, 2, 3
REINDEX_BACKUP = "catalog-reindex.jsonl"
"""Under the home: the records being re-embedded, until a reindex finishes."""

HomeOpt = Annotated[Path | None, typer.Option("--home", help="State dir (default $RAYFLOW_HOME or ~/.rayflow).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout, nothing else.")]
QdrantOpt = Annotated[str | None, typer.Option("--qdrant-url", help="Qdrant server (default: embedded).")]
WhereOpt = Annotated[str | None, typer.Option(
    "--where", help="Filters, all must hold: codec=hevc,hdr=true,duration>30,resolution>=1920x1080,"
                    "make=sony,model=\"EOS R5\",captured>=2024-01-01,tag=drone|aerial,path=/footage/day1,"
                    "has_speech=true")]


def _fail(message: str, code: int) -> typer.Exit:
    err.print(Text(f"error: {message}"))
    return typer.Exit(code)


def _settings(**flags: Any) -> Settings:
    try:
        return load_settings(**flags)
    except (ValueError, FileNotFoundError) as exc:
        raise _fail(str(exc), EXIT_USAGE) from exc


def _open(settings: Settings) -> Catalog:
    from rayflow.catalog.store import Catalog, CatalogBusy

    try:
        return Catalog.open(path=settings.catalog_dir, url=settings.qdrant_url, api_key=settings.qdrant_api_key)
    except CatalogBusy as exc:
        raise _fail(str(exc), EXIT_ENV) from exc


def _loaded(load: Callable[[], _E]) -> _E:
    """An encoder from :mod:`rayflow.engine.searcher`'s loaders; missing weights exit 3 with the fix."""
    from rayflow.engine.searcher import SearchFailed

    try:
        return load()
    except SearchFailed as exc:
        raise _fail(str(exc), exc.code) from exc


# ----------------------------------------------------------------------------- rendering

def _safe(text: object, limit: int = 200) -> str:
    """Untrusted text (file names, transcripts): control characters made visible, length capped."""
    cleaned = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in str(text))
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return ""
    whole = int(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}" if whole >= 3600 else \
        f"{whole // 60}:{whole % 60:02d}"


def _snippet(text: str, terms: list[str], width: int = 160) -> str:
    """A window of ``text`` around the first query term it contains."""
    lowered = text.lower()
    positions = [p for p in (lowered.find(t) for t in terms) if p >= 0]
    if len(text) <= width or not positions:
        return text[:width] + ("…" if len(text) > width else "")
    start = max(0, min(positions) - width // 3)
    return ("…" if start else "") + text[start:start + width] + ("…" if start + width < len(text) else "")


def _highlighted(text: str, terms: list[str]) -> Text:
    body = Text(_safe(_snippet(text, terms), 400))  # a Text is never parsed as markup
    if terms:
        body.highlight_words(terms, style="bold yellow", case_sensitive=False)
    return body


def _hits_table(hits: list[Hit], terms: list[str], title: str, score_label: str = "relevance") -> Table:
    table = Table(title=Text(title), show_lines=False)
    for col, kwargs in (("#", {"justify": "right"}), ("clip", {"overflow": "fold"}),
                        (score_label, {"justify": "right"}), ("when", {}), ("why", {}),
                        ("matched", {"overflow": "fold", "ratio": 3}), ("thumbnail", {"overflow": "fold"})):
        table.add_column(col, **kwargs)
    for rank, hit in enumerate(hits, start=1):
        clip = Text(_safe(hit.name, 60))
        clip.append(f"\n{hit.clip_id[:8]}", style="dim")
        when = f"{_clock(hit.start_s)}–{_clock(hit.end_s)}" if hit.start_s is not None else "—"
        score = "—" if hit.score is None else f"{hit.score * 100:.0f}%"
        table.add_row(str(rank), clip, score, when, hit.why, _highlighted(hit.text, terms),
                      Text(_safe(hit.thumbnail or "—", 120)))
    return table


def _emit_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


# ----------------------------------------------------------------------------- commands

def search_command(
    query: Annotated[str, typer.Argument(
        help="What you are looking for, in words; \"*\" (or \"\") lists the clips that pass --where.")] = "*",
    mode: Annotated[str, typer.Option("--mode", help="semantic (meaning) | keyword (words) | hybrid (both).")]
    = "hybrid",
    target: Annotated[str, typer.Option("--in", help="clips (one hit per clip) | moments (one per moment).")]
    = "clips",
    where: WhereOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=500, help="Results to show.")] = 10,
    home: HomeOpt = None,
    qdrant_url: QdrantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Search the catalog; each hit shows its relevance (0-100 %), the moment's time range, why it
    matched (speech, on-screen text, description, technical, ...) with the text, and a frame.
    Only hits above the relevance threshold are shown: a query about nothing in the catalog
    answers "no good match" (exit 1). ``rayflow search "*" --where hdr=true`` browses by filters."""
    from rayflow.catalog.relevance import BROWSE_QUERIES, STOPWORDS, query_terms
    from rayflow.engine.searcher import SearchFailed, SearchRequest, search_hits

    settings = _settings(home=home, qdrant_url=qdrant_url)
    request = SearchRequest.of(settings, query=query, mode=mode, target=target, where=where, limit=limit)
    try:
        hits, answered_by = search_hits(settings.home, request)
    except SearchFailed as exc:
        raise _fail(str(exc), exc.code) from exc
    browsing = query.strip() in BROWSE_QUERIES
    if as_json:
        _emit_json({"query": query, "mode": mode, "in": target, "where": where, "answered_by": answered_by,
                    "results": [{"rank": i, **h.to_dict()} for i, h in enumerate(hits, start=1)]})
    else:
        terms = [t for t in query_terms(query) if t not in STOPWORDS]
        title = (f"clips where {_safe(where or 'anything', 80)}" if browsing
                 else f"{mode} search in {target}: {_safe(query, 80)}")
        if hits:
            out.print(_hits_table(hits, terms, title))
        elif browsing:
            out.print("no clips" + (" pass these filters" if where else " catalogued yet"))
        else:
            out.print(Text(f"no good match for {_safe(query, 80)!r}" + (" with these --where filters" if where else "")
                           + " (every clip scored under the relevance threshold)"))
    raise typer.Exit(EXIT_OK if hits else EXIT_FAILED)


def similar_command(
    clip: Annotated[str, typer.Argument(help="A clip id (or its first 8+ characters) or a catalogued file path.")],
    by: Annotated[str, typer.Option("--by", help="text (what is said and shown) | image (the primary frame).")]
    = "text",
    where: WhereOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=500)] = 10,
    threshold: Annotated[float | None, typer.Option(
        "--threshold", min=0.0, max=1.0,
        help=f"Least cosine similarity shown (default {SIMILAR_THRESHOLD} for text; 0 for image).")] = None,
    home: HomeOpt = None,
    qdrant_url: QdrantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Clips nearest to one clip (never itself): near-copies and re-encodes first."""
    from rayflow.catalog import schema
    from rayflow.catalog.search import SearchError, similar

    if by not in ("text", "image"):
        raise _fail(f"--by must be text or image, not {by!r}", EXIT_USAGE)
    try:
        flt = schema.parse_where(where)
    except schema.WhereError as exc:
        raise _fail(f"--where: {exc}", EXIT_USAGE) from exc
    catalog = _open(_settings(home=home, qdrant_url=qdrant_url))
    try:
        clip_id = catalog.resolve(clip)
        if clip_id is None:
            raise _fail(f"no catalogued clip matches {_safe(clip, 200)!r}", EXIT_FAILED)
        if threshold is None:
            threshold = SIMILAR_THRESHOLD if by == "text" else 0.0
        hits = similar(catalog, clip_id, by=by, where=flt, limit=limit, threshold=threshold)  # type: ignore[arg-type]
    except SearchError as exc:
        raise _fail(str(exc), EXIT_FAILED) from exc
    finally:
        catalog.close()
    if as_json:
        _emit_json({"clip_id": clip_id, "by": by, "threshold": threshold,
                    "results": [{"rank": i, **h.to_dict()} for i, h in enumerate(hits, start=1)]})
    else:
        if hits:
            out.print(_hits_table(hits, [], f"similar to {clip_id} by {by} (similarity >= {threshold:.0%})",
                                  score_label="similarity"))
        else:
            out.print(f"no similar clips (none at similarity >= {threshold:.0%})")
    raise typer.Exit(EXIT_OK if hits else EXIT_FAILED)


def _output_paths(settings: Settings, clip_id: str, record: Any) -> list[Path]:
    """Files of one clip under the output dir: ``clips/<clip_id>/`` and ``records/<clip_id>.json``,
    plus the same two next to the record's own files when it was ingested with another ``--output``."""
    uuid.UUID(clip_id)  # never build paths from anything but a real clip id
    paths = [settings.clip_dir(clip_id), settings.records_dir / f"{clip_id}.json"]
    if record is not None:
        used = [t.path for t in record.thumbnails]
        if record.analysis:
            used += [t.path for t in record.analysis.best_thumbnails]
        if record.proxy:
            used.append(record.proxy.path)
        for file in used:
            folder = Path(file).parent
            if folder.name == clip_id and folder.parent.name == "clips":
                paths += [folder, folder.parent.parent / "records" / f"{clip_id}.json"]
    return list(dict.fromkeys(paths))


def rm_command(
    clips: Annotated[list[str], typer.Argument(help="Clip ids (or 8+ character prefixes) or catalogued file paths.")],
    home: HomeOpt = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Output dir (default <home>/output).")]
    = None,
    qdrant_url: QdrantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove clips from the catalog (point and moments) and their files under the output dir.
    The source footage is never touched."""
    settings = _settings(home=home, output=output, qdrant_url=qdrant_url)
    catalog = _open(settings)
    report: list[dict[str, Any]] = []
    try:
        for target in clips:
            clip_id = catalog.resolve(target)
            if clip_id is None and Path(target).is_file():  # moved or renamed since: by content
                from rayflow.stages.fingerprint import fingerprint

                by_content = fingerprint(Path(target)).clip_id
                clip_id = by_content if catalog.get(by_content) is not None else None
            if clip_id is None:
                report.append({"target": target, "clip_id": None, "removed": False, "files": []})
                continue
            record = catalog.get(clip_id)
            catalog.delete(clip_id)
            removed: list[str] = []
            for path in _output_paths(settings, clip_id, record):
                if path.is_dir():
                    shutil.rmtree(path)
                    removed.append(str(path))
                elif path.is_file():
                    path.unlink()
                    removed.append(str(path))
            report.append({"target": target, "clip_id": clip_id, "removed": True, "files": removed})
    finally:
        catalog.close()
    if as_json:
        _emit_json(report)
    else:
        for item in report:
            if item["removed"]:
                line = Text(f"removed {item['clip_id']} ")
                line.append(f"({len(item['files'])} output paths)", style="dim")
            else:
                line = Text("not catalogued: ")
                line.append(_safe(item["target"], 200))
            out.print(line)
    raise typer.Exit(EXIT_OK if all(i["removed"] for i in report) else EXIT_FAILED)


def reindex_command(
    home: HomeOpt = None,
    qdrant_url: QdrantOpt = None,
    model: Annotated[str | None, typer.Option(
        "--model", help="Text model folder or name (default: [embed] text_model, $RAYFLOW_TEXT_MODEL, "
                        "or the packaged all-MiniLM-L6-v2).")] = None,
    image_model: Annotated[str | None, typer.Option(
        "--image-model", help="CLIP/SigLIP folder for image vectors (default $RAYFLOW_IMAGE_MODEL; none).")] = None,
    batch: Annotated[int, typer.Option(help="Records embedded per batch.")] = 64,
    if_needed: Annotated[bool, typer.Option("--if-needed", help="Do nothing when the models already match.")]
    = False,
    as_json: JsonOpt = False,
) -> None:
    """Re-embed every catalogued clip from its stored record (no video is decoded), e.g. after
    changing the text model. Searches see an empty catalog until it finishes."""
    from rayflow.catalog.schema import CatalogMeta
    from rayflow.engine.searcher import load_image_encoder, load_text_encoder
    from rayflow.ml.text_encoder import TextEncoder, model_id_for
    from rayflow.stages.embed import embed_records

    settings = _settings(home=home, qdrant_url=qdrant_url)
    text_model = model or settings.embed.text_model
    image_name = image_model or settings.embed.image_model
    backup = settings.home / REINDEX_BACKUP
    catalog = _open(settings)
    try:
        current = catalog.meta
        wanted_text = TextEncoder(model_path=text_model).model_id
        wanted_image = model_id_for(image_name) if image_name else None
        if (if_needed and current is not None and not backup.exists() and current.schema == CatalogMeta().schema
                and current.text_model == wanted_text and current.image_model == wanted_image):
            n, skipped, meta = catalog.count(), True, current  # same model ids: nothing to load or do
        else:
            encoder = _loaded(lambda: load_text_encoder(text_model))
            image_encoder = _loaded(lambda: load_image_encoder(image_name)) if image_name else None
            meta = CatalogMeta(text_model=encoder.model_id, text_dim=encoder.dim,
                               image_model=image_encoder.model_id if image_encoder else None,
                               image_dim=image_encoder.dim if image_encoder else None)
            if not as_json:
                err.print(Text(f"re-embedding with {meta.text_model} ({meta.text_dim}-d)"
                               + (f" + {meta.image_model}" if meta.image_model else "")
                               + (f", was {current.text_model}" if current else "")))

            def progress(done: int, total: int) -> None:
                log.info("reindex: %d/%d clips", done, total)

            n = catalog.reindex(lambda recs: embed_records(recs, encoder, image_encoder), meta,
                                backup=backup, batch=batch, on_batch=progress)
            skipped = False
    finally:
        catalog.close()
    doc = {"clips": n, "text_model": meta.text_model, "text_dim": meta.text_dim,
           "image_model": meta.image_model, "skipped": skipped}
    if as_json:
        _emit_json(doc)
    else:
        out.print(Text(("catalog already uses " if skipped else "re-embedded ")
                       + f"{n} clips with {meta.text_model} ({meta.text_dim}-d)"))


def register(app: typer.Typer) -> None:
    """Add search, similar, rm and reindex to the ``rayflow`` app."""
    app.command("search")(search_command)
    app.command("similar")(similar_command)
    app.command("rm")(rm_command)
    app.command("reindex")(reindex_command)
