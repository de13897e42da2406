"""Probe stage: facts of generated fixtures (tests/media.py KNOWN) and of the real
footage in ../shared/media (truth from its MANIFEST.md), bad inputs, precedence rules."""

from __future__ import annotations

import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from rayflow.config import Timeouts
from rayflow.media import tools
from rayflow.media.exiftool import ExiftoolOutput
from rayflow.media.ffprobe import FfprobeOutput
from rayflow.media.mediainfo import MediainfoOutput
from rayflow.media.tools import ToolError, ToolTimeout
from rayflow.stages.probe import (
    ProbeResult,
    consolidate,
    focal_category,
    parse_iso6709,
    probe,
)
from rayflow.stages.probe import run as probe_run
from tests.media import BAD, KNOWN, ODD_NAMES, Between, fact, make_corpus, matches

TZ = timezone


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every generated asset, built once per session (about 3 s on two cores)."""
    return make_corpus(tmp_path_factory.mktemp("media"))


_PROBED: dict[Path, ProbeResult] = {}


def _probe_cached(path: Path) -> ProbeResult:
    if path not in _PROBED:
        _PROBED[path] = probe(path, timeouts=Timeouts())
    return _PROBED[path]


def _mismatches(result: ProbeResult, known: dict[str, Any]) -> list[str]:
    return [
        f"{key}: got {fact(result, key)!r}, expected {expected!r}"
        for key, expected in known.items()
        if not matches(fact(result, key), expected)
    ]


# --------------------------------------------------------------------------- generated fixtures


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_generated_fixture_facts(corpus: dict[str, Path], name: str) -> None:
    result = _probe_cached(corpus[name])
    problems = _mismatches(result, KNOWN[name])
    assert not problems, f"{name!r}:\n  " + "\n  ".join(problems)
    assert result.tools.keys() == {"ffprobe", "mediainfo", "exiftool"}
    assert result.warnings == []


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_inputs_give_specific_errors(corpus: dict[str, Path], name: str) -> None:
    path = corpus[name]
    with pytest.raises(ToolError) as info:
        probe(path, timeouts=Timeouts())
    message = str(info.value)
    assert BAD[name] in message
    assert repr(str(path)) in message, "the error must name the file"
    assert not isinstance(info.value, ToolTimeout), "bad input is deterministic, not transient"


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="file not found"):
        probe(tmp_path / "nope.mp4", timeouts=Timeouts())


def test_odd_names_are_passed_literally(corpus: dict[str, Path]) -> None:
    # The leading-dash name must not be read as an option, the newline must survive.
    for name in ODD_NAMES:
        result = _probe_cached(corpus[name])
        assert result.video is not None and result.video.width == 160, name
        assert result.container.duration_s == pytest.approx(0.5, abs=0.05), name


def test_each_tool_runs_exactly_once(corpus: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real_run = subprocess.run

    def counting_run(argv: list[str], *args: Any, **kwargs: Any) -> Any:
        tool = argv[argv.index("--") + 1] if Path(argv[0]).name == "setpriv" else argv[0]  # dies_with_parent
        calls.append(Path(tool).name)
        return real_run(argv, *args, **kwargs)

    monkeypatch.setattr(tools.subprocess, "run", counting_run)
    probe(corpus["subs.mp4"], timeouts=Timeouts())  # has a subtitle track: exiftool gets -ee
    assert sorted(calls) == ["exiftool", "ffprobe", "mediainfo"]


def test_timeout_is_transient(corpus: dict[str, Path]) -> None:
    with pytest.raises(ToolTimeout):
        probe(corpus["h264_aac.mp4"], timeouts=Timeouts(probe_s=0.0005))


def test_secondary_tool_failure_is_a_warning(
    corpus: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(path: Path, **_: Any) -> ExiftoolOutput:
        raise ToolError("exiftool", path, "boom")

    monkeypatch.setattr(probe_run, "run_exiftool", broken)
    result = probe(corpus["camera.mov"], timeouts=Timeouts())
    assert any("exiftool" in w and "boom" in w for w in result.warnings)
    assert result.video is not None and result.video.codec == "h264"
    # Camera facts fall back to ffprobe's Apple keys when exiftool is gone.
    assert result.camera.make == "Canon"
    assert result.capture.gps is not None and result.capture.gps.lat == pytest.approx(48.8584)
    assert result.camera.iso is None  # XMP exposure tags only come from exiftool


def test_record_fields_fit_clip_record(corpus: dict[str, Path]) -> None:
    from rayflow.record import ClipRecord, FileInfo

    result = _probe_cached(corpus["h264_aac.mp4"])
    file = FileInfo(path="/x", name="x", size_bytes=1, checksum="0")
    record = ClipRecord(clip_id="c", file=file, **result.record_fields())
    assert record.video is not None and record.video.gop_size == 10
    ClipRecord.model_validate_json(record.model_dump_json())


# --------------------------------------------------------------------------- real footage

_MP4 = "mov,mp4,m4a,3gp,3g2,mj2"
_NO_HDR = {"video.hdr.is_hdr": False, "video.hdr.format": None}

# From ../shared/media/MANIFEST.md (ffprobe 5.1.9 / exiftool 12.57 facts), plus the
# consequences the probe must draw from them (rotation display size, placeholders).
SHARED_KNOWN: dict[str, dict[str, Any]] = {
    "100_0306.AVI": {
        "kind": "video", "container.format": "avi", "container.duration_s": 2.733,
        "video.codec": "mjpeg", "video.profile": "Baseline", "video.pix_fmt": "yuvj422p",
        "video.chroma_subsampling": "4:2:2", "video.color.range": "full",
        "video.width": 320, "video.height": 240, "video.fps": 15.0, "video.r_frame_rate": "15/1",
        "video.gop_size": 1, "video.rotation": 0, **_NO_HDR,
        "audio_tracks.len": 1, "audio_tracks.0.index": 1, "audio_tracks.0.codec": "pcm_s16le",
        "audio_tracks.0.channels": 1, "audio_tracks.0.sample_rate": 22050,
        "audio_tracks.0.bit_depth": 16, "audio_tracks.0.language": None,
        "subtitle_tracks.len": 0, "camera.make": None, "camera.model": None,
        "capture.gps": None, "capture.created_at": None,  # RIFF date has no time of day
    },
    "bbb_2500ms.ts": {
        "kind": "video", "container.format": "mpegts", "container.duration_s": 2.513,
        "container.start_time_s": 1.514,
        "video.codec": "mpeg2video", "video.profile": "Main", "video.level": "High",
        "video.pix_fmt": "yuv420p", "video.width": 1920, "video.height": 1080,
        "video.fps": 24.0, "video.scan_type": "progressive", "video.is_vfr": False, **_NO_HDR,
        "audio_tracks.len": 1, "audio_tracks.0.codec": "mp2", "audio_tracks.0.channels": 2,
        "audio_tracks.0.sample_rate": 44100, "camera.make": None, "capture.gps": None,
    },
    "big_buck_bunny_432_433.webm": {
        "kind": "video", "container.format": "matroska,webm", "container.duration_s": 1.0,
        "video.codec": "vp8", "video.profile": "0", "video.pix_fmt": "yuv420p",
        "video.width": 1280, "video.height": 720, "video.fps": 24.0,
        "video.scan_type": "progressive", "video.frame_count": 24, **_NO_HDR,
        "audio_tracks.len": 1, "audio_tracks.0.codec": "vorbis", "audio_tracks.0.channels": 2,
        "audio_tracks.0.sample_rate": 44100, "capture.gps": None,
    },
    "bigbuckbunny.mp4": {
        "kind": "video", "container.format": _MP4, "container.duration_s": 5.312,
        "video.codec": "h264", "video.profile": "Main", "video.pix_fmt": "yuv420p",
        "video.width": 1280, "video.height": 720, "video.fps": 25.0,
        "video.scan_type": "progressive", **_NO_HDR,
        "audio_tracks.len": 1, "audio_tracks.0.codec": "aac", "audio_tracks.0.channels": 6,
        "audio_tracks.0.channel_layout": "5.1", "audio_tracks.0.sample_rate": 48000,
        "capture.created_at": None,  # 1970-01-01 / zero-date placeholder
        "capture.gps": None,
    },
    "hlg10-color-test.mp4": {
        "kind": "video", "container.format": _MP4, "container.duration_s": 0.3001,
        "video.index": 1, "video.codec": "hevc", "video.profile": "Main 10",
        "video.pix_fmt": "yuv420p10le", "video.bit_depth": 10, "video.chroma_subsampling": "4:2:0",
        "video.width": 1920, "video.height": 1080, "video.fps": 29.99,
        "video.r_frame_rate": "90000/3001", "video.is_vfr": False,
        "video.color.transfer": "arib-std-b67", "video.color.primaries": "bt2020",
        "video.hdr.is_hdr": True, "video.hdr.format": "HLG",
        "audio_tracks.len": 1, "audio_tracks.0.index": 0, "audio_tracks.0.codec": "aac",
        "audio_tracks.0.channels": 2, "audio_tracks.0.sample_rate": 48000,
        "audio_tracks.0.language": "eng",
        "capture.gps.lat": 51.5335, "capture.gps.lon": -0.1261,
    },
    "jfk.flac": {
        "kind": "audio", "video": None, "container.format": "flac", "container.duration_s": 11.0,
        "audio_tracks.len": 1, "audio_tracks.0.codec": "flac", "audio_tracks.0.channels": 2,
        "audio_tracks.0.sample_rate": 44100, "capture.gps": None,
    },
    "max-heromode.mp4": {
        "kind": "video", "container.format": _MP4, "container.duration_s": 10.517,
        "container.data_tracks": 3,
        "video.codec": "h264", "video.profile": "Main", "video.pix_fmt": "yuvj420p",
        "video.width": 848, "video.height": 480, "video.fps": 29.97,
        "video.r_frame_rate": "30000/1001", "video.is_vfr": False,
        "video.scan_type": "progressive", "video.color.transfer": "bt709", **_NO_HDR,
        "video.gop_size": 10,  # mediainfo agrees: "M=1, N=10"
        "audio_tracks.len": 1, "audio_tracks.0.codec": "aac", "audio_tracks.0.channels": 2,
        "audio_tracks.0.sample_rate": 48000, "audio_tracks.0.language": "eng",
        "camera.make": "GoPro", "camera.model": "GoPro Max",
        "camera.software": "H19.03.01.30.00",
        "capture.gps.lat": 33.1268, "capture.gps.lon": -117.3273,
        # Altitude is only in the GPMF telemetry (first fix): proves -ee ran.
        "capture.gps.alt": Between(-30.0, -15.0),
        # GoPro writes local time in mvhd; GPMF GPS UTC time fixes the offset (PST).
        "capture.created_at": datetime(2019, 11, 18, 15, 45, 32, tzinfo=TZ(timedelta(hours=-8))),
    },
    "sample_av1.mp4": {
        "kind": "video", "container.format": _MP4, "container.duration_s": 1.089,
        "video.codec": "av1", "video.profile": "Main", "video.pix_fmt": "yuv420p",
        "video.width": 1080, "video.height": 720, "video.fps": 29.97, **_NO_HDR,
        "audio_tracks.len": 1, "audio_tracks.0.codec": "aac", "audio_tracks.0.channels": 1,
        "audio_tracks.0.sample_rate": 44100,
        "capture.gps.lat": 40.68, "capture.gps.lon": -74.5,
        "capture.created_at": None,  # 0000:00:00 zero dates
    },
    "sintel_trailer_10s.mp4": {
        "kind": "video", "container.format": _MP4, "container.duration_s": 10.0,
        "container.title": "Sintel Trailer",
        "video.codec": "h264", "video.profile": "Constrained Baseline", "video.pix_fmt": "yuv420p",
        "video.width": 854, "video.height": 480, "video.fps": 24.0, "video.frame_count": 240,
        "audio_tracks.len": 0, "subtitle_tracks.len": 0, "capture.gps": None,
    },
    "vacation_2017.jpg": {
        "kind": "image", "container.format": "image2", "container.duration_s": None,
        "video.codec": "mjpeg", "video.width": 2560, "video.height": 1440, "video.fps": None,
        "audio_tracks.len": 0,
        "camera.make": "SAMSUNG", "camera.model": "SM-J320P", "camera.iso": 50,
        "camera.aperture_f": 2.2, "camera.focal_length_mm": 3.3,
        # No FocalLengthIn35mmFormat and no sensor size: the 35 mm equivalent is unknown
        # (exiftool's Composite:FocalLength35efl would wrongly echo 3.3 mm).
        "camera.focal_length_35mm": None, "camera.focal_category": None,
        "capture.gps.lat": 26.12157, "capture.gps.lon": -80.16472,
        "capture.created_at": datetime(2017, 3, 16, 15, 56, 41, tzinfo=TZ(timedelta(hours=-4))),
    },
    "with-gps.mov": {
        "kind": "video", "container.format": _MP4, "container.duration_s": 4.002,
        "container.data_tracks": 2,
        "video.index": 1, "video.codec": "h264", "video.profile": "Baseline",
        "video.pix_fmt": "yuv420p", "video.width": 568, "video.height": 320,
        "video.rotation": 90, "video.display_width": 320, "video.display_height": 568,
        "video.fps": 29.988, "video.r_frame_rate": "30000/1001",
        "video.is_vfr": False,  # 119 frames of 1/30 s and one of 21/600 s: near-CFR
        "video.color.transfer": "bt709", **_NO_HDR,
        "audio_tracks.len": 1, "audio_tracks.0.index": 0, "audio_tracks.0.codec": "aac",
        "audio_tracks.0.channels": 1, "audio_tracks.0.sample_rate": 44100,
        "camera.make": "Apple", "camera.model": "iPhone 6", "camera.software": "12.3",
        "capture.gps.lat": 32.0929, "capture.gps.lon": 34.862, "capture.gps.alt": 28.516,
        "capture.created_at": datetime(2019, 7, 24, 11, 25, 40, tzinfo=TZ(timedelta(hours=3))),
        "capture.created_at_source": "Keys:CreationDate",
    },
}


@pytest.mark.parametrize("name", sorted(SHARED_KNOWN))
def test_shared_media_facts(shared_media: Path, name: str) -> None:
    result = _probe_cached(shared_media / name)
    problems = _mismatches(result, SHARED_KNOWN[name])
    assert not problems, f"{name!r}:\n  " + "\n  ".join(problems)


def test_every_shared_file_is_covered(shared_media: Path) -> None:
    files = {p.name for p in shared_media.iterdir() if p.suffix.lower() != ".md"}
    assert files == set(SHARED_KNOWN)


# --------------------------------------------------------------------------- rules, pure


def _ff(streams: list[dict[str, Any]], **fmt: Any) -> FfprobeOutput:
    return FfprobeOutput(format={"format_name": "mov,mp4,m4a,3gp,3g2,mj2", **fmt}, streams=streams)


def test_zero_streams_is_an_error() -> None:
    with pytest.raises(ToolError, match="no streams"):
        consolidate(Path("/x/a.mp4"), _ff([]), None, None)


def test_data_only_file_is_unknown_kind() -> None:
    result = consolidate(Path("/x/a.mp4"), _ff([{"index": 0, "codec_type": "data"}]), None, None)
    assert result.kind == "unknown"
    assert result.video is None and result.container.data_tracks == 1


def test_cover_art_alone_is_not_video() -> None:
    cover = {"index": 0, "codec_type": "video", "codec_name": "mjpeg",
             "disposition": {"attached_pic": 1}}
    assert consolidate(Path("/x/a.m4a"), _ff([cover]), None, None).kind == "unknown"


@pytest.mark.parametrize(("matrix_ccw", "expected_cw", "display"), [
    (-90, 90, (240, 320)), (90, 270, (240, 320)), (180, 180, (320, 240)), (-180, 180, (320, 240)),
    (0, 0, (320, 240)),
])
def test_rotation_sign_and_display_size(matrix_ccw: int, expected_cw: int,
                                        display: tuple[int, int]) -> None:
    stream = {"index": 0, "codec_type": "video", "codec_name": "h264", "width": 320, "height": 240,
              "side_data_list": [{"side_data_type": "Display Matrix", "rotation": matrix_ccw}]}
    video = consolidate(Path("/x/a.mp4"), _ff([stream]), None, None).video
    assert video is not None
    assert video.rotation == expected_cw
    assert (video.display_width, video.display_height) == display


def test_odd_rotation_is_snapped_with_a_warning() -> None:
    stream = {"index": 0, "codec_type": "video", "width": 320, "height": 240,
              "side_data_list": [{"side_data_type": "Display Matrix", "rotation": -45}]}
    result = consolidate(Path("/x/a.mp4"), _ff([stream]), None, None)
    assert result.video is not None and result.video.rotation in (0, 90)
    assert any("not a multiple of 90" in w for w in result.warnings)


def test_anamorphic_display_width_uses_sar() -> None:
    stream = {"index": 0, "codec_type": "video", "width": 720, "height": 576,
              "sample_aspect_ratio": "64:45", "display_aspect_ratio": "16:9"}
    video = consolidate(Path("/x/a.mpg"), _ff([stream]), None, None).video
    assert video is not None
    assert (video.display_width, video.display_height) == (1024, 576)
    assert video.display_aspect_ratio == "16:9"


@pytest.mark.parametrize(("mi_duration", "count", "bitrate"), [
    # The tools' values for a cut-down Avid OP-Atom DNxHR MXF (regxmllib's indirect.mxf): the
    # header says 30 s (750 frames), the essence and index hold one frame of 1,172,756 bytes.
    ("30.000", 1, 234_551_200),
    ("0.040", 750, 312_735),  # agreeing durations: mediainfo's own count and bitrate stand
])
def test_header_counts_follow_the_stream_in_a_cut_file(mi_duration: str, count: int, bitrate: int) -> None:
    stream = {"index": 0, "codec_type": "video", "codec_name": "dnxhd", "width": 3840, "height": 2160,
              "r_frame_rate": "25/1", "avg_frame_rate": "0/0", "duration": "0.040000"}
    mi_video = {"Duration": mi_duration, "FrameCount": "750", "BitRate": "312735", "StreamSize": "1172756"}
    result = consolidate(Path("/x/a.mxf"), _ff([stream], format_name="mxf"),
                         MediainfoOutput(general={}, video=[mi_video]), None)
    assert result.video is not None
    assert (result.video.frame_count, result.video.bitrate_bps) == (count, bitrate)
    assert result.video.duration_s == pytest.approx(0.04)
    assert any("header says 30 s" in w for w in result.warnings) is (count == 1)


def test_mediainfo_fills_hdr_names_and_mastering() -> None:
    stream = {"index": 0, "codec_type": "video", "codec_name": "hevc", "width": 3840,
              "height": 2160, "color_transfer": "smpte2084", "pix_fmt": "yuv420p10le"}
    mi_video = {
        "HDR_Format": "SMPTE ST 2094 App 4 / SMPTE ST 2086",
        "HDR_Format_Compatibility": "HDR10+ Profile B / HDR10",
        "MasteringDisplay_ColorPrimaries": "BT.2020",
        "MasteringDisplay_Luminance": "min: 0.0050 cd/m2, max: 4000 cd/m2",
        "MaxCLL": "3000 cd/m2", "MaxFALL": "500 cd/m2",
    }
    mi = MediainfoOutput(general={}, video=[mi_video])
    hdr = consolidate(Path("/x/a.mp4"), _ff([stream]), mi, None).video.hdr  # type: ignore[union-attr]
    assert hdr.is_hdr and hdr.format == "HDR10+"
    assert hdr.max_cll_nits == 3000 and hdr.max_fall_nits == 500
    assert hdr.mastering_display is not None
    assert hdr.mastering_display.red_xy == (0.708, 0.292)
    assert hdr.mastering_display.max_luminance_nits == 4000.0


def test_dolby_vision_wins_over_pq() -> None:
    stream = {"index": 0, "codec_type": "video", "codec_name": "hevc", "codec_tag_string": "dvh1",
              "color_transfer": "smpte2084",
              "side_data_list": [{"side_data_type": "DOVI configuration record", "dv_profile": 8}]}
    hdr = consolidate(Path("/x/a.mp4"), _ff([stream]), None, None).video.hdr  # type: ignore[union-attr]
    assert (hdr.is_hdr, hdr.format) == (True, "Dolby Vision")


def test_language_und_is_none_and_titles_come_from_tags_only() -> None:
    audio = {"index": 0, "codec_type": "audio", "codec_name": "aac",
             "tags": {"language": "und", "handler_name": "SoundHandler"}}
    mi = MediainfoOutput(general={}, audio=[{"Title": "Core Media Audio", "Language": "en"}])
    track = consolidate(Path("/x/a.mov"), _ff([audio]), mi, None).audio_tracks[0]
    assert track.language is None  # explicit 'und' beats mediainfo
    assert track.title is None  # a QuickTime handler name is not a title


def test_gps_zero_zero_is_no_fix() -> None:
    ex = ExiftoolOutput(main={"Composite:GPSLatitude": 0.0, "Composite:GPSLongitude": 0.0})
    ff = _ff([{"index": 0, "codec_type": "audio"}], tags={"location": "+10.5000+020.2500/"})
    gps = consolidate(Path("/x/a.mp4"), ff, None, ex).capture.gps
    assert gps is not None and (gps.lat, gps.lon) == (10.5, 20.25)


def test_epoch_and_zero_dates_are_unknown() -> None:
    ex = ExiftoolOutput(main={"QuickTime:CreateDate": "0000:00:00 00:00:00"})
    ff = _ff([{"index": 0, "codec_type": "audio"}], tags={"creation_time": "1970-01-01T00:00:00Z"})
    assert consolidate(Path("/x/a.mp4"), ff, None, ex).capture.created_at is None


def test_quicktime_create_date_is_utc_by_spec() -> None:
    ex = ExiftoolOutput(main={"QuickTime:CreateDate": "2024:02:09 20:23:48"})
    capture = consolidate(Path("/x/a.mp4"), _ff([{"index": 0, "codec_type": "audio"}]),
                          None, ex).capture
    assert capture.created_at == datetime(2024, 2, 9, 20, 23, 48, tzinfo=TZ.utc)
    assert capture.created_at_source == "QuickTime:CreateDate"


def test_local_time_stays_naive_without_gps_time() -> None:
    ex = ExiftoolOutput(main={"ExifIFD:DateTimeOriginal": "2020:01:02 03:04:05"})
    capture = consolidate(Path("/x/a.jpg"), _ff([{"index": 0, "codec_type": "audio"}]),
                          None, ex).capture
    assert capture.created_at == datetime(2020, 1, 2, 3, 4, 5)
    assert capture.created_at is not None and capture.created_at.tzinfo is None


def test_stale_gps_time_does_not_invent_an_offset() -> None:
    ex = ExiftoolOutput(main={"ExifIFD:DateTimeOriginal": "2020:01:02 03:04:05",
                              "Composite:GPSDateTime": "2020:01:02 07:34:00Z"})  # 4h30m - 5 s
    capture = consolidate(Path("/x/a.jpg"), _ff([{"index": 0, "codec_type": "audio"}]),
                          None, ex).capture
    assert capture.created_at is not None and capture.created_at.utcoffset() == timedelta(
        hours=-4, minutes=-30)
    ex = ExiftoolOutput(main={"ExifIFD:DateTimeOriginal": "2020:01:02 03:04:05",
                              "Composite:GPSDateTime": "2020:01:02 07:11:00Z"})  # 7 min off
    capture = consolidate(Path("/x/a.jpg"), _ff([{"index": 0, "codec_type": "audio"}]),
                          None, ex).capture
    assert capture.created_at is not None and capture.created_at.tzinfo is None


def test_embedded_telemetry_is_skipped_on_long_clips() -> None:
    warnings: list[str] = []
    long_clip = _ff([{"index": 0, "codec_type": "video"}, {"index": 1, "codec_type": "data"}],
                    duration="3600.0")
    assert probe_run._wants_embedded(long_clip, warnings) is False
    assert warnings and "not read" in warnings[0]
    short = _ff([{"index": 0, "codec_type": "video"}, {"index": 1, "codec_type": "data"}],
                duration="10.0")
    assert probe_run._wants_embedded(short, []) is True
    plain = _ff([{"index": 0, "codec_type": "video"}], duration="10.0")
    assert probe_run._wants_embedded(plain, []) is False


@pytest.mark.parametrize(("text", "expected"), [
    ("+33.1268-117.3273/", (33.1268, -117.3273, None)),
    ("+32.0929+034.8620+028.516/", (32.0929, 34.862, 28.516)),
    ("+51.5335-000.1261/", (51.5335, -0.1261, None)),
    ("-2230.00-04312.60/", (-22.5, -43.21, None)),  # ±DDMM.MM / ±DDDMM.MM
    ("+403015+0740000CRSWGS_84/", (40.504166, 74.0, None)),  # ±DDMMSS
    ("nowhere", None),
    ("", None),
])
def test_parse_iso6709(text: str, expected: tuple[float, float, float | None] | None) -> None:
    got = parse_iso6709(text)
    if expected is None:
        assert got is None
    else:
        assert got is not None
        assert got[0] == pytest.approx(expected[0], abs=1e-5)
        assert got[1] == pytest.approx(expected[1], abs=1e-5)
        assert got[2] == (pytest.approx(expected[2]) if expected[2] is not None else None)


@pytest.mark.parametrize(("mm", "category"), [
    (None, None), (14.0, "ultra-wide"), (20.9, "ultra-wide"), (21.0, "wide"), (34.9, "wide"),
    (35.0, "medium"), (69.0, "medium"), (70.0, "long"), (134.0, "long"), (135.0, "telephoto"),
    (600.0, "telephoto"),
])
def test_focal_category_boundaries(mm: float | None, category: str | None) -> None:
    assert focal_category(mm) == category
