"""Verified offload of a card-like tree of real clips (../shared/media), its ASC MHL, ``--verify``."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rayflow.cli.main import app
from rayflow.handoff import mhl
from rayflow.handoff import offload as off
from rayflow.handoff.verify import verify_root
from tests.conftest import SHARED_MEDIA as MEDIA

pytestmark = pytest.mark.skipif(not MEDIA.is_dir(), reason="../shared/media is not present")
ASCMHL_DEBUG = (os.environ.get("RAYFLOW_ASCMHL_DEBUG") or shutil.which("ascmhl-debug")
                or "/tmp/ascmhl-venv/bin/ascmhl-debug")
"""ascmhl's verifier, installed apart from rayflow's venv (its wheel pins Click 8.1): see README."""


def make_card(root: Path) -> Path:
    """A camera-card-like tree: two real clips in nested folders and a small XML sidecar."""
    card = root / "A001_CARD"
    (card / "DCIM" / "100GOPRO").mkdir(parents=True)
    shutil.copyfile(MEDIA / "max-heromode.mp4", card / "DCIM" / "100GOPRO" / "GX010001.MP4")
    shutil.copyfile(MEDIA / "bigbuckbunny.mp4", card / "DCIM" / "B002.mp4")
    (card / "CLIPINF.xml").write_text("<clip reel='A001'/>\n")
    return card


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and mhl.FOLDER not in p.relative_to(root).parts}


def test_offload_two_destinations_copies_verifies_and_writes_mhl(tmp_path: Path) -> None:
    card = make_card(tmp_path)
    report = off.offload(card, [tmp_path / "d1", tmp_path / "d2"])
    assert not report.failed
    assert {f.status for f in report.files} == {"copied"} and len(report.files) == 6
    for root in report.roots:
        assert root.parent.name in ("d1", "d2") and root.name == card.name
        assert _tree(root) == _tree(card)  # structure and bytes
        assert not list(root.rglob(f"*{off.PART_SUFFIX}"))
        hashes = mhl.latest_hashes(root)
        assert sorted(hashes) == sorted(_tree(card))
        assert hashes["DCIM/B002.mp4"].digest == off.hash_file(card / "DCIM" / "B002.mp4", "xxh128")
        assert verify_root(root).passed
    again = off.offload(card, [tmp_path / "d1"])  # second run: nothing copied, all re-verified
    assert {f.status for f in again.files} == {"present"}
    assert {e.action for e in mhl.latest_hashes(again.roots[0]).values()} == {"verified"}
    assert [n for n, _ in mhl.read_chain(again.roots[0])] == [1, 2]


@pytest.mark.skipif(not Path(ASCMHL_DEBUG).is_file() and not shutil.which(ASCMHL_DEBUG),
                    reason="ascmhl-debug not installed (pip install ascmhl in its own venv; see README)")
def test_ascmhl_reference_tool_verifies_our_history_and_catches_a_change(tmp_path: Path) -> None:
    card = make_card(tmp_path)
    root = off.offload(card, [tmp_path / "d1"]).roots[0]
    ok = subprocess.run([ASCMHL_DEBUG, "verify", str(root)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    with (root / "DCIM" / "B002.mp4").open("r+b") as fh:
        fh.seek(4096)
        fh.write(b"\xff")
    bad = subprocess.run([ASCMHL_DEBUG, "verify", str(root)], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "B002.mp4" in bad.stdout + bad.stderr


def test_verify_cli_names_changed_and_missing_files(tmp_path: Path) -> None:
    card = make_card(tmp_path)
    root = off.offload(card, [tmp_path / "d1"]).roots[0]
    runner = CliRunner()
    clean = runner.invoke(app, ["offload", "--verify", str(tmp_path / "d1")])
    assert clean.exit_code == 0, clean.output
    bad_hash = runner.invoke(app, ["offload", str(card), str(tmp_path / "d2"), "--hash", "md5", "--no-ingest"])
    assert bad_hash.exit_code == 2 and not (tmp_path / "d2").exists(), bad_hash.output
    with (root / "DCIM" / "100GOPRO" / "GX010001.MP4").open("r+b") as fh:  # one flipped byte mid-file
        fh.seek(1_000_000)
        byte = fh.read(1)
        fh.seek(1_000_000)
        fh.write(bytes([byte[0] ^ 0x01]))
    (root / "CLIPINF.xml").unlink()
    result = runner.invoke(app, ["offload", "--verify", str(root), "--json"])
    assert result.exit_code == 1
    [rep] = json.loads(result.stdout)
    assert rep["changed"] == ["DCIM/100GOPRO/GX010001.MP4"]
    assert rep["missing"] == ["CLIPINF.xml"]
    assert rep["ok"] == 1 and rep["passed"] is False


def test_resume_after_kill_and_never_overwrite_a_differing_file(tmp_path: Path) -> None:
    card = make_card(tmp_path)
    root = tmp_path / "d1" / card.name
    # What a kill mid-copy leaves: one finished file, one half-written part, nothing else.
    (root / "DCIM" / "100GOPRO").mkdir(parents=True)
    shutil.copyfile(card / "CLIPINF.xml", root / "CLIPINF.xml")
    part = off.part_path(root / "DCIM" / "100GOPRO" / "GX010001.MP4")
    part.write_bytes((card / "DCIM" / "100GOPRO" / "GX010001.MP4").read_bytes()[:100_000])
    (root / "DCIM" / "B002.mp4").write_bytes(b"someone else's file")  # differs: must survive
    report = off.offload(card, [tmp_path / "d1"])
    status = {f.rel: f.status for f in report.files}
    assert status == {"CLIPINF.xml": "present", "DCIM/100GOPRO/GX010001.MP4": "copied", "DCIM/B002.mp4": "failed"}
    assert "not overwritten" in (report.failed[0].error or "")
    assert (root / "DCIM" / "B002.mp4").read_bytes() == b"someone else's file"
    assert not part.exists()
    assert (root / "DCIM/100GOPRO/GX010001.MP4").read_bytes() == (card / "DCIM/100GOPRO/GX010001.MP4").read_bytes()
    assert "DCIM/B002.mp4" not in mhl.latest_hashes(root)
    cli = CliRunner().invoke(app, ["offload", str(card), str(tmp_path / "d1"), "--no-ingest"])
    assert cli.exit_code == 1 and "not overwritten" in cli.output


def test_full_or_read_only_destination_is_an_environment_error(tmp_path: Path, monkeypatch) -> None:
    card = make_card(tmp_path)
    ro = tmp_path / "ro"
    ro.mkdir()
    monkeypatch.setattr(off.Path, "write_bytes", _raise(errno.EROFS))  # a read-only mount, even for root
    with pytest.raises(off.OffloadEnvError, match="read-only"):
        off.offload(card, [ro])
    monkeypatch.undo()
    monkeypatch.setattr(off.shutil, "disk_usage", lambda _p: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    result = CliRunner().invoke(app, ["offload", str(card), str(tmp_path / "small"), "--no-ingest"])
    assert result.exit_code == 3 and "too small" in result.output


def test_disk_full_mid_copy_fails_that_file_and_leaves_no_part(tmp_path: Path, monkeypatch) -> None:
    card = make_card(tmp_path)
    monkeypatch.setattr(off.os, "fsync", _raise(errno.ENOSPC))  # delayed allocation reports ENOSPC here
    report = off.offload(card, [tmp_path / "d1"])
    assert report.failed and all("destination full" in (f.error or "") for f in report.failed)
    assert len(report.failed) == 3  # the first failed, the rest skipped for that destination
    root = report.roots[0]
    assert not [p for p in root.rglob("*") if p.is_file() and mhl.FOLDER not in p.parts]
    assert not report.manifests


def _raise(code: int):  # type: ignore[no-untyped-def]
    def fail(*_a: object, **_k: object) -> None:
        raise OSError(code, os.strerror(code))
    return fail


def test_offload_hands_the_first_copy_to_the_cli_ingest_command(tmp_path: Path, monkeypatch) -> None:
    """The wiring only (a real offload + ingest run took 68 s here; too slow for the suite)."""
    import typer

    from rayflow.cli import main as cli_main
    card = tmp_path / "CARD"
    card.mkdir()
    shutil.copyfile(MEDIA / "big_buck_bunny_432_433.webm", card / "C0001.webm")
    calls = []

    def fake_ingest(**kwargs: object) -> None:
        calls.append(kwargs)
        sys.stdout.write(json.dumps({"files": [{"path": str(kwargs["paths"][0]), "status": "ingested"}]}))
        raise typer.Exit(0)
    monkeypatch.setattr(cli_main, "ingest", fake_ingest)
    result = CliRunner().invoke(app, ["offload", str(card), str(tmp_path / "d1"), str(tmp_path / "d2"),
                                      "--only", "probe", "--json"])
    assert result.exit_code == 0, result.output
    assert calls == [{"paths": [tmp_path / "d1" / "CARD"], "home": None, "only": ["probe"], "as_json": True}]
    assert json.loads(result.stdout)["ingest"]["files"][0]["status"] == "ingested"


def test_a_read_back_that_differs_from_the_card_fails_the_file_and_leaves_nothing(tmp_path: Path,
                                                                                  monkeypatch) -> None:
    """The verifier really re-reads the copy: a drive returning one wrong byte is caught."""
    from rayflow.handoff import copier
    card = make_card(tmp_path)
    real_preadv = os.preadv
    dropped: list[int] = []

    def bad_drive(fd: int, buffers: list[memoryview], offset: int) -> int:
        n = real_preadv(fd, buffers, offset)
        if offset == 0 and n:
            buffers[0][n // 2] ^= 0x01  # one flipped bit in the first block of each file
        return n
    real_drop = copier.drop_cache
    monkeypatch.setattr(copier, "drop_cache", lambda fd, *a: (dropped.append(fd), real_drop(fd, *a))[1])
    monkeypatch.setattr(copier.os, "preadv", bad_drive)
    report = off.offload(card, [tmp_path / "d1", tmp_path / "d2"])
    assert len(report.failed) == 6 and all("read-back of" in (f.error or "") for f in report.failed)
    assert len(dropped) >= 6  # every part was dropped from the page cache before its read-back
    for root in report.roots:
        assert not [p for p in root.rglob("*") if p.is_file() and mhl.FOLDER not in p.parts]


def test_big_files_are_read_back_segment_by_segment_and_a_bad_later_segment_is_caught(tmp_path: Path,
                                                                                      monkeypatch) -> None:
    """Segments of 256 KiB (the 3.7 MB clip is 15 of them) with a 512 KiB window: the card read waits
    for the verifier, copies stay exact; a wrong byte deep in the file fails it."""
    from rayflow.handoff import copier
    card = make_card(tmp_path)
    small = {"chunk_bytes": 64 * 1024, "segment_bytes": 256 * 1024, "window_bytes": 512 * 1024}
    report = off.offload(card, [tmp_path / "d1", tmp_path / "d2"], **small)
    assert not report.failed and {f.status for f in report.files} == {"copied"}
    for root in report.roots:
        assert _tree(root) == _tree(card) and verify_root(root).passed
    real_preadv = os.preadv

    def bad_drive(fd: int, buffers: list[memoryview], offset: int) -> int:
        n = real_preadv(fd, buffers, offset)
        if offset <= 3_000_000 < offset + n:
            buffers[0][3_000_000 - offset] ^= 0x80
        return n
    monkeypatch.setattr(copier.os, "preadv", bad_drive)
    again = off.offload(card, [tmp_path / "d3"], **small)
    assert [f.rel for f in again.failed] == ["DCIM/100GOPRO/GX010001.MP4"]  # the only file past 3 MB
    assert not (again.roots[0] / "DCIM/100GOPRO/GX010001.MP4").exists()
