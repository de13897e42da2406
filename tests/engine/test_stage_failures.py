"""Per-file failure paths of the flow's stage wrappers, without Ray or Prefect."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rayflow.config import load_settings
from rayflow.engine.assemble import build_record
from rayflow.engine.outcomes import TransientError
from rayflow.engine.tasks import run_probe, run_sample
from rayflow.media.tools import ToolTimeout, run_tool
from rayflow.stages.fingerprint import fingerprint
from rayflow.stages.steps import plan_steps
from tests.media import make_corpus


def test_a_file_that_vanishes_after_listing_fails_with_a_clear_reason(tmp_path: Path) -> None:
    clip = make_corpus(tmp_path / "src", ["h264_aac.mp4"])["h264_aac.mp4"]
    moving = tmp_path / "moving.mp4"
    shutil.copy2(clip, moving)
    fp = fingerprint(moving)
    settings = load_settings(env={}, home=tmp_path / "home")
    probed = run_probe(str(moving), settings)  # probe succeeds...
    assert probed.error is None
    moving.unlink()  # ...then the file vanishes before frames are decoded
    sampled = run_sample(str(moving), fp.clip_id, probed, settings, plan_steps().enabled)
    assert "sample" in sampled.errors
    record = build_record(fp=fp, probed=probed, sampled=sampled, errors={}, run_id="t",
                          fingerprint_s=0.0)
    assert record.status == "failed" and "sample" in record.errors
    gone = run_probe(str(moving), settings)
    assert gone.error is not None and "vanished" in gone.error


def test_a_hanging_tool_is_killed_and_reported_as_transient(tmp_path: Path) -> None:
    with pytest.raises(ToolTimeout, match="timed out after 0.3 s"):
        run_tool(["sleep", "30"], timeout_s=0.3, path=tmp_path / "x.mp4")
    settings = load_settings(env={}, home=tmp_path / "home")
    from dataclasses import replace

    slow = replace(settings, timeouts=replace(settings.timeouts, probe_s=0.0005))
    clip = make_corpus(tmp_path / "src", ["h264_aac.mp4"])["h264_aac.mp4"]
    with pytest.raises(TransientError, match="timed out"):
        run_probe(str(clip), slow)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root and setpriv to drop the file-permission override")
def test_unreadable_file_fails_with_permission_denied(tmp_path: Path) -> None:
    locked = tmp_path / "locked.mp4"
    locked.write_bytes(b"\x00" * 64)
    locked.chmod(0)
    code = (
        "from pathlib import Path\n"
        "from rayflow.stages.fingerprint import FingerprintError, fingerprint\n"
        "try:\n"
        f"    fingerprint(Path({str(locked)!r}))\n"
        "except FingerprintError as exc:\n"
        "    print(exc)\n"
    )
    # Root reads any file through CAP_DAC_OVERRIDE; drop it so permissions apply as for a user.
    argv = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", sys.executable, "-c", code]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert proc.stdout.strip().startswith("permission denied"), proc.stderr[-500:]


SIGKILL_SHIM = """#!/bin/sh
for arg in "$@"; do
  case "$arg" in pipe:1) kill -KILL $$ ;; esac
done
exec {real} "$@"
"""


def test_an_ffmpeg_killed_from_outside_mid_proxy_is_transient_not_a_failed_encode(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue #18: SIGKILL of the encoder (the OOM killer, an operator) is retried by Prefect,
    never recorded as "proxy encode failed"; a crash on the input (SIGSEGV) still is a failure."""
    from rayflow.engine.tasks import killed_from_outside, proxy_file
    from rayflow.media.tools import ToolError, ToolKilled
    from rayflow.stages.proxy import ProxySource

    clip = make_corpus(tmp_path / "src", ["h264_aac.mp4"])["h264_aac.mp4"]
    settings = load_settings(env={}, home=tmp_path / "home")
    probed = run_probe(str(clip), settings).result
    assert probed is not None and probed.video is not None
    source = ProxySource.from_record(probed.video, probed.audio_tracks, duration_s=probed.container.duration_s)
    shims = tmp_path / "bin"
    shims.mkdir()
    real = shutil.which("ffmpeg")
    (shims / "ffmpeg").write_text(SIGKILL_SHIM.format(real=real))  # the encode (-progress pipe:1) is killed
    (shims / "ffmpeg").chmod(0o755)
    monkeypatch.setenv("PATH", f"{shims}:{os.environ['PATH']}")
    with pytest.raises(TransientError, match="SIGKILL"):
        proxy_file.fn(str(clip), "c" * 32, source, settings, 1, None)
    assert killed_from_outside(ToolKilled("ffmpeg", clip, "killed by SIGTERM"))
    assert not killed_from_outside(ToolError("ffmpeg", clip, "proxy encode failed: libx264: crashed (signal 11 "
                                                            "SIGSEGV): invalid data"))
