from __future__ import annotations

import os
from pathlib import Path

from rayflow.config import DEFAULT_VIDEO_EXTENSIONS
from rayflow.stages.discover import discover


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_walks_recursively_in_stable_order_and_skips_hidden(tmp_path: Path) -> None:
    b = _touch(tmp_path / "b" / "clip.MOV")
    a = _touch(tmp_path / "a.mp4")
    _touch(tmp_path / ".hidden.mp4")
    _touch(tmp_path / ".cache" / "inside.mp4")
    _touch(tmp_path / "Thumbs.db")
    _touch(tmp_path / "notes.txt")
    found = discover([tmp_path], extensions=DEFAULT_VIDEO_EXTENSIONS)
    assert found.files == [a, b]
    assert found.skipped >= 4


def test_symlink_loop_is_walked_once(tmp_path: Path) -> None:
    clip = _touch(tmp_path / "root" / "x.mp4")
    os.symlink(tmp_path / "root", tmp_path / "root" / "loop")
    found = discover([tmp_path / "root"], extensions=(".mp4",))
    assert found.files == [clip]


def test_explicit_file_is_taken_whatever_its_extension_and_missing_is_reported(tmp_path: Path) -> None:
    odd = _touch(tmp_path / "clip.weird")
    found = discover([odd, tmp_path / "nope.mp4"], extensions=(".mp4",))
    assert found.files == [odd]
    assert found.missing == [tmp_path / "nope.mp4"]


def test_directory_named_like_a_video_is_walked_not_taken(tmp_path: Path) -> None:
    inner = _touch(tmp_path / "x.mov" / "real.mp4")
    found = discover([tmp_path], extensions=(".mp4", ".mov"))
    assert found.files == [inner]


def test_broken_symlink_is_kept_so_it_gets_reported_and_limit_applies(tmp_path: Path) -> None:
    os.symlink(tmp_path / "gone.mp4", tmp_path / "a_link.mp4")
    _touch(tmp_path / "b.mp4")
    _touch(tmp_path / "c.mp4")
    found = discover([tmp_path], extensions=(".mp4",), limit=2)
    assert [p.name for p in found.files] == ["a_link.mp4", "b.mp4"]


def test_audio_and_stills_are_taken_and_every_other_file_is_passed_over_with_a_reason(tmp_path: Path) -> None:
    from rayflow.config import DEFAULT_MEDIA_EXTENSIONS

    taken = [_touch(tmp_path / n) for n in ("a.mp4", "b.WAV", "c.flac", "d.JPG", "e.heic", "f.dng")]
    _touch(tmp_path / "C0001M01.XML")
    _touch(tmp_path / "GOPR0001.THM")
    _touch(tmp_path / "DJI_0001.LRF")
    _touch(tmp_path / "mystery.xyz")
    _touch(tmp_path / "README")
    _touch(tmp_path / ".DS_Store")
    found = discover([tmp_path], extensions=DEFAULT_MEDIA_EXTENSIONS)
    assert found.files == sorted(taken)
    reasons = {p.name: r for p, r in found.passed_over}
    assert set(reasons) == {"C0001M01.XML", "GOPR0001.THM", "DJI_0001.LRF", "mystery.xyz", "README"}
    assert reasons["C0001M01.XML"].startswith("sidecar (camera metadata, .xml)")
    assert reasons["DJI_0001.LRF"].startswith("sidecar (low-resolution preview")
    assert reasons["mystery.xyz"].startswith("unknown type .xyz")
    assert reasons["README"].startswith("no file extension")
    assert found.hidden == 1 and found.skipped == 6


def test_with_a_limit_only_the_passed_over_files_among_those_taken_are_reported(tmp_path: Path) -> None:
    for name in ("a.mp4", "b.txt", "c.mp4", "d.xyz", "e.mp4"):
        _touch(tmp_path / name)
    found = discover([tmp_path], extensions=(".mp4",), limit=2)
    assert [p.name for p in found.files] == ["a.mp4", "c.mp4"]
    assert [p.name for p, _ in found.passed_over] == ["b.txt"]


def test_editor_proxies_beside_their_source_are_listed_not_catalogued(tmp_path: Path) -> None:
    (tmp_path / "Proxy").mkdir()
    for name in ("A001.mov", "Proxy/A001.mov", "Proxy/B002.mov"):
        (tmp_path / name).write_bytes(b"x")
    found = discover([tmp_path], extensions=(".mov",))
    # B002's source is not here: it is footage in its own right and catalogued.
    assert [p.relative_to(tmp_path).as_posix() for p in found.files] == ["A001.mov", "Proxy/B002.mov"]
    assert [(p.name, r.split(" (")[0]) for p, r in found.passed_over] == [("A001.mov", "editor proxy of A001.mov")]
