"""Running external tools: argv lists only, a timeout on every call, errors that
name the tool and the file.

Two error kinds matter to the pipeline: ``ToolTimeout`` is transient (the tool may
succeed under less load, so the stage may be retried; ``ToolKilled``, a tool stopped by
SIGKILL/SIGTERM from outside, is one too) and ``ToolError`` is deterministic (the same
input fails the same way, so it is recorded, not retried; a tool that crashes with
SIGSEGV/SIGABRT on a file is reported as ``crashed (signal 11 SIGSEGV)``).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path


class ToolError(RuntimeError):
    """A tool failed on a file in a way that will repeat (bad input, unsupported)."""

    def __init__(self, tool: str, path: str | Path | None, message: str) -> None:
        self.tool = tool
        self.path = str(path) if path is not None else None
        where = f" on {self.path!r}" if self.path else ""
        super().__init__(f"{tool}{where}: {message}")


class ToolTimeout(ToolError):
    """A tool ran past its timeout; transient (retry may succeed)."""


class ToolKilled(ToolTimeout):
    """A tool was killed from outside (SIGKILL, SIGTERM...: the OOM killer, an operator, the
    worker that ran it dying) rather than failing on its input; transient like a timeout."""


KILLED_FROM_OUTSIDE = frozenset({signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
"""Signals that say the tool was stopped, not that it crashed on the file (SIGSEGV, SIGABRT...)."""


class ToolMissing(RuntimeError):
    """A required tool is not installed; the user must act (see `rayflow doctor`)."""


@dataclass(frozen=True)
class ToolOutput:
    stdout: bytes
    stderr: bytes
    returncode: int

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", errors="replace")


def which(tool: str) -> str:
    """Absolute path of ``tool`` or raise ``ToolMissing`` naming the fix."""
    found = shutil.which(tool)
    if found is None:
        raise ToolMissing(f"{tool} is not installed; run `rayflow doctor` (or scripts/setup.sh)")
    return found


def signal_name(number: int) -> str:
    """``11`` -> ``'SIGSEGV'`` (``'signal N'`` for numbers Python does not name)."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def exit_description(returncode: int) -> str:
    """How a tool ended, for an error: ``exit 1`` or ``crashed (signal 11 SIGSEGV)``."""
    if returncode < 0:
        return f"crashed (signal {-returncode} {signal_name(-returncode)})"
    return f"exit {returncode}"


@cache
def _pdeathsig_prefix() -> tuple[str, ...]:
    found = shutil.which("setpriv") if sys.platform.startswith("linux") else None
    return (found, "--pdeathsig", "KILL", "--") if found else ()


def dies_with_parent(argv: list[str]) -> list[str]:
    """``argv`` wrapped so the tool is killed when the process that started it dies.

    A Ray worker killed by ``kill -9`` (or the OOM killer) cannot stop its ffmpeg, which
    would run on as an orphan, writing a temp file nobody renames. util-linux
    ``setpriv --pdeathsig KILL`` (an exec wrapper; ~1 ms) makes the kernel kill it
    instead. Without setpriv (not Linux) the argv is returned unchanged.
    """
    return [*_pdeathsig_prefix(), *argv]


def run_tool(
    argv: list[str],
    *,
    timeout_s: float,
    path: str | Path | None = None,
    check: bool = True,
) -> ToolOutput:
    """Run ``argv`` (never a shell string) with a hard timeout.

    ``path`` is the media file the call is about; it only names the file in errors.
    With ``check`` a non-zero exit raises ``ToolError`` carrying the last stderr line.
    """
    if not isinstance(argv, list) or not argv:
        raise TypeError("argv must be a non-empty list of strings")
    tool = Path(argv[0]).name
    exe = which(argv[0]) if "/" not in argv[0] else argv[0]
    try:
        proc = subprocess.run(
            dies_with_parent([exe, *argv[1:]]),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ToolTimeout(tool, path, f"timed out after {timeout_s:g} s") from exc
    if proc.returncode < 0 and -proc.returncode in KILLED_FROM_OUTSIDE:
        raise ToolKilled(tool, path, f"killed by {signal_name(-proc.returncode)} (stopped from outside, "
                                     "e.g. out of memory); may succeed on a retry")
    if check and proc.returncode != 0:
        raise ToolError(tool, path, f"{exit_description(proc.returncode)}: {last_line(proc.stderr)}")
    return ToolOutput(proc.stdout, proc.stderr, proc.returncode)


def last_line(stderr: bytes, limit: int = 300) -> str:
    """The last non-empty line of a tool's stderr, trimmed for an error message."""
    lines = [ln.strip() for ln in stderr.decode("utf-8", errors="replace").splitlines()]
    lines = [ln for ln in lines if ln]
    return (lines[-1] if lines else "no error output")[:limit]
