"""Discovery at hostile scale (discovery only: a full ingest of 10k files is the soak
benchmark's job): 10,000 tiny files, folders nested 1,500 deep, names with control bytes.
A full ingest of the hostile corpus (incl. a clip 60 folders down) is in test_hostile_batch."""

from __future__ import annotations

from pathlib import Path

from rayflow.config import DEFAULT_VIDEO_EXTENSIONS
from rayflow.stages.discover import discover
from rayflow.stages.fingerprint import FingerprintError, fingerprint
from tests.hostile import make_deep_tree, make_tiny_tree


def test_ten_thousand_tiny_files_are_all_found_in_order(tmp_path: Path) -> None:
    made = make_tiny_tree(tmp_path / "tiny", 10_000)
    found = discover([tmp_path / "tiny"], extensions=DEFAULT_VIDEO_EXTENSIONS)
    assert found.files == sorted(made)
    assert len(found.files) == 10_000 and found.missing == []
    # Each gets a content id (tiny but distinct): no collisions, no crash.
    ids = {fingerprint(p).clip_id for p in found.files[:500]}
    assert len(ids) == 500


def test_folders_nested_1500_deep_do_not_break_discovery(tmp_path: Path) -> None:
    leaf = tmp_path / "leaf.mp4"
    leaf.write_bytes(b"\x00" * 32)
    bottom = make_deep_tree(tmp_path / "deep", depth=1500, leaf=leaf)
    try:
        found = discover([tmp_path / "deep"], extensions=DEFAULT_VIDEO_EXTENSIONS)
        assert found.files == [bottom]
        assert len(str(bottom)) > 3000
    finally:
        # shutil.rmtree (and so pytest's tmp cleanup) recurses per level: remove it bottom-up here.
        bottom.unlink()
        folder = bottom.parent
        while folder != tmp_path:
            folder.rmdir()
            folder = folder.parent


def test_names_with_control_bytes_and_dashes_are_found_and_hashed(tmp_path: Path) -> None:
    names = ["ctl\x01\x1b[31m.mp4", "-i.mp4", "--help.mov", "new\nline.mkv", "\udcff-bad-utf8.mp4"]
    for i, name in enumerate(names):
        (tmp_path / name).write_bytes(bytes([i]) * 64)
    (tmp_path / "empty.mp4").write_bytes(b"")
    found = discover([tmp_path], extensions=DEFAULT_VIDEO_EXTENSIONS)
    assert sorted(p.name for p in found.files) == sorted([*names, "empty.mp4"])
    for path in found.files:
        if path.name == "empty.mp4":
            try:
                fingerprint(path)
            except FingerprintError as exc:
                assert "empty" in str(exc)
            else:
                raise AssertionError("an empty file must not get a clip id")
        else:
            assert fingerprint(path).file.name == path.name
