"""Rich rendering for the CLI. File names and metadata are untrusted text: they are
always wrapped in ``rich.text.Text`` (never parsed as markup) and control
characters are made visible."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from rayflow.cli.facts_view import fact_rows, fps_text
from rayflow.record import ClipRecord, RunSummary

if TYPE_CHECKING:  # importing doctor (engine.runtime: urllib, http) is for `doctor` alone
    from rayflow.engine.doctor import Check

STATUS_STYLE = {"ingested": "green", "duplicate": "cyan", "skipped": "yellow", "failed": "red"}


def safe(text: object, limit: int = 120) -> Text:
    """Untrusted text for display: control characters escaped, never markup."""
    raw = str(text)
    cleaned = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in raw)
    if len(cleaned) > limit:
        cleaned = "…" + cleaned[-(limit - 1):]
    return Text(cleaned)


@contextlib.contextmanager
def stdout_reserved(active: bool) -> Iterator[None]:
    """While active, whatever is written to stdout (fd 1: Python, or native code and Ray's
    background notices such as "A worker died...") goes to stderr, so ``--json`` output is
    the summary and nothing else, even when workers crash."""
    if not active:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def summary_table(summary: RunSummary) -> Table:
    table = Table(title=f"run {summary.run_id}", show_lines=False)
    table.add_column("status")
    table.add_column("file", overflow="fold")
    table.add_column("clip_id")
    table.add_column("detail", overflow="fold")
    for res in summary.files:
        detail = Text()
        if res.duplicate_of:
            detail.append("same content as ")
            detail.append(safe(res.duplicate_of, 80))
        for stage, msg in res.errors.items():
            if detail:
                detail.append("\n")
            detail.append(f"{stage}: ", style="bold")
            detail.append(safe(msg, 300))
        table.add_row(Text(res.status, style=STATUS_STYLE[res.status]), safe(res.path, 80),
                      (res.clip_id or "—")[:8], detail)
    return table


def counts_line(summary: RunSummary) -> Text:
    line = Text()
    for status in ("ingested", "duplicate", "skipped", "failed"):
        line.append(f"{status} {summary.counts.get(status, 0)}  ", style=STATUS_STYLE[status])
    return line


def _res(r: ClipRecord) -> str:
    v = r.video
    if v is None or v.width is None:
        return "—"
    return f"{v.display_width or v.width}x{v.display_height or v.height}"


def records_table(records: list[ClipRecord]) -> Table:
    table = Table()
    for col in ("clip_id", "file", "status", "duration", "res", "codec", "fps", "hdr", "audio",
                "camera"):
        table.add_column(col, overflow="fold")
    for r in records:
        v = r.video
        camera = " ".join(x for x in (r.camera.make, r.camera.model) if x) or "—"
        table.add_row(
            r.clip_id[:8], safe(r.file.name, 40), Text(r.status, style=STATUS_STYLE[r.status]),
            f"{v.duration_s:.2f}s" if v and v.duration_s else "—", _res(r),
            v.codec or "—" if v else "—", (fps_text(v.fps) if v else None) or "—",
            (v.hdr.format or "HDR") if v and v.hdr.is_hdr else "SDR" if v else "—",
            str(len(r.audio_tracks)), safe(camera, 30),
        )
    return table


def _kv(table: Table, key: str, value: Any) -> None:
    if value is None or value == "" or value == [] or value == {}:
        return
    table.add_row(key, safe(value, 200))


def record_view(r: ClipRecord) -> Table:
    t = Table(show_header=False, box=None)
    t.add_column(style="bold")
    t.add_column(overflow="fold")
    _kv(t, "clip_id", r.clip_id)
    _kv(t, "status", r.status)
    _kv(t, "path", r.file.path)
    _kv(t, "size", f"{r.file.size_bytes:,} bytes")
    _kv(t, "checksum", f"blake3:{r.file.checksum}")
    for label, text in fact_rows(r):  # metadata text: shown literally (safe), never as markup
        _kv(t, label, text)
    if e := r.exposure:
        _kv(t, "exposure", f"mean {e.mean_luma:.1f} median {e.median_luma:.1f} · "
                           f"clipped {e.clipped_highlights_pct:.1f}% crushed {e.crushed_shadows_pct:.1f}% · "
                           f"{e.stop_offset_ev:+.2f} EV" + (f" · WARNING {e.reason}" if e.warning else ""))
    if p := r.proxy:
        _kv(t, "proxy", f"{p.path} · {p.encoder} ({'GPU' if p.hardware else 'CPU'}) · {p.width}x{p.height} · "
                        f"{p.size_bytes:,} bytes" + (f" · {p.hdr_handling}" if p.hdr_handling else ""))
    for th in r.thumbnails:
        _kv(t, f"thumb {th.timestamp_s:.2f}s", th.path)
    for warning in r.warnings:
        t.add_row(Text("warning", style="yellow"), safe(warning, 400))
    for stage, msg in r.errors.items():
        t.add_row(Text(f"error {stage}", style="red"), safe(msg, 400))
    return t


def doctor_table(checks: list[Check]) -> Table:
    table = Table(title="rayflow doctor")
    for col in ("", "group", "check", "detail", "fix"):
        table.add_column(col, overflow="fold")
    for c in checks:
        mark = Text("ok", style="green") if c.ok else Text(
            "MISSING" if c.required else "warn", style="red" if c.required else "yellow")
        table.add_row(mark, c.group, c.name, safe(c.detail, 600), safe(c.fix, 200))
    return table


def verify_view(report: Any) -> Group:
    """``rayflow verify``: counts, then each discrepancy (paths and details escaped)."""
    head = Text.assemble(
        ("consistent" if report.ok else "INCONSISTENT", "green" if report.ok else "bold red"),
        f"  {report.points} catalog points · {report.records} records · {report.clip_dirs} clip folders · "
        f"{report.moments} moments · {len(report.temp_files)} temp file(s)"
        + (f" ({len(report.cleaned)} removed)" if report.cleaned else ""),
    )
    table = Table(show_header=True)
    for col in ("kind", "clip_id", "detail"):
        table.add_column(col, overflow="fold")
    for f in report.findings[:200]:
        table.add_row(f.kind, (f.clip_id or "—")[:8], safe(f.detail, 300))
    parts: list[Any] = [head]
    if report.findings:
        parts.append(table)
        if len(report.findings) > 200:
            parts.append(Text(f"... and {len(report.findings) - 200} more (--json lists all)"))
    return Group(*parts)
