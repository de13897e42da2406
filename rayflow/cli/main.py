"""The ``rayflow`` command line.

Exit codes: 0 all files ok (ingested, duplicate or skipped); 1 at least one file
failed; 2 usage error (bad flag, unknown step, missing path argument); 3 the
environment is not ready (missing tool, catalog busy, service unreachable).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from rayflow import __version__
from rayflow.config import Settings, load_settings

app = typer.Typer(
    name="rayflow",
    help="Ingest folders of footage into a searchable catalog (Prefect flows on Ray, Qdrant).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
server_app = typer.Typer(help="A long-lived local service (Prefect server, Ray head, searcher) that keeps ingests "
                                "and searches warm.",
                         no_args_is_help=True)
app.add_typer(server_app, name="server")

# Pipes and CI logs get a wide, fixed layout instead of 80 columns.
out = Console(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ENV = 0, 1, 2, 3

HomeOpt = Annotated[Path | None, typer.Option("--home", help="State dir (default $RAYFLOW_HOME or ~/.rayflow).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout, nothing else.")]
QdrantOpt = Annotated[str | None, typer.Option("--qdrant-url", help="Qdrant server (default: embedded).")]
OutputOpt = Annotated[Path | None, typer.Option("--output", "-o", help="Records, thumbnails (default <home>/output).")]


def _settings(*, config_file: Path | None = None, **flags: Any) -> Settings:
    """Settings from the config file, env and CLI ``flags`` (None means 'not given')."""
    try:
        return load_settings(config_file=config_file, **flags)
    except (ValueError, FileNotFoundError) as exc:
        err.print(f"[red]error:[/] {exc}", markup=True)
        raise typer.Exit(EXIT_USAGE) from exc


def _nested(**values: object) -> dict[str, object] | None:
    given = {k: v for k, v in values.items() if v is not None}
    return given or None


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")


def _print_version(value: bool) -> None:
    """Eager ``--version``: answers before typer asks for a command."""
    if value:
        out.print(f"rayflow {__version__}")
        raise typer.Exit(0)


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.", is_eager=True,
                                          callback=_print_version)] = False,
) -> None:
    # Progress bars of model loaders would garble the display (and --json output).
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files and/or folders (walked recursively).")],
    output: OutputOpt = None,
    home: HomeOpt = None,
    config: Annotated[Path | None, typer.Option("--config", help="TOML settings file.")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Files in flight (default 8 x CPUs).")] = None,
    skip: Annotated[list[str] | None, typer.Option("--skip", help="Step to skip (repeatable).")] = None,
    only: Annotated[list[str] | None, typer.Option("--only", help="Run only these steps (+ what they need).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Re-process content already catalogued.")] = False,
    limit: Annotated[int | None, typer.Option(help="At most N files (after sorting).")] = None,
    retries: Annotated[int | None, typer.Option(help="Retries for transient failures (default 2).")] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster address (default: embedded).")] = None,
    qdrant_url: QdrantOpt = None,
    ai_workers: Annotated[int | None, typer.Option(
        help="Analyzer actors (default: 1 per GPU, more as GPUs join; else 1).")] = None,
    gpus_per_worker: Annotated[float | None, typer.Option(help="GPUs per analyzer when the cluster has GPUs.")] = None,
    require_gpu: Annotated[bool, typer.Option("--require-gpu", help="Fail fast if the cluster has no GPU.")] = False,
    cpu_fallback: Annotated[bool, typer.Option(
        "--cpu-fallback", help="With --gpus-per-worker but no GPU in the cluster, use CPU instead of failing.",
    )] = False,
    encode_workers: Annotated[int | None, typer.Option(help="Concurrent CPU proxy encodes (default CPUs/2).")] = None,
    proxy_layout: Annotated[str | None, typer.Option(
        "--proxy-layout", help="review (default) | editor: also <folder>/Proxy/<same name>.mov that Premiere "
        "and Resolve relink (see `rayflow proxies`).",
    )] = None,
    proxy_codec: Annotated[str | None, typer.Option(
        "--proxy-codec", help="Editor proxy codec: prores_proxy (default) | dnxhr_lb | h264.",
    )] = None,
    shared_prefix: Annotated[list[str] | None, typer.Option(
        "--shared-prefix", help="DRIVER_PATH=WORKER_PATH: where Ray workers mount a shared path (repeatable).",
    )] = None,
    preflight: Annotated[bool, typer.Option(
        "--preflight/--no-preflight", help="On a multi-node cluster, check every node sees inputs and output first.",
    )] = True,
    as_json: JsonOpt = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Ingest footage: fingerprint, probe, sample frames, thumbnails, exposure, analysis, proxy, embed, store."""
    missing = [p for p in paths if not os.path.lexists(p)]
    if missing:  # before Ray, Prefect or any model starts: a typo costs nothing
        for path in missing:
            err.print(f"error: no such file or folder: {path}", markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE)
    _setup_logging(verbose)
    settings = _settings(
        config_file=config, home=home, output=output, concurrency=concurrency,
        skip=tuple(skip) if skip else None, only=tuple(only) if only else None,
        force=force or None, limit=limit, retries=retries, address=address, qdrant_url=qdrant_url,
        analysis=_nested(workers=ai_workers, gpus_per_worker=gpus_per_worker, require_gpu=require_gpu or None,
                         cpu_fallback=cpu_fallback or None),
        proxy=_nested(encode_workers=encode_workers, layout=proxy_layout, editor_codec=proxy_codec),
        shared_prefix=tuple(shared_prefix) if shared_prefix else None, preflight=None if preflight else False,
    )
    from rayflow.engine.progress import Progress, count_in_background
    from rayflow.stages.steps import plan_steps

    try:
        plan = plan_steps(skip=settings.skip, only=settings.only)
    except ValueError as exc:
        err.print(f"error: {exc}")
        raise typer.Exit(EXIT_USAGE) from exc
    for note in plan.notes:
        err.print(f"note: {note}")

    from rayflow.catalog.errors import CatalogBusy, ModelMismatch
    from rayflow.cli import live_view, render
    from rayflow.engine.placement import UnsupportedUrl
    from rayflow.engine.pools import NoGpuError
    from rayflow.engine.preflight import PreflightError
    from rayflow.engine.runtime import ClusterUnreachable
    from rayflow.engine.session import ClusterSetupError, HomeBusy
    from rayflow.engine.session import ingest as run

    progress = Progress()
    count_in_background(progress, [str(p) for p in paths], extensions=settings.extensions,
                        limit=settings.limit)  # the file count shows while Ray starts
    try:
        with render.stdout_reserved(as_json):  # --json: nothing but the summary on stdout
            if err.is_terminal or not as_json:
                with live_view.show(progress, err, transient=as_json):
                    summary = run([str(p) for p in paths], settings, progress=progress)
            else:
                summary = run([str(p) for p in paths], settings, progress=progress)
    except UnsupportedUrl as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(EXIT_USAGE) from exc
    except (CatalogBusy, HomeBusy, NoGpuError, ModelMismatch, PreflightError, ClusterSetupError,
            ClusterUnreachable) as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(EXIT_ENV) from exc
    except Exception as exc:
        if exc.__class__.__name__ in ("ToolMissing", "RaySystemError"):
            err.print(f"error: {exc}", markup=False)
            raise typer.Exit(EXIT_ENV) from exc
        raise
    if as_json:
        sys.stdout.write(summary.model_dump_json(indent=2) + "\n")
    else:
        out.print(render.summary_table(summary))
        out.print(render.counts_line(summary))
        for note in summary.notes:
            out.print(render.safe(note, 600))
        out.print(f"records: {summary.records_dir}   catalog: {summary.catalog}", markup=False)
    raise typer.Exit(EXIT_FAILED if summary.counts.get("failed") else EXIT_OK)


def _open_records(home: Path | None, qdrant_url: str | None):  # type: ignore[no-untyped-def]
    """The catalog for reading records only: embedded, no qdrant_client import (see local_records)."""
    from rayflow.catalog.local_records import CatalogBusy, open_records

    settings = _settings(home=home, qdrant_url=qdrant_url)
    try:
        return open_records(path=settings.catalog_dir, url=settings.qdrant_url, api_key=settings.qdrant_api_key)
    except CatalogBusy as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(EXIT_ENV) from exc


def _open_catalog(home: Path | None, qdrant_url: str | None):  # type: ignore[no-untyped-def]
    from rayflow.catalog.store import Catalog, CatalogBusy

    settings = _settings(home=home, qdrant_url=qdrant_url)
    try:
        return Catalog.open(path=settings.catalog_dir, url=settings.qdrant_url,
                            api_key=settings.qdrant_api_key)
    except CatalogBusy as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(EXIT_ENV) from exc


@app.command("list")
def list_clips(
    home: HomeOpt = None,
    qdrant_url: QdrantOpt = None,
    where: Annotated[str | None, typer.Option(
        "--where", help="Only clips passing these filters, e.g. hdr=true,codec=hevc,duration>30 "
                        "(the same language as `rayflow search --where`).")] = None,
    limit: Annotated[int, typer.Option(help="Rows to show.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List catalogued clips (newest first), optionally only those passing --where."""
    from rayflow.cli import render

    if where and where.strip():
        records = _browse_records(where, home, qdrant_url, limit)
    else:  # records only: no qdrant_client import for an embedded catalog
        reader = _open_records(home, qdrant_url)
        try:
            records = sorted(reader.iter_records(), key=lambda r: (r.ingested_at is None, r.ingested_at),
                             reverse=True)[:limit]
        finally:
            reader.close()
    if as_json:
        sys.stdout.write(json.dumps([r.model_dump(mode="json") for r in records], indent=2) + "\n")
    else:
        out.print(render.records_table(records))


def _browse_records(where: str, home: Path | None, qdrant_url: str | None, limit: int) -> list[Any]:
    """``list --where``: the clips passing the filters, through Qdrant (the service's warm
    searcher when it runs, see ``engine.searcher``)."""
    from rayflow.engine.searcher import SearchFailed, SearchRequest, browsed_records

    settings = _settings(home=home, qdrant_url=qdrant_url)
    try:
        records, _ = browsed_records(settings.home, SearchRequest.of(settings, where=where, limit=limit))
    except SearchFailed as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(exc.code) from exc
    return records


@app.command()
def show(
    clip: Annotated[str, typer.Argument(help="A clip id (or its first 8+ characters) or a file path.")],
    home: HomeOpt = None,
    qdrant_url: QdrantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show every fact of one clip."""
    from rayflow.cli import render

    catalog = _open_records(home, qdrant_url)
    try:
        record = None
        candidate = Path(clip)
        if candidate.is_file():
            record = catalog.find_by_path(os.path.abspath(candidate))
            if record is None:  # moved or renamed since: find it by content
                from rayflow.stages.fingerprint import fingerprint

                record = catalog.get(fingerprint(candidate).clip_id)
        if record is None and len(clip) == 36:
            record = catalog.get(clip)
        if record is None and len(clip) >= 8:
            matches = [cid for cid in catalog.iter_clip_ids() if cid.startswith(clip)]
            record = catalog.get(matches[0]) if len(matches) == 1 else None
    finally:
        catalog.close()
    if record is None:
        err.print(f"no catalogued clip matches {clip!r}", markup=False)
        raise typer.Exit(EXIT_FAILED)
    if as_json:
        sys.stdout.write(record.model_dump_json(indent=2) + "\n")
    else:
        out.print(render.record_view(record))


@app.command()
def steps() -> None:
    """List the pipeline's steps, what each needs, and whether it runs by default."""
    from rich.table import Table

    from rayflow.stages.steps import STEPS

    table = Table(title="steps (use --skip / --only)")
    for col in ("step", "needs", "default", "what it does"):
        table.add_column(col)
    for s in STEPS:
        table.add_row(s.name, ", ".join(s.needs) or "—",
                      "required" if s.required else ("on" if s.default else "off"), s.summary)
    out.print(table)


@app.command()
def schema() -> None:
    """Print the record's JSON Schema (ClipRecord, with schema_version)."""
    from rayflow.record import SCHEMA_VERSION, ClipRecord

    doc = ClipRecord.model_json_schema()
    doc["$comment"] = f"rayflow record schema_version {SCHEMA_VERSION}"
    sys.stdout.write(json.dumps(doc, indent=2) + "\n")


@app.command()
def doctor(
    home: HomeOpt = None,
    qdrant_url: QdrantOpt = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster address to check.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check tools, packages, services, GPUs/NVENC and models; non-zero when something required is missing."""
    from rayflow.cli import render
    from rayflow.engine.doctor import run_checks

    settings = _settings(home=home, qdrant_url=qdrant_url, address=address)
    checks = run_checks(settings)
    if as_json:
        sys.stdout.write(json.dumps([c.__dict__ for c in checks], indent=2) + "\n")
    else:
        out.print(render.doctor_table(checks))
    if any(c.required and not c.ok for c in checks):
        raise typer.Exit(EXIT_ENV)


@app.command()
def verify(
    home: HomeOpt = None,
    output: OutputOpt = None,
    qdrant_url: QdrantOpt = None,
    deep: Annotated[bool, typer.Option("--deep", help="Also decode every thumbnail.")] = False,
    clean: Annotated[bool, typer.Option("--clean", help="Remove temp files of interrupted writes.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check catalog vs records vs clip folders; exit 1 when they disagree (see docs/reliability.md)."""
    from rayflow.catalog.verify import verify as check
    from rayflow.cli import render

    settings = _settings(home=home, output=output, qdrant_url=qdrant_url)
    catalog = _open_catalog(home, qdrant_url)
    try:
        report = check(catalog, settings.output_dir, deep=deep, clean=clean)
    finally:
        catalog.close()
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
    else:
        out.print(render.verify_view(report))
    raise typer.Exit(EXIT_OK if report.ok else EXIT_FAILED)


@app.command()
def runs(home: HomeOpt = None, limit: int = 10, as_json: JsonOpt = False) -> None:
    """Recent ingest runs with their counts."""
    from rich.table import Table

    from rayflow.engine.session import last_summaries

    settings = _settings(home=home)
    summaries = last_summaries(settings.home, limit)
    if as_json:
        sys.stdout.write(json.dumps([s.model_dump(mode="json") for s in summaries], indent=2) + "\n")
        return
    table = Table(title="recent runs")
    for col in ("run_id", "started", "files", "ingested", "duplicate", "failed"):
        table.add_column(col)
    for s in summaries:
        table.add_row(s.run_id, str(s.started_at)[:19], str(len(s.files)),
                      *(str(s.counts.get(k, 0)) for k in ("ingested", "duplicate", "failed")))
    out.print(table)


models_app = typer.Typer(help="Model roles: what loads, from where; verify; pull (explicit, online only).",
                         no_args_is_help=True)
app.add_typer(models_app, name="models")


@models_app.command("list")
def models_list(home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """Each model role, what will load, from where, and whether it is present."""
    from rich.table import Table

    from rayflow.cli.render import safe
    from rayflow.ml.registry import locations

    rows = locations(_settings(home=home))
    if as_json:
        sys.stdout.write(json.dumps([r.__dict__ for r in rows], indent=2, default=str) + "\n")
        return
    table = Table(title="models (nothing downloads at run time)")
    for col in ("role", "model", "source", "present", "where / how"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r.role, safe(r.model), r.source, "yes" if r.present else "no", safe(r.detail, 200))
    out.print(table)


@models_app.command("verify")
def models_verify(home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """Load every model and run one tiny inference; non-zero exit if any fails."""
    from rich.table import Table

    from rayflow.cli.render import safe
    from rayflow.ml.registry import verify

    results = verify(_settings(home=home))
    if as_json:
        sys.stdout.write(json.dumps([r.__dict__ for r in results], indent=2) + "\n")
    else:
        table = Table(title="models verify")
        for col in ("role", "ok", "seconds", "detail"):
            table.add_column(col, overflow="fold")
        for r in results:
            table.add_row(r.role, "ok" if r.ok else "FAILED", f"{r.seconds:.2f}", safe(r.detail, 300))
        out.print(table)
    if not all(r.ok for r in results):
        raise typer.Exit(EXIT_ENV)


@models_app.command("pull")
def models_pull(
    role: Annotated[str, typer.Argument(help="e.g. image_text_embedding, captioning, speech")],
    model_id: Annotated[str, typer.Argument(help="Hub id, e.g. openai/clip-vit-base-patch32")],
) -> None:
    """Download a model into models/<role>/<name>/ (needs network; fails clearly offline)."""
    from rayflow.ml.registry import pull

    try:
        path = pull(role, model_id)
    except RuntimeError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(EXIT_ENV) from exc
    out.print(f"saved to {path}", markup=False)


@server_app.command("start")
def server_start(home: HomeOpt = None) -> None:
    """Start the home's long-lived service: a Prefect server and a Ray head (loopback) that every
    `ingest` on the home attaches to until `rayflow server stop`, so its models stay loaded, and a
    searcher that answers `search` and `list --where` with its imports and query encoder warm."""
    from rayflow.engine import runtime, searcher, service

    settings = _settings(home=home)
    running = runtime.running_server(settings.home)
    prefect = running or runtime.start_prefect_server(settings.home, detach=True, wait=False)
    ray_svc = service.running(settings.home)
    if ray_svc is None:
        service.stop(settings.home)  # a stale record's leftovers, if any
        slots, plan = service.encode_slots(settings)
        ray_svc = service.start(settings.home, resources=slots, encoders=(settings.proxy.encoders, plan))
    prefect.wait_ready()
    search_pid = searcher.start(settings.home, settings)
    out.print(f"{'already running' if running else 'started'}: PREFECT_API_URL={prefect.url}", markup=False)
    out.print(f"ray: {ray_svc.address} (session {ray_svc.session_dir})", markup=False)
    out.print(f"search: {searcher.socket_path(settings.home)} (pid {search_pid})" if search_pid
              else f"search: not started, searches run in their own process (see {settings.home / searcher.LOG_NAME})",
              markup=False)


@server_app.command("stop")
def server_stop(home: HomeOpt = None) -> None:
    """Stop the service: its Ray head (and the warm actors on it), the searcher and the Prefect server."""
    from rayflow.engine import runtime, searcher, service

    settings = _settings(home=home)
    search_stopped = searcher.stop(settings.home)
    ray_stopped = service.stop(settings.home)
    prefect_stopped = runtime.stop_detached_server(settings.home)
    out.print("stopped" if ray_stopped or prefect_stopped or search_stopped else "no server was running")


@server_app.command("status")
def server_status(home: HomeOpt = None) -> None:
    """Print the service's Prefect URL, Ray address and searcher; exit 1 when neither Prefect nor Ray runs."""
    from rayflow.engine import runtime, searcher, service

    settings = _settings(home=home)
    prefect = runtime.running_server(settings.home)
    ray_svc = service.running(settings.home)
    search_pid = searcher.running(settings.home)
    out.print(f"PREFECT_API_URL={prefect.url}" if prefect else "prefect: not running (ingest starts one per run)",
              markup=False)
    out.print(f"ray: {ray_svc.address}" if ray_svc else "ray: not running (ingest starts its own)", markup=False)
    out.print(f"search: pid {search_pid}" if search_pid else "search: not running (searches run in their own process)",
              markup=False)
    if prefect is None and ray_svc is None:
        raise typer.Exit(EXIT_FAILED)


from rayflow.cli.search_cmds import register as _register_search  # noqa: E402

_register_search(app)
from rayflow.cli.serve_cmd import register as _register_serve  # noqa: E402

_register_serve(app)
from rayflow.cli.handoff_cmds import register as _register_handoff  # noqa: E402

_register_handoff(app)


if __name__ == "__main__":  # pragma: no cover
    app()
