"""Run an ffmpeg encode with live progress, a whole-group kill at the deadline, and a short error.

Shared by the proxy steps (catalog review proxy, editor proxies). ffmpeg runs in its own
process group (so filter threads and helpers die with it) and dies with its parent.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from rayflow.media.tools import ToolError, ToolTimeout, dies_with_parent, exit_description, which

ProgressCallback = Callable[[float], None]


def run_ffmpeg_progress(
    argv: list[str],
    *,
    timeout_s: float,
    path: Path | str | None,
    duration_s: float | None,
    on_progress: ProgressCallback | None = None,
) -> None:
    """Run an ffmpeg argv that has ``-progress pipe:1``, feeding ``on_progress``.

    Runs in its own process group; at ``timeout_s`` the whole group is SIGKILLed and
    ``ToolTimeout`` raised. A non-zero exit raises ``ToolError`` with ffmpeg's first and
    last error lines (the first usually names the cause, the last the consequence).
    stderr goes to a temp file, so a chatty ffmpeg can never block on a full pipe.
    """
    exe = which(argv[0]) if "/" not in argv[0] else argv[0]
    timed_out = threading.Event()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(dies_with_parent([exe, *argv[1:]]), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=err, start_new_session=True)

        def kill() -> None:
            timed_out.set()
            kill_group(proc)

        timer = threading.Timer(timeout_s, kill)
        timer.daemon = True
        timer.start()
        try:
            assert proc.stdout is not None
            for raw in proc.stdout:
                fraction = progress_fraction(raw, duration_s)
                if fraction is not None and on_progress is not None:
                    on_progress(fraction)
            proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:  # a callback raised, or we were interrupted
                kill_group(proc)
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        if timed_out.is_set():
            raise ToolTimeout("ffmpeg", path, f"encode timed out after {timeout_s:g} s")
        if proc.returncode != 0:
            err.seek(0)
            raise ToolError("ffmpeg", path, f"{exit_description(proc.returncode)}: {error_summary(err.read())}")


def progress_fraction(raw: bytes, duration_s: float | None) -> float | None:
    """0..1 from one ``-progress`` line: ``out_time_us=`` / duration, ``progress=end`` -> 1."""
    key, _, value = raw.decode("ascii", errors="replace").strip().partition("=")
    if key == "progress" and value == "end":
        return 1.0
    if key == "out_time_us" and duration_s and duration_s > 0:
        try:
            seconds = int(value) / 1e6
        except ValueError:  # "N/A" before the first frame
            return None
        return min(1.0, max(0.0, seconds / duration_s))
    return None


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(proc.pid, signal.SIGKILL)


def error_summary(stderr: bytes, limit: int = 400) -> str:
    lines = [ln.strip() for ln in stderr.decode("utf-8", errors="replace").splitlines() if ln.strip()]
    if not lines:
        return "no error output"
    text = lines[0] if len(lines) == 1 or lines[0] == lines[-1] else f"{lines[0]} ... {lines[-1]}"
    return text[:limit]
