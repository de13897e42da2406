"""Issue #13's fact classes, each on a real file of its class from tests/corpus/files
(provenance and licences in tests/corpus/MANIFEST.md), plus the rules behind them.

Where no real file of a class was found (a Sony XAVC clip with its ``M01.XML`` log
sidecar), the test builds one that reproduces the class exactly and says so.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from rayflow.media.exiftool import ExiftoolOutput
from rayflow.media.ffprobe import FfprobeOutput
from rayflow.media.mediainfo import MediainfoOutput
from rayflow.stages.probe import ProbeResult, consolidate, probe
from rayflow.stages.probe.log_profile import curve_name
from rayflow.stages.probe.timecode import frame_number, from_text, timecode_text
from tests.corpus.facts import corpus_file

_CACHE: dict[str, ProbeResult] = {}


def _probe(name: str) -> ProbeResult:
    if name not in _CACHE:
        _CACHE[name] = probe(corpus_file(name))
    return _CACHE[name]


# --------------------------------------------------------------------------- browser MediaRecorder WebM


@pytest.mark.parametrize(("name", "duration_s", "fps"), [
    # Chrome 57: no Duration element, avg_frame_rate 0/0, r_frame_rate 50/3; 185 frames over 7.552 s.
    ("chrome57.webm", 7.612, 24.364),
    # Firefox 55: no Duration element, r_frame_rate the bogus 1000/1; 240 frames over 8.59 s.
    ("firefox55nightly.webm", 8.66, 27.823),
])
def test_browser_recording_is_catalogued_not_failed(name: str, duration_s: float, fps: float) -> None:
    result = _probe(name)  # raised "truncated or corrupt file (mediainfo: IsTruncated)" before
    assert result.kind == "video" and result.video is not None
    assert result.container.duration_s == pytest.approx(duration_s, abs=0.02)
    assert result.video.duration_s == pytest.approx(duration_s, abs=0.02)
    assert result.video.fps == pytest.approx(fps, rel=0.002)
    assert result.video.r_frame_rate != "1000/1"
    assert result.video.is_vfr is True
    assert any("mediainfo: IsTruncated" in w and "ffprobe read" in w for w in result.warnings)


def test_long_recording_without_duration_is_timed_by_a_full_demux(tmp_path: Path) -> None:
    # Matroska in live mode writes no Duration (as MediaRecorder does); 1200 packets > the
    # 1000-packet window, so the end comes from a second, demux-only ffprobe pass.
    clip = tmp_path / "live.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=64x64:rate=30:duration=40",
                    "-c:v", "libx264", "-preset", "ultrafast", "-f", "matroska", "-live", "1", str(clip)],
                   check=True, timeout=120)
    result = probe(clip)
    assert result.video is not None and result.video.fps == 30.0
    assert result.container.duration_s == pytest.approx(40.0, abs=0.05)


def test_ffprobe_evidence_of_truncation_still_fails_the_file() -> None:
    ff = FfprobeOutput(format={"duration": "1.0"}, streams=[{"index": 0, "codec_type": "video"}],
                       stderr="[mov,mp4 @ 0x1] stream 1, offset 0x850d: partial file\n")
    mi = MediainfoOutput(general={"extra": {"IsTruncated": "Yes"}})
    with pytest.raises(Exception, match=r"truncated or corrupt file \(ffprobe: .*partial file; mediainfo"):
        consolidate(Path("/x/cut.mp4"), ff, mi, None)


# --------------------------------------------------------------------------- durations, frame rates


def test_vp9_webm_stream_duration_comes_from_the_container() -> None:
    result = _probe("bbb_642x642_768kbps_30fps_vp9.webm")  # streams carry no duration
    assert result.video is not None and result.container.duration_s is not None
    assert result.video.duration_s == pytest.approx(result.container.duration_s, abs=0.001)


def test_mp3_duration_estimated_from_bitrate_is_replaced_by_packet_timestamps() -> None:
    # ffprobe: "Estimating duration from bitrate" -> 2.696 s; the packets end at 2.832 s.
    assert _probe("bear-id3.mp3").container.duration_s == pytest.approx(2.832, abs=0.01)


def test_implausible_avg_frame_rate_is_measured_from_timestamps() -> None:
    packets = [{"stream_index": 0, "pts": round(i * 1000 / 29.97), "flags": "K__" if i == 0 else "___"}
               for i in range(120)]
    ff = FfprobeOutput(
        format={"format_name": "matroska,webm", "duration": "4.0"},
        streams=[{"index": 0, "codec_type": "video", "codec_name": "h264", "width": 640, "height": 360,
                  "avg_frame_rate": "1000/1", "r_frame_rate": "1000/1", "time_base": "1/1000"}],
        packets=packets)
    video = consolidate(Path("/x/a.mkv"), ff, None, None).video
    assert video is not None and video.fps == pytest.approx(30000 / 1001)
    assert video.r_frame_rate is None  # 1000/1 is the timebase, not a rate


def test_interlaced_field_rate_does_not_double_the_frame_rate() -> None:
    video = _probe("Sony_ILCE-7M3.mts").video  # 1080i50: r_frame_rate 50/1 (fields), avg 25/1
    assert video is not None and video.fps == 25.0 and video.scan_type == "interlaced"


# --------------------------------------------------------------------------- primary video stream


def test_primary_video_is_the_largest_and_the_others_are_listed() -> None:
    video = _probe("pixel-motion-photo-2-hevc-tracks.mp4").video  # two HEVC tracks, the small one first
    assert video is not None and (video.index, video.width, video.height) == (1, 2048, 1536)
    assert [(o.index, o.codec) for o in video.other_streams] == [(0, "hevc")]


def test_primary_video_as_ffmpeg_selects_it_never_cover_art() -> None:
    def stream(index: int, w: int, h: int, **disposition: int) -> dict[str, object]:
        return {"index": index, "codec_type": "video", "codec_name": "h264", "width": w, "height": h,
                "avg_frame_rate": "25/1", "r_frame_rate": "25/1", "time_base": "1/12800",
                "disposition": {"default": 0, "attached_pic": 0, **disposition}}

    ff = FfprobeOutput(format={"duration": "3.0"}, streams=[
        stream(0, 320, 180), {"index": 1, "codec_type": "audio"}, stream(2, 480, 270),
        stream(3, 1920, 1080, attached_pic=1)])
    result = consolidate(Path("/x/two.mp4"), ff, None, None)
    assert result.video is not None and result.video.index == 2
    assert [o.index for o in result.video.other_streams] == [0]


# --------------------------------------------------------------------------- camera names


def test_avchd_make_is_the_printed_name_not_the_mdpm_code() -> None:
    camera = _probe("Sony_ILCE-7M3.mts").camera  # exiftool -n: H264:Make 264
    assert (camera.make, camera.model) == ("Sony", "ILCE-7M3")


def test_every_name_tag_prefers_the_printed_form() -> None:
    ex = ExiftoolOutput(main={"H264:Make": 4113, "ExifIFD:WhiteBalance": 1, "Canon:LensType": 61182},
                        printed={"H264:Make": "Canon", "ExifIFD:WhiteBalance": "Manual",
                                 "Canon:LensType": "Unknown (61182)"})
    camera = consolidate(Path("/x/a.mts"), FfprobeOutput(format={}, streams=[{"index": 0, "codec_type": "audio"}]),
                         None, ex).camera
    assert (camera.make, camera.white_balance, camera.lens) == ("Canon", "Manual", None)


# --------------------------------------------------------------------------- timecode, reel


@pytest.mark.parametrize(("name", "start", "rate", "drop", "source"), [
    ("karma.mp4", "19:26:48:04", 29.97, False, "ffprobe:tmcd"),
    ("MERIDIAN_ENG-51_audio.mxf", "01:00:03;35", 59.94, True, "ffprobe:timecode"),
    ("xmp480qt.mov", "12:59:21:18", 29.97, False, "exiftool:XMP-xmpDM:StartTimecode"),
    ("Sony_ILCE-7M3.mts", "00:00:10:11", 25.0, False, "exiftool:H264:TimeCode"),
    ("SoundDevices_702T_A101_1.WAV", "12:39:59:00", 23.976, False, "bwf:time_reference"),
    ("ZoomF8_Scene_1_2AG-T001_Tr1.WAV", "22:40:10:00", 25.0, False, "bwf:time_reference"),
])
def test_start_timecode_of_real_files(name: str, start: str, rate: float, drop: bool, source: str) -> None:
    tc = _probe(name).container.timecode
    assert tc is not None
    assert (tc.start, tc.rate, tc.drop_frame, tc.source) == (start, rate, drop, source)


def test_reel_names_and_absent_timecode_are_null() -> None:
    assert _probe("SoundDevices_702T_A101_1.WAV").container.reel == "18Y12M31"
    assert _probe("ZoomF8_Scene_1_2AG-T001_Tr1.WAV").container.reel == "WINFO"
    plain = _probe("bbb_642x642_768kbps_30fps_vp9.webm").container
    assert plain.timecode is None and plain.reel is None


def test_drop_frame_arithmetic() -> None:
    assert frame_number(1, 0, 0, 0, 30, drop=True) == 107892  # one hour of 29.97 DF
    assert timecode_text(107892, 30, drop=True) == "01:00:00;00"
    assert timecode_text(1800, 30, drop=True) == "00:01:00;02"  # ;00 and ;01 do not exist
    for frames in (0, 1799, 1800, 17982, 17983, 215999):
        text = timecode_text(frames, 60 if frames == 215999 else 30, drop=True)
        h, m, rest = text.split(":")
        s, f = rest.split(";")
        assert frame_number(int(h), int(m), int(s), int(f), 60 if frames == 215999 else 30, True) == frames
    tc = from_text("01:00:00;00", 30000 / 1001, "test")
    assert tc is not None and tc.drop_frame is True and tc.start_s == pytest.approx(3599.9964, abs=1e-3)


# --------------------------------------------------------------------------- log profile

# No public repository was found with a real Sony XAVC clip beside its M01.XML (tests/corpus/MANIFEST.md):
# this sidecar follows Sony's NonRealTimeMeta schema (namespace and structure as the cameras write it).
SONY_M01 = """<?xml version="1.0" encoding="UTF-8"?>
<NonRealTimeMeta xmlns="urn:schemas-professionalDisc:nonRealTimeMeta:ver.2.20" lastUpdate="2024-03-15T14:23:45-05:00">
\t<Duration value="30"/>
\t<CreationDate value="2024-03-15T14:23:45-05:00"/>
\t<Device manufacturer="Sony" modelName="ILME-FX3" serialNo="1234567"/>
\t<AcquisitionRecord>
\t\t<Group name="CameraUnitMetadataSet">
\t\t\t<Item name="CaptureGammaEquation" value="s-log3-cine"/>
\t\t\t<Item name="CaptureColorPrimaries" value="s-gamut3-cine"/>
\t\t</Group>
\t</AcquisitionRecord>
</NonRealTimeMeta>
"""


def test_log_profile_from_a_sony_sidecar_beside_the_clip(tmp_path: Path, shared_media: Path) -> None:
    clip = tmp_path / "C0001.MP4"
    shutil.copyfile(shared_media / "sample_av1.mp4", clip)
    (tmp_path / "C0001M01.XML").write_text(SONY_M01)
    video = probe(clip).video
    assert video is not None and video.color.log_profile is not None
    profile = video.color.log_profile
    assert (profile.name, profile.raw, profile.gamut, profile.source) == (
        "S-Log3", "s-log3-cine", "s-gamut3-cine", "C0001M01.XML")


def test_log_profile_from_exiftool_tags_and_never_from_transfer_alone() -> None:
    streams = [{"index": 0, "codec_type": "video", "width": 64, "height": 64, "color_transfer": "arib-std-b67"}]
    ff = FfprobeOutput(format={}, streams=streams)
    hlg_only = consolidate(Path("/x/a.mp4"), ff, None, ExiftoolOutput(main={"QuickTime:Encoder": "x"})).video
    assert hlg_only is not None and hlg_only.color.log_profile is None and hlg_only.hdr.format == "HLG"
    ex = ExiftoolOutput(main={"XML:CaptureGammaEquation": "rec2100-hlg"})
    tagged = consolidate(Path("/x/a.mp4"), ff, None, ex).video
    assert tagged is not None and tagged.color.log_profile is not None
    assert (tagged.color.log_profile.name, tagged.color.log_profile.source) == ("HLG", "XML:CaptureGammaEquation")
    assert _probe("karma.mp4").video.color.log_profile is None  # type: ignore[union-attr]


@pytest.mark.parametrize(("value", "name"), [
    ("s-log3-cine", "S-Log3"), ("S-Log2", "S-Log2"), ("V-Log", "V-Log"), ("CLogV3", "C-Log3"),
    ("Canon Log 2", "C-Log2"), ("C-Log", "C-Log"), ("LogC4", "LogC4"), ("Log C", "LogC3"),
    ("Apple Log", "Apple Log"), ("D-Log M", "D-Log"), ("F-Log2", "F-Log2"), ("rec2100-hlg", "HLG"),
    ("Normal", None), ("Standard", None), ("", None),
])
def test_curve_names(value: str, name: str | None) -> None:
    assert curve_name(value) == name
