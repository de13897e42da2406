"""``rayflow offload`` (verified card copy + ASC MHL + ingest) and ``rayflow export`` (timelines).

Exit codes as everywhere: 0 ok, 1 per-file failures (or a changed/missing file under
``--verify``), 2 usage, 3 environment (destination read-only or too small, tool missing).
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

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
    if hash_format not in ("xxh128", "xxh64"):
        err.print(f"error: --hash {hash_format!r}: use xxh128 or xxh64")
        raise typer.Exit(EXIT_USAGE)
    from rayflow.handoff.offload import OffloadEnvError, card_files
    from rayflow.handoff.offload import offload as run

    card, dests = paths[0], paths[1:]
    total = sum(size for _, size in card_files(card)) if card.is_dir() else 0
    try:
        with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                      TransferSpeedColumn(), console=err, transient=True, disable=as_json) as bar:
            task = bar.add_task("offload", total=total)
            report = run(card, dests, hash_format=hash_format,  # type: ignore[arg-type]
                         on_bytes=lambda rel, n: bar.update(task, advance=n, description=rel[-40:]))
    except OffloadEnvError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(EXIT_ENV) from exc
    code = EXIT_FAILED if report.failed else EXIT_OK
    if not as_json:
        _print_offload(report)
    summary = None
    if ingest and not report.failed and report.roots:
        ingest_code, summary = _ingest(report.roots[0], home, only, as_json)
        code = max(code, ingest_code)
    if as_json:
        sys.stdout.write(json.dumps({**_offload_json(report), "ingest": summary}, indent=2) + "\n")
    raise typer.Exit(code)


def _offload_json(report) -> dict[str, object]:  # type: ignore[no-untyped-def]
    return {"card": str(report.card), "destinations": [str(r) for r in report.roots],
            "hash_format": report.hash_format, "bytes_read": report.bytes_read,
            "manifests": [str(m) for m in report.manifests],
            "files": [{"path": f.rel, "dest": str(f.dest), "size_bytes": f.size_bytes, "status": f.status,
                       "digest": f.digest, "error": f.error} for f in report.files]}


def _print_offload(report) -> None:  # type: ignore[no-untyped-def]
    for f in report.failed:
        out.print(f"FAILED {f.dest / f.rel}: {f.error}", markup=False)
    for root in report.roots:
        mine = [f for f in report.files if f.dest == root]
        counts = {s: sum(f.status == s for f in mine) for s in ("copied", "present", "failed")}
        out.print(f"{root}: {counts['copied']} copied, {counts['present']} already there (verified), "
                  f"{counts['failed']} failed", markup=False)
    for manifest in report.manifests:
        out.print(f"ASC MHL: {manifest}", markup=False)


def _ingest(root: Path, home: Path | None, only: list[str] | None, as_json: bool) -> tuple[int, object]:
    """Ingest the copy through the CLI's own ``ingest`` command: (exit code, its JSON summary or None)."""
    from rayflow.cli import main as cli_main
    captured = io.StringIO()
    code = EXIT_OK
    with contextlib.redirect_stdout(captured) if as_json else contextlib.nullcontext():
        try:
            cli_main.ingest(paths=[root], home=home, only=only, as_json=as_json)
        except typer.Exit as exc:
            code = int(exc.exit_code)
    text = captured.getvalue().strip()
    return code, json.loads(text) if as_json and text.startswith("{") else None


def _verify(dests: list[Path], as_json: bool) -> int:
    from rayflow.handoff.verify import history_roots, verify_root

    if not dests:
        err.print("error: give DEST (a copy with an ascmhl/ folder, or a drive holding such copies)")
        return EXIT_USAGE
    reports = []
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


def register(app: typer.Typer) -> None:
    app.command("offload")(offload)
