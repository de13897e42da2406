"""The live view of a running ingest: one frame in a terminal, plain status lines in a pipe.

In a terminal the frame is redrawn in place (rich ``Live``). Anything else that writes to
the terminal while it is shown would leave a stale copy of the frame above the live one:
Ray's and Prefect's log handlers (bound to the original ``sys.stderr``), native code and
child processes (the Prefect server, raylet) all write to fd 2 directly. So while the
frame is up, fds 1 and 2 point at a temporary file and a thread prints each new line of
it *above* the frame, through the console that draws it; the fds are restored after.

In a pipe (CI logs, ``| tee``) there is no cursor to move: one plain line is printed when
the counts change, at most every :data:`PIPE_EVERY_S` seconds, and a last one at the end.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from typing import IO

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from rayflow.cli.render import safe
from rayflow.engine.progress import STAGES, Progress, Snapshot

PIPE_EVERY_S = 5.0
"""Least seconds between two status lines in a pipe (a 24-clip run prints a handful)."""
FORWARD_EVERY_S = 0.2
"""How often captured fd 1/2 output is printed above the live frame."""


def _fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"


def _started(snap: Snapshot) -> bool:
    return any(c.running or c.done or c.failed for c in snap.stages.values())


def headline(snap: Snapshot) -> str:
    """``12/24 files  0.84 files/s  elapsed 0:14  ETA 0:14`` (``starting …`` before the
    first stage runs, with the file count discovery found so far)."""
    files = f"{snap.finished}/{snap.total} files" if snap.total or _started(snap) else "counting files"
    if not _started(snap):
        return f"{files}  starting Ray, Prefect and the workers  elapsed {_fmt_s(snap.elapsed_s)}"
    rate = snap.files_per_s
    speed = f"{rate:.2f} files/s" if rate >= 0.1 or not snap.finished else f"{rate * 60:.2f} files/min"
    return f"{files}  {speed}  elapsed {_fmt_s(snap.elapsed_s)}  ETA {_fmt_s(snap.eta_s)}"


def frame(snap: Snapshot) -> Group:
    """The terminal frame: bar and headline on one row, then the stage table, statuses,
    files in flight, encodes in progress and what the run waits on (if anything)."""
    top = Table.grid(padding=(0, 2))
    top.add_row(ProgressBar(total=max(snap.total, 1), completed=snap.finished, width=30),
                Text.assemble(("ingest ", "bold"), headline(snap)))
    stages = Table(box=None, pad_edge=False, show_header=True, header_style="dim")
    stages.add_column("stage")
    stages.add_column("running", justify="right")
    stages.add_column("done", justify="right", style="green")
    stages.add_column("failed", justify="right", style="red")
    for name in STAGES:
        c = snap.stages[name]
        stages.add_row(name, str(c.running), str(c.done), str(c.failed))
    statuses = Text("  ".join(f"{k}: {v}" for k, v in sorted(snap.statuses.items())) or "—")
    parts: list[object] = [top, stages, statuses, _names("now: ", snap.current, 50)]
    if snap.encodes:
        parts.append(_names("encoding: ", [f"{p} {f:.0%}" for p, f in sorted(snap.encodes.items())], 40))
    notes = getattr(snap, "notes", None)  # what the run waits on, where the flow reports it
    if notes:
        parts.append(Text("; ".join(str(safe(n, 80)) for n in notes), style="yellow"))
    return Group(*parts)  # type: ignore[arg-type]


def _names(label: str, items: list[str], limit: int) -> Text:
    line = Text(label, style="dim")
    for i, item in enumerate(items[:4]):
        if i:
            line.append(", ")
        line.append(safe(item.rsplit("/", 1)[-1], limit))
    if len(items) > 4:
        line.append(f" +{len(items) - 4}", style="dim")
    return line


def status_line(snap: Snapshot) -> str:
    """One plain line for a pipe: the headline and the stages that have counts."""
    stages = " ".join(
        f"{name} {c.running}/{c.done}" + (f"/{c.failed}!" if c.failed else "")
        for name, c in snap.stages.items() if c.running or c.done or c.failed)
    return f"ingest {headline(snap)}" + (f"  [run/done] {stages}" if stages else "")


class _Forwarder:
    """fds 1 and 2 go to a temporary file; a thread prints its new lines above the frame."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.sink = tempfile.TemporaryFile()  # noqa: SIM115 - open until close(), which the view calls
        self.offset = 0
        self.partial = b""
        self.saved: dict[int, int] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="rayflow-view-fwd", daemon=True)

    def start(self) -> None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        for fd in (1, 2):
            if os.isatty(fd):
                self.saved[fd] = os.dup(fd)
                os.dup2(self.sink.fileno(), fd)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stop.wait(FORWARD_EVERY_S):
            self.pump()

    def pump(self, *, final: bool = False) -> None:
        data = os.pread(self.sink.fileno(), 1 << 20, self.offset)
        while data:
            self.offset += len(data)
            self.partial += data
            data = os.pread(self.sink.fileno(), 1 << 20, self.offset)
        *lines, self.partial = self.partial.split(b"\n")
        if final and self.partial:
            lines, self.partial = [*lines, self.partial], b""
        for raw in lines:
            text = raw.decode("utf-8", "replace").rstrip("\r")
            if text.strip():
                self.console.print(Text(text), soft_wrap=True)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=2)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        for fd, saved in self.saved.items():
            os.dup2(saved, fd)
            os.close(saved)
        self.pump(final=True)
        self.sink.close()


@contextlib.contextmanager
def _terminal(progress: Progress, console: Console, *, transient: bool) -> Iterator[None]:
    # The frame is drawn on a copy of the terminal's fd, not on fd 2 (captured below).
    tty: IO[str] = os.fdopen(os.dup(console.file.fileno()), "w", buffering=1)
    screen = Console(file=tty, force_terminal=True, highlight=False, width=console.width,
                     height=console.height, color_system=console.color_system)  # type: ignore[arg-type]
    forward = _Forwarder(screen)

    class _Frame:
        def __rich__(self) -> Group:
            return frame(progress.snapshot())

    try:
        with Live(_Frame(), console=screen, refresh_per_second=4, transient=transient,
                  redirect_stdout=False, redirect_stderr=False):
            forward.start()
            try:
                yield
            finally:
                forward.close()
    finally:
        tty.close()


@contextlib.contextmanager
def _pipe(progress: Progress, console: Console) -> Iterator[None]:
    stop = threading.Event()
    last: list[object] = [None]

    def emit() -> None:
        snap = progress.snapshot()
        counts = (snap.total, snap.finished, sorted(snap.stages.items()))
        if counts != last[0]:
            console.print(status_line(snap), markup=False, highlight=False, soft_wrap=True)
            last[0] = counts

    def loop() -> None:
        emit()
        while not stop.wait(PIPE_EVERY_S):
            emit()

    thread = threading.Thread(target=loop, name="rayflow-view-pipe", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=2)
        last[0] = None
        emit()


def _has_fd(console: Console) -> bool:
    try:
        console.file.fileno()
    except (AttributeError, OSError, ValueError):  # a stream object without a file descriptor
        return False
    return True


@contextlib.contextmanager
def show(progress: Progress, console: Console, *, transient: bool = False) -> Iterator[None]:
    """Show ``progress`` on ``console`` for the body of the ``with``: a live frame when the
    console is a terminal, status lines otherwise (see the module docstring)."""
    if console.is_terminal and not console.is_dumb_terminal and _has_fd(console):
        with _terminal(progress, console, transient=transient):
            yield
    else:
        with _pipe(progress, console):
            yield
