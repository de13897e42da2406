"""The live view: the frame's content, plain lines in a pipe, and a real (pseudo) terminal
read back through a terminal emulator (pyte) to see what a user would see."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pyte
from rich.console import Console

from rayflow.cli import live_view
from rayflow.engine.progress import STAGES, Progress, count_in_background

ROOT = Path(__file__).resolve().parents[2]


def _text(progress: Progress) -> list[str]:
    console = Console(record=True, width=100, force_terminal=True, color_system=None)
    console.print(live_view.frame(progress.snapshot()))
    return console.export_text().splitlines()


def _row(lines: list[str], stage: str) -> list[str]:
    (row,) = [ln.split() for ln in lines if ln.split()[:1] == [stage]]
    return row[1:]


def test_frame_shows_true_counts_from_the_start_and_the_bar_on_its_own_row() -> None:
    progress = Progress()
    lines = _text(progress)
    assert "counting files" in lines[0] and "starting Ray" in lines[0]
    progress.hint_total(5)  # early discovery, before any stage ran
    lines = _text(progress)
    assert "0/5 files" in lines[0] and "starting" in lines[0]
    progress.set_total(5)
    progress.hint_total(99)  # the flow's own count wins over a late hint
    for i in range(5):
        progress.stage_started("fingerprint")
        progress.stage_finished("fingerprint", ok=True)
        progress.stage_started("store")
        if i < 3:
            progress.stage_finished("store", ok=True)
        progress.file_finished(f"/f/clip{i}.mp4", "ingested")
    lines = _text(progress)
    assert "5/5 files" in lines[0] and "files/s" in lines[0] and "starting" not in lines[0]
    header = [ln for ln in lines if ln.split()[:4] == ["stage", "running", "done", "failed"]]
    assert len(header) == 1 and lines.index(header[0]) == 1  # the bar's row ends before the table
    assert _row(lines, "store") == ["2", "3", "0"]
    assert _row(lines, "fingerprint") == ["0", "5", "0"]
    assert [ln.split()[0] for ln in lines[2:2 + len(STAGES)]] == list(STAGES)


def test_a_slow_run_shows_files_per_minute_not_zero() -> None:
    progress = Progress(total=9, _started=time.monotonic() - 200)  # 1 file in 200 s
    progress.stage_started("store")
    progress.stage_finished("store", ok=True)
    progress.file_finished("/f/a.mp4", "ingested")
    assert "0.30 files/min" in live_view.headline(progress.snapshot())


def test_pipe_prints_a_plain_line_when_counts_change(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(live_view, "PIPE_EVERY_S", 0.05)
    buf = io.StringIO()
    console = Console(file=buf, width=100)
    assert not console.is_terminal
    progress = Progress()
    progress.set_total(2)
    with live_view.show(progress, console):
        time.sleep(0.3)  # unchanged counts: one line, not one per tick
        progress.stage_started("store", 2)
        progress.stage_finished("store", ok=True, n=2)
        for name in ("a", "b"):
            progress.file_finished(name, "ingested")
        time.sleep(0.3)
    lines = buf.getvalue().splitlines()
    assert "\x1b" not in buf.getvalue()
    assert lines[0].startswith("ingest 0/2 files  starting")
    assert "2/2 files" in lines[-1] and "store 0/2" in lines[-1]
    assert len(lines) <= 3


def test_count_in_background_counts_files_and_missing_paths(tmp_path: Path) -> None:
    for name in ("a.mp4", "b.mov", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    progress = Progress()
    count_in_background(progress, [str(tmp_path), str(tmp_path / "nope")],
                        extensions=(".mp4", ".mov"), limit=None).join(timeout=10)
    assert progress.snapshot().total == 3


SCRIPT = r"""
import logging, os, subprocess, sys, time
from rich.console import Console
from rayflow.cli import live_view
from rayflow.engine.progress import Progress
log = logging.getLogger("noisy")
log.addHandler(logging.StreamHandler(sys.stderr))  # bound before the view, as Prefect's is
progress = Progress()
progress.set_total(5)
with live_view.show(progress, Console(stderr=True)):
    for i in range(5):
        progress.stage_started("store")
        time.sleep(0.3)
        os.write(2, b"native line %d\n" % i)
        log.warning("logged line %d", i)
        progress.stage_finished("store", ok=True)
        progress.file_finished(f"clip{i}.mp4", "ingested")
    subprocess.run(["sh", "-c", "echo child line >&2"], check=True)
    time.sleep(0.5)
"""


def test_terminal_shows_one_frame_with_other_output_above_it() -> None:
    cols, rows = 120, 40
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "PYTHONPATH": str(ROOT)}
    env.pop("COLUMNS", None)
    env.pop("LINES", None)
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], stdin=slave, stdout=slave, stderr=slave,
                            env=env, close_fds=True)
    os.close(slave)
    screen = pyte.Screen(cols, rows)
    stream = pyte.ByteStream(screen)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            stream.feed(data)
        elif proc.poll() is not None:
            break
    proc.wait(timeout=10)
    os.close(master)
    assert proc.returncode == 0
    shown = [line.rstrip() for line in screen.display]
    headers = [i for i, ln in enumerate(shown) if ln.split()[:4] == ["stage", "running", "done", "failed"]]
    assert len(headers) == 1, "\n".join(shown)  # no stale frame left above the live one
    assert sum("ingest " in ln and "files" in ln for ln in shown) == 1, "\n".join(shown)
    assert "5/5 files" in shown[headers[0] - 1]
    (store,) = [ln.split() for ln in shown if ln.split()[:1] == ["store"]]
    assert store[1:] == ["0", "5", "0"]
    foreign = [i for i, ln in enumerate(shown) if "native line" in ln or "logged line" in ln or "child line" in ln]
    assert len(foreign) == 11 and max(foreign) < headers[0] - 1, "\n".join(shown)
