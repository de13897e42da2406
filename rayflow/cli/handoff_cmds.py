"""``rayflow offload`` (verified card copy + ASC MHL + ingest) and ``rayflow export`` (timelines).

Exit codes as everywhere: 0 ok, 1 per-file failures (or a changed/missing file under
``--verify``), 2 usage, 3 environment (destination read-only or too small, tool missing).
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeGuard, get_args

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

if TYPE_CHECKING:  # the handoff, catalog and search modules load lazily, per command
    from rayflow.catalog.search import SearchMode, Target
    from rayflow.catalog.store import Catalog
    from rayflow.config import Settings
    from rayflow.handoff.export import Event
    from rayflow.handoff.offload import OffloadReport

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ENV = 0, 1, 2, 3
out = Console(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False, soft_wrap=True)  # paths in errors stay whole


def offload(
    paths: Annotated[list[Path], typer.Argument(help="CARD DEST [DEST2 ...]; with --verify: DEST [DEST2 ...].")],
    verify: Annotated[bool, typer.Option("--verify", help="Re-hash copies against their ASC MHL; copy nothing.")]
    = False,
    hash_format: Annotated[str, typer.Option("--hash", help="xxh128 (ASC MHL's default) or xxh64.")] = "xxh128",
    ingest: Annotated[bool, typer.Option("--ingest/--no-ingest", help="Ingest the first destination's copy.")]
    = True,
    home: Annotated[Path | None, typer.Option("--home", help="State dir for the ingest.")] = None,
    only: Annotated[list[str] | None, typer.Option("--only", help="Ingest only these steps (as ingest --only).")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")] = False,
) -> None:
    """Copy a camera card to one or more drives with read-back verification and an ASC MHL, then ingest it.

    The card lands in DEST/<card folder name>/ with its structure; existing files that
    match are checked, ones that differ are reported and never overwritten; re-running
    after a kill resumes.
    """
    if verify:
        raise typer.Exit(_verify(paths, as_json))
    if len(paths) < 2:
        err.print("error: give CARD and at least one DEST (or --verify DEST)")
        raise typer.Exit(EXIT_USAGE)
    from rayflow.handoff.offload import OffloadEnvError, card_files, is_hash_format
    from rayflow.handoff.offload import offload as run

    if not is_hash_format(hash_format):
        err.print(f"error: --hash {hash_format!r}: use xxh128 or xxh64")
        raise typer.Exit(EXIT_USAGE)

    card, dests = paths[0], paths[1:]
    total = sum(size for _, size in card_files(card)) if card.is_dir() else 0
    try:
        with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                      TransferSpeedColumn(), console=err, transient=True, disable=as_json) as bar:
            task = bar.add_task("offload", total=total)
            report = run(card, dests, hash_format=hash_format,
                         on_bytes=lambda rel, n: bar.update(task, advance=n, description=rel[-40:]))
    except OffloadEnvError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(EXIT_ENV) from exc
    code = EXIT_FAILED if report.failed else EXIT_OK
    if not as_json:
        _print_offload(report)
    summary = None
    if ingest and not report.failed and report.roots:
        ingest_code, summary = _ingest([report.roots[0]], home, only, as_json)
        code = max(code, ingest_code)
    if as_json:
        sys.stdout.write(json.dumps({**_offload_json(report), "ingest": summary}, indent=2) + "\n")
    raise typer.Exit(code)


def _offload_json(report: OffloadReport) -> dict[str, object]:
    return {"card": str(report.card), "destinations": [str(r) for r in report.roots],
            "hash_format": report.hash_format, "bytes_read": report.bytes_read,
            "manifests": [str(m) for m in report.manifests],
            "files": [{"path": f.rel, "dest": str(f.dest), "size_bytes": f.size_bytes, "status": f.status,
                       "digest": f.digest, "error": f.error} for f in report.files]}


def _print_offload(report: OffloadReport) -> None:
    for f in report.failed:
        out.print(f"FAILED {f.dest / f.rel}: {f.error}", markup=False)
    for root in report.roots:
        mine = [f for f in report.files if f.dest == root]
        counts = {s: sum(f.status == s for f in mine) for s in ("copied", "present", "failed")}
        out.print(f"{root}: {counts['copied']} copied, {counts['present']} already there (verified), "
                  f"{counts['failed']} failed", markup=False)
    for manifest in report.manifests:
        out.print(f"ASC MHL: {manifest}", markup=False)


def _ingest(paths: list[Path], home: Path | None, only: list[str] | None, as_json: bool) -> tuple[int, object]:
    """Ingest through the CLI's own ``ingest`` command: (exit code, its JSON summary or None)."""
    from rayflow.cli import main as cli_main
    captured = io.StringIO()
    code = EXIT_OK
    with contextlib.redirect_stdout(captured) if as_json else contextlib.nullcontext():
        try:
            cli_main.ingest(paths=paths, home=home, only=only, as_json=as_json)
        except typer.Exit as exc:
            code = int(exc.exit_code)
    text = captured.getvalue().strip()
    return code, json.loads(text) if as_json and text.startswith("{") else None


def _verify(dests: list[Path], as_json: bool) -> int:
    from rayflow.handoff.verify import VerifyReport, history_roots, verify_root

    if not dests:
        err.print("error: give DEST (a copy with an ascmhl/ folder, or a drive holding such copies)")
        return EXIT_USAGE
    reports: list[VerifyReport] = []
    for dest in dests:
        roots = history_roots(dest)
        if not roots:
            err.print(f"error: no ASC MHL history (ascmhl/ascmhl_chain.xml) in {dest} or its folders",
                      markup=False)
            return EXIT_USAGE
        reports.extend(verify_root(root) for root in roots)
    if as_json:
        sys.stdout.write(json.dumps([{"root": str(r.root), "passed": r.passed, "ok": len(r.ok),
                                      "changed": r.changed, "missing": r.missing, "new": r.new}
                                     for r in reports], indent=2) + "\n")
    else:
        for r in reports:
            for rel in r.changed:
                out.print(f"CHANGED {r.root / rel}", markup=False)
            for rel in r.missing:
                out.print(f"MISSING {r.root / rel}", markup=False)
            for rel in r.new:
                out.print(f"new (not in history) {r.root / rel}", markup=False)
            verdict = "verified" if r.passed else "FAILED"
            out.print(f"{r.root}: {verdict}: {len(r.ok)} ok, {len(r.changed)} changed, {len(r.missing)} missing",
                      markup=False)
    return EXIT_OK if all(r.passed for r in reports) else EXIT_FAILED


def export(
    query: Annotated[str | None, typer.Argument(help="Search words (as rayflow search); or use --ids.")] = None,
    ids: Annotated[list[str] | None, typer.Option("--ids", help="Clip ids (8+ chars) or paths: whole clips.")]
    = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="edl | otio | fcpxml (FCP 7 XML) | csv.")] = "edl",
    out_file: Annotated[Path | None, typer.Option("--out", "-o", help="File to write.")] = None,
    mode: Annotated[str, typer.Option("--mode", help="semantic | keyword | hybrid.")] = "hybrid",
    target: Annotated[str, typer.Option("--in", help="moments (one event per moment) | clips.")] = "moments",
    where: Annotated[str | None, typer.Option("--where", help="Filters, as rayflow search --where.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=500)] = 50,
    home: Annotated[Path | None, typer.Option("--home", help="State dir.")] = None,
    qdrant_url: Annotated[str | None, typer.Option("--qdrant-url", help="Qdrant server.")] = None,
) -> None:
    """Search hits (or chosen clips) as a timeline: one event per hit, source timecode in/out at the
    moment found, clip and reel names, the matched words as comments."""
    from rayflow.handoff.export import FORMATS, is_export_format, write

    if not is_export_format(fmt):
        err.print(f"error: --format must be one of {', '.join(FORMATS)}, not {fmt!r}", markup=False)
        raise typer.Exit(EXIT_USAGE)
    if (query is None) == (not ids) or out_file is None:
        err.print("error: give QUERY or --ids (not both), and --out FILE")
        raise typer.Exit(EXIT_USAGE)
    from rayflow.cli import search_cmds as sc

    settings = sc._settings(home=home, qdrant_url=qdrant_url)
    catalog = sc._open(settings)
    try:
        events = _events_for_ids(catalog, ids) if ids else _events_for_query(
            catalog, settings, query or "", mode, target, where, limit)
    finally:
        catalog.close()
    if not events:
        err.print("no matches: nothing exported")
        raise typer.Exit(EXIT_FAILED)
    write(events, fmt, out_file, name=f"rayflow: {query}" if query else "rayflow clips")
    out.print(f"{len(events)} events -> {out_file}", markup=False)
    raise typer.Exit(EXIT_OK)


def _events_for_ids(catalog: Catalog, ids: list[str]) -> list[Event]:
    from rayflow.handoff.export import event_for

    events = []
    for given in ids:
        clip_id = catalog.resolve(given)
        record = catalog.get(clip_id) if clip_id else None
        if record is None:
            err.print(f"error: no catalogued clip {given!r}", markup=False)
            raise typer.Exit(EXIT_USAGE)
        events.append(event_for(record, None, None))
    return events


def _is_mode(value: str) -> TypeGuard[SearchMode]:
    from rayflow.catalog.search import SearchMode

    return value in get_args(SearchMode)


def _is_target(value: str) -> TypeGuard[Target]:
    from rayflow.catalog.search import Target

    return value in get_args(Target)


def _events_for_query(catalog: Catalog, settings: Settings, query: str, mode: str, target: str,
                      where: str | None, limit: int) -> list[Event]:
    from rayflow.engine.searcher import SearchFailed, SearchRequest, search_in
    from rayflow.handoff.export import events_for_hits

    if not _is_mode(mode) or not _is_target(target):
        err.print("error: --mode is semantic|keyword|hybrid and --in is clips|moments")
        raise typer.Exit(EXIT_USAGE)
    request = SearchRequest.of(settings, query=query, mode=mode, target=target, where=where, limit=limit)
    try:
        hits = search_in(catalog, request)
    except SearchFailed as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(exc.code) from exc
    return events_for_hits(catalog, hits, query)


def proxies(
    paths: Annotated[list[Path], typer.Argument(help="Files and/or folders (walked; Proxy/ folders skipped).")],
    codec: Annotated[str, typer.Option("--codec", help="prores_proxy | dnxhr_lb | h264.")] = "prores_proxy",
    max_side: Annotated[int, typer.Option("--max-side", min=16, help="Longest side at most (whole divisor).")]
    = 1920,
    out_root: Annotated[Path | None, typer.Option("--out", help="Put Proxy/ here instead of beside each file.")]
    = None,
    force: Annotated[bool, typer.Option("--force", help="Remake proxies that exist.")] = False,
    threads: Annotated[int, typer.Option("--threads", min=1, help="ffmpeg threads per encode.")] = 2,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")] = False,
) -> None:
    """Editor proxies that relink in Premiere and Resolve: <folder>/Proxy/<same name>.mov with the
    source's frame rate, duration, start timecode, reel and audio channels, at a whole-divisor size."""
    from rayflow.config import DEFAULT_VIDEO_EXTENSIONS
    from rayflow.handoff.proxies import (
        EDITOR_CODECS,
        PROXY_FOLDER,
        EditorProxyStage,
        ToolError,
        ToolMissing,
        discover,
        is_editor_codec,
    )

    if not is_editor_codec(codec):
        err.print(f"error: --codec must be one of {', '.join(EDITOR_CODECS)}, not {codec!r}", markup=False)
        raise typer.Exit(EXIT_USAGE)
    found = discover(paths, extensions=DEFAULT_VIDEO_EXTENSIONS)
    if found.missing:
        err.print(f"error: no such path: {', '.join(map(str, found.missing))}", markup=False)
        raise typer.Exit(EXIT_USAGE)
    rows: list[dict[str, object]] = []
    stage = EditorProxyStage(codec=codec, max_side=max_side, out_root=out_root, threads=threads, force=force)
    stage.setup("cpu")
    for path in (f for f in found.files if PROXY_FOLDER not in f.parts):
        try:
            made = stage.process(path)
        except ToolMissing as exc:
            err.print(f"error: {exc}", markup=False)
            raise typer.Exit(EXIT_ENV) from exc
        except (ToolError, ValueError) as exc:
            rows.append({"source": str(path), "error": str(exc)})
            continue
        rows.append({"source": str(path), "proxy": str(made.path), "reused": made.reused, "width": made.width,
                     "height": made.height, "frame_rate": made.frame_rate, "timecode": made.timecode,
                     "audio_channels": list(made.audio_channels)})
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    else:
        for row in rows:
            if "error" in row:
                out.print(f"FAILED {row['source']}: {row['error']}", markup=False)
            else:
                out.print(f"{row['proxy']}  {row['width']}x{row['height']} {row['frame_rate']} "
                          f"tc {row['timecode'] or '-'} audio {row['audio_channels']}"
                          + (" (kept)" if row["reused"] else ""), markup=False)
    raise typer.Exit(EXIT_FAILED if any("error" in r for r in rows) else EXIT_OK)


def watch(
    dirs: Annotated[list[Path], typer.Argument(help="Folders to watch (walked recursively).")],
    interval_s: Annotated[float, typer.Option("--interval", min=0.1, help="Seconds between polls.")] = 2.0,
    settle_s: Annotated[float, typer.Option("--settle", min=0.0, help="Seconds a file must stop growing.")] = 5.0,
    once: Annotated[bool, typer.Option("--once", help="Ingest what arrives and settles, exit when idle for --settle.")]
    = False,
    only: Annotated[list[str] | None, typer.Option("--only", help="Ingest only these steps.")] = None,
    home: Annotated[Path | None, typer.Option("--home", help="State dir (watch state: <home>/watch.json).")]
    = None,
) -> None:
    """Ingest files as they appear in DIRS (once they stop growing); restarts skip what was done. Ctrl-C stops."""
    from rayflow.config import load_settings
    from rayflow.handoff.watch import STATE_NAME, Watcher

    missing = [d for d in dirs if not d.is_dir()]
    if missing:
        err.print(f"error: not a folder: {', '.join(map(str, missing))}", markup=False)
        raise typer.Exit(EXIT_USAGE)
    settings = load_settings(home=home)
    watcher = Watcher([d.resolve() for d in dirs], settings.home / STATE_NAME, settings.extensions, settle_s)
    counts = {"ingested": 0, "failed": 0}
    err.print(f"watching {', '.join(map(str, dirs))} (state {watcher.state_path}); Ctrl-C stops", markup=False)
    idle_since = time.monotonic()
    try:
        while True:
            ready = watcher.poll()
            if ready or watcher.waiting:
                idle_since = time.monotonic()
            if ready:
                err.print(f"{len(ready)} new file(s) settled: ingesting", markup=False)
                summary = _ingest_batch(ready, home, only)
                for path, outcome in _outcomes(ready, summary).items():
                    watcher.mark([path], outcome)
                    counts["ingested" if outcome != "failed" else "failed"] += 1
                err.print(f"ingested {counts['ingested']}, failed {counts['failed']}, "
                          f"{watcher.waiting} settling", markup=False)
            elif once and time.monotonic() - idle_since >= max(settle_s, interval_s):
                break
            time.sleep(interval_s)
    except KeyboardInterrupt:
        err.print("stopped", markup=False)
    raise typer.Exit(EXIT_FAILED if counts["failed"] else EXIT_OK)


def _ingest_batch(paths: list[Path], home: Path | None, only: list[str] | None) -> object:
    """One ``rayflow ingest --json`` process per batch: its JSON summary (None if it gave none).

    A process, not an in-process call: each run starts (and stops) its own Ray and Prefect
    API, and a second in-process run would still talk to the first one's stopped API. Its
    live progress goes to this terminal (stderr is inherited)."""
    argv = [sys.executable, "-m", "rayflow.cli.main", "ingest", *map(str, paths), "--json"]
    argv += ["--home", str(home)] if home else []
    for step in only or []:
        argv += ["--only", step]
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, check=False)
    try:
        return json.loads(proc.stdout)
    except ValueError:
        err.print(f"ingest exited {proc.returncode} without a summary", markup=False)
        return None


def _outcomes(paths: list[Path], summary: object) -> dict[Path, str]:
    """Each path's status from an ingest JSON summary ("failed" when the run gave none)."""
    files = summary.get("files", []) if isinstance(summary, dict) else []
    by_path = {str(Path(f.get("path", "")).resolve()): str(f.get("status", "failed")) for f in files}
    return {p: by_path.get(str(p), "failed") for p in paths}


def dupes(
    paths: Annotated[list[Path] | None, typer.Argument(help="Files/folders; default: every catalogued clip.")]
    = None,
    home: Annotated[Path | None, typer.Option("--home", help="State dir (catalog; hash cache in <home>/vhash).")]
    = None,
    qdrant_url: Annotated[str | None, typer.Option("--qdrant-url", help="Qdrant server.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")] = False,
) -> None:
    """Near-duplicates (re-encodes, trims, resizes, proxies) by multi-frame perceptual hashes, with the
    time offset of the overlap. Black intros and fades are skipped, not matched."""
    from rayflow.config import load_settings
    from rayflow.handoff.dupes import find_pairs, hash_all
    from rayflow.handoff.proxies import discover

    settings = load_settings(home=home, qdrant_url=qdrant_url)
    if paths:
        files = discover(paths, extensions=settings.extensions).files
    else:
        from rayflow.cli import search_cmds as sc
        catalog = sc._open(settings)
        try:
            files = sorted({Path(r.file.path) for r in catalog.iter_records()
                            if r.status == "ingested" and r.kind == "video" and Path(r.file.path).is_file()})
        finally:
            catalog.close()
    videos, errors = hash_all(files, settings.home / "vhash")
    pairs = find_pairs(videos)
    if as_json:
        sys.stdout.write(json.dumps({"files": len(files), "pairs": [p.to_dict() for p in pairs],
                                     "errors": errors}, indent=2) + "\n")
    else:
        for p in pairs:
            out.print(f"{p.a}  ~  {p.b}\n    offset {p.offset_s:+.2f} s, overlap {p.overlap_s:.2f} s "
                      f"({p.a_start_s:.2f}-{p.a_end_s:.2f} in the first), {p.matched} samples, "
                      f"coverage {p.coverage:.0%}, mean distance {p.mean_distance:.1f}/64", markup=False)
        for path, error in errors.items():
            err.print(f"skipped {path}: {error}", markup=False)
        out.print(f"{len(pairs)} near-duplicate pair(s) among {len(videos)} video(s)", markup=False)
    raise typer.Exit(EXIT_OK)


def register(app: typer.Typer) -> None:
    app.command("offload")(offload)
    app.command("export")(export)
    app.command("proxies")(proxies)
    app.command("watch")(watch)
    app.command("dupes")(dupes)
