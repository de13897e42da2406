"""Native crashes, hangs and runaway allocations in the decoder, and tools that die of
signals, without Ray: what the isolated decord process and ``run_tool`` make of them."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from rayflow.config import load_settings
from rayflow.engine.outcomes import TransientError
from rayflow.engine.tasks import run_probe
from rayflow.media import decode
from rayflow.media.decode import CRASH_HOOK_ENV, DecoderCrashed, decode_frames
from rayflow.media.tools import ToolError, ToolKilled, ToolTimeout, run_tool
from tests.faults.test_hostile_batch import _shim
from tests.hostile import clip


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("iso") / "crash_me.mp4"
    clip(path, hue=33)
    return path


def _decode(path: Path, timeout_s: float = 60) -> decode.Frames:
    return decode_frames(path, timestamps_s=None, count=6, max_side=160, rotation=0, timeout_s=timeout_s)


def test_a_segfault_in_decord_is_contained_and_ffmpeg_takes_over(sample: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(CRASH_HOOK_ENV, "crash_me")
    frames = _decode(sample)
    assert frames.decoder == "ffmpeg" and frames.count == 6
    assert frames.note == "decord crashed (signal 11 SIGSEGV); frames decoded by ffmpeg instead"
    monkeypatch.delenv(CRASH_HOOK_ENV)
    assert _decode(sample).decoder == "decord"  # this process was never hurt


def test_a_crash_is_reported_by_signal(sample: Path) -> None:
    import os
    import signal

    def abort() -> decode.Frames:
        os.kill(os.getpid(), signal.SIGABRT)
        raise AssertionError("unreachable")

    with pytest.raises(DecoderCrashed, match=r"decord crashed \(signal 6 SIGABRT\)"):
        decode._isolated(abort, path=sample, deadline=time.monotonic() + 30)


def test_a_hung_decoder_is_killed_at_the_deadline(sample: Path) -> None:
    def hang() -> decode.Frames:
        time.sleep(600)
        raise AssertionError("unreachable")

    started = time.monotonic()
    with pytest.raises(ToolTimeout, match="decoder process killed"):
        decode._isolated(hang, path=sample, deadline=time.monotonic() + 1.5)
    assert time.monotonic() - started < 60  # killed, not waited for (generous: busy CI)


def test_the_decoder_cannot_take_unbounded_memory(sample: Path) -> None:
    def greedy() -> decode.Frames:
        np.empty(64 * 1024**3, dtype=np.uint8)  # 64 GiB of address space (not touched)
        raise AssertionError("the 64 GiB allocation succeeded: no address-space cap")

    with pytest.raises(RuntimeError, match="MemoryError"):
        decode._isolated(greedy, path=sample, deadline=time.monotonic() + 60)


def test_tool_signals_crash_is_deterministic_kill_is_transient(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match=r"crashed \(signal 11 SIGSEGV\)") as crashed:
        run_tool(["sh", "-c", "kill -SEGV $$"], timeout_s=30, path=tmp_path / "x.mp4")
    assert not isinstance(crashed.value, ToolTimeout)
    with pytest.raises(ToolKilled, match="killed by SIGKILL"):
        run_tool(["sh", "-c", "kill -KILL $$"], timeout_s=30, path=tmp_path / "x.mp4")


def test_a_probe_tool_killed_from_outside_is_retried_not_recorded(sample: Path, tmp_path: Path,
                                                                    monkeypatch) -> None:  # type: ignore[no-untyped-def]
    shims = tmp_path / "bin"
    shims.mkdir()
    _shim(shims, "ffprobe", "crash_me", "kill -KILL $$")
    monkeypatch.setenv("PATH", f"{shims}:{__import__('os').environ['PATH']}")
    settings = load_settings(env={}, home=tmp_path / "home")
    with pytest.raises(TransientError, match="killed by SIGKILL"):
        run_probe(str(sample), settings)
    _shim(shims, "ffprobe", "crash_me", "kill -SEGV $$")
    outcome = run_probe(str(sample), settings)
    assert outcome.error is not None and "crashed (signal 11 SIGSEGV)" in outcome.error
