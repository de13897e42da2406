"""The thin ffprobe / mediainfo / exiftool wrappers: argv, parsing, error messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from rayflow.media.exiftool import exiftool_argv, run_exiftool
from rayflow.media.ffprobe import ffprobe_argv, run_ffprobe
from rayflow.media.mediainfo import mediainfo_argv, run_mediainfo
from rayflow.media.tools import ToolError
from tests.media import make_corpus

NAMES = ["h264_aac.mp4", "-leading-dash.mp4", "text.mp4", "truncated.mp4", "hdr10.mp4"]


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_corpus(tmp_path_factory.mktemp("wrappers"), NAMES)


def test_argv_keep_user_paths_literal(tmp_path: Path) -> None:
    dashed = Path("-rf.mp4")
    ff = ffprobe_argv(dashed)
    assert ff[-1] == "file:" + str(dashed.absolute())  # ffprobe has no "--"
    for argv in (mediainfo_argv(dashed), exiftool_argv(dashed, embedded=False)):
        assert argv[-2:] == ["--", str(dashed.absolute())]
    assert "-ee" in exiftool_argv(dashed, embedded=True)
    assert "-ee" not in exiftool_argv(dashed, embedded=False)


def test_ffprobe_reads_structure_packets_and_version(assets: dict[str, Path]) -> None:
    out = run_ffprobe(assets["h264_aac.mp4"], timeout_s=30)
    assert [s["codec_type"] for s in out.streams] == ["video", "audio"]
    assert out.format["format_name"].startswith("mov,mp4")
    assert out.version and out.version[0].isdigit()
    video_keys = [p for p in out.packets if p["stream_index"] == 0 and "K" in p["flags"]]
    assert len(video_keys) >= 2  # GOP 10 over 25 frames
    limited = run_ffprobe(assets["h264_aac.mp4"], timeout_s=30, packet_window=5)
    assert 0 < len(limited.packets) <= 5


def test_ffprobe_relative_dash_name(assets: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(assets["-leading-dash.mp4"].parent)
    out = run_ffprobe(Path("-leading-dash.mp4"), timeout_s=30)
    assert out.streams[0]["codec_name"] == "h264"


@pytest.mark.parametrize(("name", "phrase"), [
    ("text.mp4", "not a media file: it is text"),
    ("truncated.mp4", "moov atom not found"),
])
def test_ffprobe_failures_are_specific(assets: dict[str, Path], name: str, phrase: str) -> None:
    with pytest.raises(ToolError) as info:
        run_ffprobe(assets[name], timeout_s=30)
    message = str(info.value)
    assert message.startswith(f"ffprobe on {str(assets[name])!r}: ")
    assert phrase in message
    assert "file:/" not in message  # the URL prefix is stripped from ffprobe's last line


def test_ffprobe_empty_and_directory(tmp_path: Path) -> None:
    empty = tmp_path / "e.mp4"
    empty.write_bytes(b"")
    with pytest.raises(ToolError, match=r"empty file \(0 bytes\)"):
        run_ffprobe(empty, timeout_s=30)
    folder = tmp_path / "d.mov"
    folder.mkdir()
    with pytest.raises(ToolError, match="is a directory"):
        run_ffprobe(folder, timeout_s=30)


def test_mediainfo_parses_tracks_and_hdr_sei(assets: dict[str, Path]) -> None:
    out = run_mediainfo(assets["hdr10.mp4"], timeout_s=30)
    assert out.version
    assert len(out.video) == 1 and not out.audio
    assert "SMPTE ST 2086" in out.video[0]["HDR_Format"]
    assert out.video[0]["MaxCLL"].startswith("1000")
    assert out.is_truncated is False


def test_mediainfo_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="could not open"):
        run_mediainfo(tmp_path / "missing.mp4", timeout_s=30)


def test_exiftool_main_and_embedded_documents(shared_media: Path) -> None:
    gopro = shared_media / "max-heromode.mp4"
    plain = run_exiftool(gopro, timeout_s=60, embedded=False)
    assert plain.main["GoPro:Model"] == "GoPro Max"
    assert plain.embedded == {}
    assert plain.version and plain.version.count(".") == 1
    deep = run_exiftool(gopro, timeout_s=60, embedded=True)
    first = deep.embedded[1]
    lat = next(v for k, v in first.items() if k.endswith(":GPSLatitude"))
    assert lat == pytest.approx(33.1268, abs=0.001)
    assert len(deep.embedded) >= 10  # one GPMF sample per second of a 10.5 s clip


def test_exiftool_errors(tmp_path: Path) -> None:
    empty = tmp_path / "e.mp4"
    empty.write_bytes(b"")
    with pytest.raises(ToolError, match="File is empty"):
        run_exiftool(empty, timeout_s=30)
    with pytest.raises(ToolError, match="exiftool on"):
        run_exiftool(tmp_path / "missing.mp4", timeout_s=30)
