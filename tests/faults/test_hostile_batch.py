"""One real CLI run over a hostile batch: every file is ingested or gets a specific error,
native crashes and hangs cost only their own file, and metadata never reaches the terminal
as markup.

Faults injected for real:

* a decord crash: ``RAYFLOW_FAULT_DECODER_CRASH`` makes the isolated decord process of
  ``crash_decord.mp4`` kill itself with SIGSEGV (the hook lives in
  ``rayflow.media.decode``; a stand-in for a decoder segfault on a hostile file);
* an ffmpeg crash: an ``ffmpeg`` first on PATH that dies of SIGSEGV (``kill -SEGV $$``) for
  ``crash_all.mp4`` and runs the real ffmpeg for everything else;
* a hang: an ``ffprobe`` first on PATH that sleeps for ``hang.mp4`` (probe timeout 3 s);
* the hostile corpus of ``tests/hostile.py`` and a clip 60 folders down.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rayflow.record import RunSummary
from tests.faults.conftest import FAST, cli_env, run_cli, verified_home
from tests.hostile import EXPECT, MARKUP_TITLE, clip, make_deep_tree, make_hostile

pytestmark = pytest.mark.slow

SHIM = """#!/bin/sh
for arg in "$@"; do
  case "$arg" in *{marker}*) {action} ;; esac
done
exec {real} "$@"
"""


def _shim(folder: Path, tool: str, marker: str, action: str) -> None:
    real = shutil.which(tool)
    assert real is not None
    path = folder / tool
    path.write_text(SHIM.format(marker=marker, action=action, real=real))
    path.chmod(0o755)


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("hostile")
    footage = root / "footage"
    make_hostile(footage)
    clip(footage / "good.mp4", hue=5)
    clip(footage / "crash_decord.mp4", hue=15)
    clip(footage / "crash_all.mp4", hue=25)
    clip(footage / "hang.mp4", hue=35)
    bottom = make_deep_tree(footage / "deep", depth=60)
    shutil.copy2(footage / "good.mp4", bottom / "deep_copy_renamed.mp4")
    clip(bottom / "deep_unique.mp4", hue=45)
    shims = root / "bin"
    shims.mkdir()
    _shim(shims, "ffmpeg", "crash_all", "kill -SEGV $$")
    _shim(shims, "ffprobe", "hang.mp4", "sleep 600")
    home = root / "home"
    home.mkdir()
    (home / "config.toml").write_text("[timeouts]\nprobe_s = 3.0\n")
    env = cli_env(PATH=f"{shims}:{cli_env()['PATH']}", RAYFLOW_FAULT_DECODER_CRASH="crash_")
    proc = run_cli(["ingest", str(footage), "--home", str(home), *FAST, "--retries", "1", "--json"], env=env)
    assert proc.returncode == 1 and proc.stdout.startswith("{"), proc.stderr[-3000:]  # files failed, run finished
    return home, RunSummary.model_validate(json.loads(proc.stdout)), proc


def _by_name(summary: RunSummary) -> dict[str, object]:
    return {Path(f.path).name: f for f in summary.files}


def test_every_hostile_file_is_ingested_or_gets_a_specific_error(hostile_run) -> None:  # type: ignore[no-untyped-def]
    _, summary, _ = hostile_run
    files = _by_name(summary)
    for name, (status, error) in EXPECT.items():
        res = files[name]
        assert res.status == status, (name, res.errors)
        if error is not None:
            stage, phrase = error
            assert phrase in res.errors.get(stage, ""), (name, res.errors)
    assert files["deep_unique.mp4"].status == "ingested", files["deep_unique.mp4"]
    # The same content 60 folders down and at the top: the first in path order is processed.
    assert files["deep_copy_renamed.mp4"].status == "ingested"
    assert files["good.mp4"].status == "duplicate"


def test_a_decoder_crash_fails_only_its_file_and_says_so(hostile_run) -> None:  # type: ignore[no-untyped-def]
    _, summary, _ = hostile_run
    files = _by_name(summary)
    # decord crashed, ffmpeg decoded instead: ingested, and the record says what happened.
    soft = files["crash_decord.mp4"]
    assert soft.status == "ingested"
    assert "decord crashed (signal 11 SIGSEGV)" in soft.errors["decoder"]
    # Both decoders crashed: that file fails with both signals named; the batch went on.
    hard = files["crash_all.mp4"]
    assert hard.status == "failed"
    assert "decord crashed (signal 11 SIGSEGV)" in hard.errors["sample"]
    assert "ffmpeg: crashed (signal 11 SIGSEGV)" in hard.errors["sample"]


def test_a_hung_tool_is_timed_out_and_the_run_goes_on(hostile_run) -> None:  # type: ignore[no-untyped-def]
    _, summary, _ = hostile_run
    hang = _by_name(summary)["hang.mp4"]
    assert hang.status == "failed"
    assert "timed out after 3 s" in json.dumps(hang.errors)
    assert summary.counts["ingested"] >= 8


def test_the_home_is_consistent_after_the_hostile_batch(hostile_run) -> None:  # type: ignore[no-untyped-def]
    home, summary, _ = hostile_run
    report = verified_home(home)
    assert report.points == len([f for f in summary.files if f.clip_id and f.status in ("ingested", "failed")
                                 and "fingerprint" not in f.errors])
    # Output paths come from clip ids only: nothing named after a file escapes clips/<id>/.
    clips = home / "output" / "clips"
    for path in (home / "output").rglob("*"):
        if path.is_file():
            assert path.parent == home / "output" / "records" or path.parent.parent == clips, path


def test_metadata_and_names_are_shown_literally_never_as_markup(hostile_run) -> None:  # type: ignore[no-untyped-def]
    home, summary, _ = hostile_run
    spoof = _by_name(summary)["[bold red]spoof.mp4"]
    env = cli_env(COLUMNS="400")
    listing = run_cli(["list", "--home", str(home), "--limit", "100"], env=env, timeout=300)
    shown = run_cli(["show", str(spoof.clip_id), "--home", str(home)], env=env, timeout=300)
    found = run_cli(["search", "spoof", "--mode", "keyword", "--home", str(home)], env=env, timeout=300)
    for proc in (listing, shown, found):
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "[bold red]spoof" in proc.stdout  # the file name, literally
        assert "\x1b" not in proc.stdout  # no raw escape sequence reaches the terminal
    # The container title, with markup and an escape byte, is printed as text.
    title = MARKUP_TITLE.replace("\x1b", "\\x1b")
    assert title in shown.stdout.replace("\n", ""), shown.stdout
    assert "ctl\\x01\\x1b[31mred.mp4" in listing.stdout.replace("\n", "")
