"""The proxy step on real files: size, orientation, timing, HDR, audio, reuse, failure, fallback.

Encodes for real with the CPU encoder this machine has (detection picks it). Each
fixture clip is made by the ffmpeg argv list beside it (tiny, ultrafast, <= 2 s);
real footage comes from ../shared/media (facts in its MANIFEST.md).
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rayflow.config import ProxySettings
from rayflow.media.encoders import EncoderPlan, detect_encoders, list_gpus
from rayflow.media.tools import ToolError, ToolTimeout
from rayflow.record import AudioTrack, ColorInfo, HdrInfo, VideoInfo
from rayflow.stages import proxy as proxy_mod
from rayflow.stages.proxy import (
    ProxySource,
    build_argv,
    hdr_handling,
    make_proxy,
    output_fps,
    settings_key,
)

SETTINGS = ProxySettings()
CPU_PLAN = EncoderPlan(encoders=("libx264",), tone_mapper="zscale")
"""A plan as detection gives on a CPU box; tests that are not about detection use it."""
FF = ["ffmpeg", "-nostdin", "-v", "error", "-y"]
TESTSRC = "testsrc2=size=320x240:rate=25:duration=2"


def _ffmpeg(*args: str) -> None:
    subprocess.run([*FF, *args], check=True, timeout=60, capture_output=True)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("proxy_src")
    p = {name: out / name for name in (
        "base.mp4", "rot90.mp4", "vfr.mp4", "hdr_pq.mp4", "odd.mp4", "noaudio.mp4",
        "three_audio.mkv", "fps60.mp4", "anamorphic.mp4", "-dash.mp4", "interlaced.mp4",
    )}
    # 320x240 25 fps 2 s + 440 Hz stereo AAC; ultrafast, so bigger than a CRF 28 proxy.
    _ffmpeg("-f", "lavfi", "-i", TESTSRC, "-f", "lavfi", "-i", "sine=frequency=440:duration=2",
            "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-ac", "2", str(p["base.mp4"]))
    # Same streams, display matrix only: ffmpeg 5.1 writes rotate=90 as 90 deg CCW
    # (ffprobe rotation=90), i.e. 270 clockwise; displays as 240x320.
    _ffmpeg("-i", str(p["base.mp4"]), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(p["rot90.mp4"]))
    # VFR: 10 frames at 10 fps, then 20 at 30 fps (30 frames, 1.667 s).
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=30:duration=1",
            "-vf", "setpts='if(lt(N,10),N*3,N+20)/(30*TB)'", "-fps_mode", "passthrough",
            "-c:v", "libx264", "-preset", "ultrafast", str(p["vfr.mp4"]))
    # HDR10: the SDR test pattern mastered into PQ / BT.2020 (SDR white -> 100 nits) by zscale,
    # HEVC Main 10, 1 s. Shown without tone-mapping it is dim and grey; tone-mapped, it should
    # look like the SDR pattern again.
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=1",
            "-vf", "zscale=tin=bt709:min=bt709:pin=bt709:rin=tv:t=smpte2084:m=bt2020nc:p=bt2020:r=tv"
                   ":npl=100,format=yuv420p10le",
            "-c:v", "libx265", "-preset", "ultrafast",
            "-x265-params", "log-level=error:colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc",
            "-color_primaries", "bt2020", "-color_trc", "smpte2084", "-colorspace", "bt2020nc",
            str(p["hdr_pq.mp4"]))
    # Odd size 853x481 (yuv444p: odd sizes are legal there), 0.4 s.
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=853x481:rate=25:duration=0.4",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv444p", str(p["odd.mp4"]))
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=1",
            "-c:v", "libx264", "-preset", "ultrafast", str(p["noaudio.mp4"]))
    # Three audio tracks at 220/440/880 Hz; the second (440 Hz) is the default.
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=1",
            "-f", "lavfi", "-i", "sine=frequency=220:duration=1",
            "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
            "-f", "lavfi", "-i", "sine=frequency=880:duration=1",
            "-map", "0:v", "-map", "1:a", "-map", "2:a", "-map", "3:a",
            "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-ac", "2",
            "-disposition:a:0", "0", "-disposition:a:1", "default", "-disposition:a:2", "0",
            str(p["three_audio.mkv"]))
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=60:duration=1",
            "-c:v", "libx264", "-preset", "ultrafast", str(p["fps60.mp4"]))
    # Anamorphic: 320x240 stored, SAR 4:3 -> displays 427x240.
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=0.4", "-vf", "setsar=4/3",
            "-c:v", "libx264", "-preset", "ultrafast", str(p["anamorphic.mp4"]))
    _ffmpeg("-i", str(p["noaudio.mp4"]), "-c", "copy", str(p["-dash.mp4"]))
    # Interlaced H.264 (MBAFF, top field first), 320x240 25 fps, 0.4 s.
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=0.4",
            "-c:v", "libx264", "-preset", "ultrafast", "-flags", "+ildct+ilme", "-x264-params", "tff=1",
            str(p["interlaced.mp4"]))
    return p


# --------------------------------------------------------------------------- helpers


def _probe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json",
         "file:" + str(path.resolve())], capture_output=True, check=True, timeout=30)
    return json.loads(out.stdout)


def _video(data: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in data["streams"] if s["codec_type"] == "video")


def _ratio(text: str | None, sep: str = "/") -> float | None:
    if not text or sep not in text:
        return None
    num, den = (int(x) for x in text.split(sep))
    return num / den if num and den else None


def _rotation_cw(stream: dict[str, Any]) -> int:
    matrix = next((sd["rotation"] for sd in stream.get("side_data_list", []) if "rotation" in sd), 0)
    return round(-float(matrix) / 90) * 90 % 360


def source_of(path: Path) -> ProxySource:
    """A ProxySource from one ffprobe call (what the probe stage gives the caller)."""
    data = _probe(path)
    v = _video(data)
    audio = [s for s in data["streams"] if s["codec_type"] == "audio"]
    chosen = next((s for s in audio if s.get("disposition", {}).get("default")), audio[0] if audio else None)
    duration = float(v.get("duration") or data["format"].get("duration") or 0) or None
    transfer = v.get("color_transfer")
    return ProxySource(
        width=v["width"], height=v["height"], rotation=_rotation_cw(v),
        sample_aspect=_ratio(v.get("sample_aspect_ratio"), ":") or 1.0,
        fps=_ratio(v.get("avg_frame_rate")), duration_s=duration,
        is_hdr=transfer in ("smpte2084", "arib-std-b67"), transfer=transfer,
        audio_index=chosen["index"] if chosen else None, video_index=v["index"],
        video_codec=v["codec_name"], pix_fmt=v.get("pix_fmt"),
    )


def _duration_s(path: Path) -> float:
    v = _video(_probe(path))
    return float(v.get("duration") or _probe(path)["format"]["duration"])


def _frames(path: Path) -> int:
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "V:0",
                          "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0",
                          "file:" + str(path)], capture_output=True, check=True, timeout=30)
    return int(out.stdout.decode().strip().strip(","))


def assert_plays(proxy: Path) -> dict[str, Any]:
    """ffprobe reads it and a full decode reports no error; returns the probe."""
    data = _probe(proxy)
    decode = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", "file:" + str(proxy),
                             "-f", "null", "-"], capture_output=True, timeout=60)
    assert decode.returncode == 0 and not decode.stderr.strip(), decode.stderr
    v = _video(data)
    assert v["pix_fmt"] == "yuv420p" and v["width"] % 2 == 0 and v["height"] % 2 == 0
    assert _rotation_cw(v) == 0  # orientation is baked into the pixels
    return data


def _display_dims(path: Path) -> tuple[int, int]:
    v = _video(_probe(path))
    sar = _ratio(v.get("sample_aspect_ratio"), ":") or 1.0
    w, h = v["width"] * sar, v["height"]
    return (h, w) if _rotation_cw(v) in (90, 270) else (w, h)


def _encode(src: Path, out: Path, **kw: Any) -> Any:
    args = {"source": source_of(src), "settings": SETTINGS, "plan": CPU_PLAN, "threads": 2,
            "timeout_s": 60.0, **kw}
    return make_proxy(src, out_dir=out, **args)


def _rgb(path: Path, extra_vf: str = "") -> np.ndarray:
    vf = f"scale=160:-2{extra_vf},format=rgb24"
    out = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", "file:" + str(path), "-frames:v", "1",
                          "-vf", vf, "-f", "rawvideo", "-"], capture_output=True, check=True, timeout=30)
    return np.frombuffer(out.stdout, np.uint8).reshape(-1, 3).astype(np.float64)


def _rgb_lavfi(source: str) -> np.ndarray:
    out = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", source, "-frames:v", "1",
                          "-vf", "scale=160:-2,format=rgb24", "-f", "rawvideo", "-"],
                         capture_output=True, check=True, timeout=30)
    return np.frombuffer(out.stdout, np.uint8).reshape(-1, 3).astype(np.float64)


def _saturation(rgb: np.ndarray) -> float:
    hi, lo = rgb.max(axis=1), rgb.min(axis=1)
    return float(np.mean((hi - lo) / np.maximum(hi, 1)))


def _dominant_hz(path: Path) -> float:
    out = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", "file:" + str(path), "-map", "0:a:0",
                          "-f", "s16le", "-ac", "1", "-ar", "8000", "-"], capture_output=True, check=True)
    pcm = np.frombuffer(out.stdout, np.int16).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(pcm))
    return float(np.fft.rfftfreq(len(pcm), 1 / 8000)[int(np.argmax(spectrum[1:])) + 1])


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --------------------------------------------------------------------------- pure parts


def test_build_argv_is_safe_and_complete(tmp_path: Path) -> None:
    src = ProxySource(width=1920, height=1080, fps=59.94, duration_s=3.0, audio_index=2, video_index=0,
                      video_codec="h264")
    out = tmp_path / ".proxy.mp4.x.tmp"
    argv = build_argv(Path("-weird.mp4"), out_path=out, source=src, settings=SETTINGS, encoder="libx264",
                      threads=3)
    assert argv[0] == "ffmpeg" and "-nostdin" in argv and all(isinstance(a, str) for a in argv)
    assert argv[argv.index("-i") + 1] == "file:" + str(Path("-weird.mp4").resolve())
    assert argv.count("-y") == 1 and argv[-2:] == ["-y", str(out)]
    assert argv[argv.index("-progress") + 1] == "pipe:1"
    vf = argv[argv.index("-vf") + 1]
    assert "fps=fps=30000/1001" in vf and "scale=854:480" in vf and vf.endswith("setsar=1,format=yuv420p")
    assert argv[argv.index("-map", argv.index("-map") + 1):][:2] == ["-map", "0:2?"]
    assert argv[argv.index("-c:a") + 1:][:4] == ["aac", "-ac", "1", "-b:a"]
    assert "+faststart" in argv and argv[argv.index("-crf") + 1] == "28"
    assert argv[argv.index("-g") + 1] == "60"  # 2 s at 29.97
    assert argv[argv.index("-threads") + 1] == "3"

    nv = build_argv(Path("/a.mov"), out_path=out, source=replace(src, audio_index=None), settings=SETTINGS,
                    encoder="hevc_nvenc", threads=1, hw_decode=True)
    assert nv[nv.index("-hwaccel") + 1] == "cuda" and nv.index("-hwaccel") < nv.index("-i")
    assert nv[nv.index("-cq") + 1] == "28" and "hvc1" in nv and "-an" in nv


def test_build_argv_hdr_paths(tmp_path: Path) -> None:
    src = ProxySource(width=1920, height=1080, fps=25, is_hdr=True, transfer="arib-std-b67")
    out = tmp_path / "o.tmp"
    zs = build_argv(Path("/a.mp4"), out_path=out, source=src, settings=SETTINGS, encoder="libx264",
                    threads=1, tone_mapper="zscale")
    vf = zs[zs.index("-vf") + 1]
    assert vf.index("scale=854:480") < vf.index("zscale=tin=arib-std-b67") < vf.index("tonemap=")
    assert zs[zs.index("-color_trc") + 1] == "bt709"
    pl = build_argv(Path("/a.mp4"), out_path=out, source=src, settings=SETTINGS, encoder="libx264",
                    threads=1, tone_mapper="libplacebo")
    assert "-init_hw_device" in pl and "libplacebo=w=854:h=480" in pl[pl.index("-vf") + 1]
    assert hdr_handling(src, "zscale") is not None and "HLG" in str(hdr_handling(src, "zscale"))
    assert "not tone-mapped" in str(hdr_handling(src, "none"))
    assert hdr_handling(replace(src, is_hdr=False, transfer="bt709"), "zscale") is None


@pytest.mark.parametrize(("fps", "expected"), [
    (None, None), (25.0, None), (29.97, None), (30.0, None), (59.94, 30000 / 1001), (50.0, 25.0),
    (120.0, 30.0), (100.0, 25.0), (240.0, 30.0), (31.0, 15.5),
])
def test_output_fps_divides_evenly(fps: float | None, expected: float | None) -> None:
    got = output_fps(fps, 30.0)
    assert (got is None) if expected is None else abs(float(got or 0) - expected) < 1e-3


@pytest.mark.parametrize(("w", "h", "rot", "sar", "expected"), [
    (1920, 1080, 0, 1.0, (854, 480)), (1920, 1080, 90, 1.0, (480, 854)), (853, 481, 0, 1.0, (852, 480)),
    (320, 240, 0, 4 / 3, (426, 240)), (320, 240, 270, 1.0, (240, 320)), (1080, 720, 0, 1.0, (854, 568)),
    (3, 3, 0, 1.0, (2, 2)),
])
def test_display_size_even_square_never_upscaled(
    w: int, h: int, rot: int, sar: float, expected: tuple[int, int],
) -> None:
    assert ProxySource(width=w, height=h, rotation=rot, sample_aspect=sar).display_size(854) == expected


def test_settings_key_changes_with_what_changes_pixels() -> None:
    src = ProxySource(width=320, height=240, fps=25.0)
    key = settings_key(SETTINGS, src)
    assert key == settings_key(ProxySettings(), ProxySource(width=320, height=240, fps=25.0))
    assert len(key) == 16
    assert key != settings_key(replace(SETTINGS, crf=23), src)
    assert key != settings_key(replace(SETTINGS, max_side=640), src)
    assert key != settings_key(SETTINGS, replace(src, rotation=90))
    # Speed-only knobs do not force a re-encode.
    assert key == settings_key(replace(SETTINGS, encode_workers=7, nvenc_sessions=3,
                                       hwaccel_decode=False), src)


def test_source_from_record_picks_default_audio_and_aspect() -> None:
    video = VideoInfo(index=1, codec="hevc", width=1440, height=1080, sample_aspect_ratio="4:3",
                      rotation=90, fps=25.0, duration_s=2.0, pix_fmt="yuv420p10le",
                      scan_type="interlaced", color=ColorInfo(transfer="smpte2084"),
                      hdr=HdrInfo(is_hdr=True, format="HDR10"))
    tracks = [AudioTrack(index=0), AudioTrack(index=2, default=True), AudioTrack(index=3)]
    src = ProxySource.from_record(video, tracks, duration_s=9.0)
    assert (src.audio_index, src.video_index, src.sample_aspect, src.duration_s) == (2, 1, 4 / 3, 2.0)
    assert src.hdr and src.interlaced and src.rotation == 90
    assert src.display_size(854) == (480, 854)
    assert ProxySource.from_record(video, [AudioTrack(index=5)]).audio_index == 5
    assert ProxySource.from_record(video.model_copy(update={"duration_s": None}), [],
                                   duration_s=9.0).duration_s == 9.0
    assert not ProxySource.from_record(video, []).has_audio
    with pytest.raises(ValueError, match="width"):
        ProxySource.from_record(VideoInfo(), [])


# --------------------------------------------------------------------------- real encodes


def test_basic_proxy_plays_is_smaller_and_keeps_timing(clips: dict[str, Path], tmp_path: Path) -> None:
    seen: list[float] = []
    info = _encode(clips["base.mp4"], tmp_path, on_progress=seen.append)
    proxy = tmp_path / "proxy.mp4"
    assert Path(info.path) == proxy and _files(tmp_path) == ["proxy.json", "proxy.mp4"]
    data = assert_plays(proxy)
    assert (info.encoder, info.hardware, info.decoder, info.fallback_from) == ("libx264", False, "cpu", None)
    assert (info.width, info.height, info.audio, info.hdr_handling) == (320, 240, True, None)
    assert info.size_bytes == proxy.stat().st_size < clips["base.mp4"].stat().st_size
    assert abs(_duration_s(proxy) - _duration_s(clips["base.mp4"])) <= 1 / 25
    assert _frames(proxy) == _frames(clips["base.mp4"]) == 50
    audio = [s for s in data["streams"] if s["codec_type"] == "audio"]
    assert [(a["codec_name"], a["channels"]) for a in audio] == [("aac", 1)]
    head = proxy.read_bytes()
    assert head.index(b"moov") < head.index(b"mdat")  # +faststart
    assert seen and seen[-1] == 1.0 and seen == sorted(seen) and all(0 <= f <= 1 for f in seen)
    assert info.encode_s is not None
    assert info.settings_key == settings_key(SETTINGS, source_of(clips["base.mp4"]))
    sidecar = json.loads((tmp_path / "proxy.json").read_text())
    assert sidecar["settings_key"] == info.settings_key


def test_rotation_is_baked_in(clips: dict[str, Path], tmp_path: Path) -> None:
    src = source_of(clips["rot90.mp4"])
    assert src.rotation == 270  # ffmpeg 5.1's rotate=90 tag is 90 deg counter-clockwise
    info = _encode(clips["rot90.mp4"], tmp_path)
    assert_plays(tmp_path / "proxy.mp4")
    assert (info.width, info.height) == (240, 320) == _display_dims(clips["rot90.mp4"])
    assert abs(_duration_s(tmp_path / "proxy.mp4") - 2.0) <= 1 / 25


def test_vfr_keeps_every_frame_and_duration(clips: dict[str, Path], tmp_path: Path) -> None:
    info = _encode(clips["vfr.mp4"], tmp_path)
    proxy = tmp_path / "proxy.mp4"
    assert_plays(proxy)
    assert _frames(proxy) == _frames(clips["vfr.mp4"]) == 30
    assert info.duration_s is not None and abs(info.duration_s - _duration_s(clips["vfr.mp4"])) <= 1 / 30


def test_fps_cap_halves_60_to_30(clips: dict[str, Path], tmp_path: Path) -> None:
    info = _encode(clips["fps60.mp4"], tmp_path)
    assert_plays(tmp_path / "proxy.mp4")
    assert info.fps == 30.0 and _frames(tmp_path / "proxy.mp4") == 30
    assert info.duration_s is not None and abs(info.duration_s - 1.0) <= 1 / 30


def test_pq_source_is_tone_mapped_to_sdr_bt709(clips: dict[str, Path], tmp_path: Path) -> None:
    info = _encode(clips["hdr_pq.mp4"], tmp_path)
    v = _video(assert_plays(tmp_path / "proxy.mp4"))
    assert (v["color_transfer"], v["color_primaries"], v["color_space"], v["pix_fmt"]) == (
        "bt709", "bt709", "bt709", "yuv420p")
    assert v.get("bits_per_raw_sample", "8") == "8" and v["profile"] == "High"
    assert info.hdr_handling and info.hdr_handling.startswith("tone-mapped PQ")
    # Not washed out: close to the SDR pattern it was mastered from, and far more saturated
    # than the PQ signal shown as if it were SDR.
    ref = _rgb_lavfi("testsrc2=size=320x240:rate=25:duration=1")
    mapped, naive = _rgb(tmp_path / "proxy.mp4"), _rgb(clips["hdr_pq.mp4"])
    assert np.abs(mapped - ref).mean() < 0.5 * np.abs(naive - ref).mean()
    assert _saturation(mapped) > 1.3 * _saturation(naive)


def test_odd_size_becomes_even(clips: dict[str, Path], tmp_path: Path) -> None:
    info = _encode(clips["odd.mp4"], tmp_path)
    assert_plays(tmp_path / "proxy.mp4")
    assert (info.width, info.height) == (852, 480)


def test_anamorphic_becomes_square_pixels(clips: dict[str, Path], tmp_path: Path) -> None:
    info = _encode(clips["anamorphic.mp4"], tmp_path)
    v = _video(assert_plays(tmp_path / "proxy.mp4"))
    assert (info.width, info.height) == (426, 240)
    assert v.get("sample_aspect_ratio", "1:1") in ("1:1", "N/A")


def test_interlaced_is_deinterlaced_frame_for_frame(clips: dict[str, Path], tmp_path: Path) -> None:
    src = replace(source_of(clips["interlaced.mp4"]), interlaced=True)  # as the probe reports it
    argv = build_argv(clips["interlaced.mp4"], out_path=tmp_path / "x", source=src, settings=SETTINGS,
                      encoder="libx264", threads=1)
    assert argv[argv.index("-vf") + 1].startswith("bwdif=mode=send_frame")
    _encode(clips["interlaced.mp4"], tmp_path, source=src)
    assert_plays(tmp_path / "proxy.mp4")
    assert _frames(tmp_path / "proxy.mp4") == _frames(clips["interlaced.mp4"]) == 10


def test_libplacebo_tone_map_path(clips: dict[str, Path], tmp_path: Path) -> None:
    """The path used where zscale is missing; runs where a Vulkan device (even lavapipe) exists."""
    from rayflow.media.encoders import libplacebo_usable

    if not libplacebo_usable(timeout_s=30):
        pytest.skip("no Vulkan device for libplacebo in this ffmpeg")
    plan = EncoderPlan(encoders=("libx264",), tone_mapper="libplacebo")
    info = _encode(clips["hdr_pq.mp4"], tmp_path, plan=plan)
    v = _video(assert_plays(tmp_path / "proxy.mp4"))
    assert info.hdr_handling is not None and "libplacebo" in info.hdr_handling
    assert (v["color_transfer"], v["width"], v["height"]) == ("bt709", 320, 240)
    ref = _rgb_lavfi("testsrc2=size=320x240:rate=25:duration=1")
    mapped, naive = _rgb(tmp_path / "proxy.mp4"), _rgb(clips["hdr_pq.mp4"])
    assert np.abs(mapped - ref).mean() < np.abs(naive - ref).mean()


def test_no_audio_makes_silent_proxy(clips: dict[str, Path], tmp_path: Path) -> None:
    info = _encode(clips["noaudio.mp4"], tmp_path)
    data = assert_plays(tmp_path / "proxy.mp4")
    assert not info.audio and [s["codec_type"] for s in data["streams"]] == ["video"]


def test_three_audio_tracks_become_the_default_one_in_mono(clips: dict[str, Path], tmp_path: Path) -> None:
    src = source_of(clips["three_audio.mkv"])
    assert src.audio_index == 2  # the default-flagged 440 Hz track
    info = _encode(clips["three_audio.mkv"], tmp_path)
    data = assert_plays(tmp_path / "proxy.mp4")
    audio = [s for s in data["streams"] if s["codec_type"] == "audio"]
    assert info.audio and [(a["codec_name"], a["channels"]) for a in audio] == [("aac", 1)]
    assert abs(_dominant_hz(tmp_path / "proxy.mp4") - 440) < 10


def test_dash_leading_relative_name(clips: dict[str, Path], tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(clips["-dash.mp4"].parent)
    info = make_proxy(Path("-dash.mp4"), out_dir=tmp_path, source=source_of(clips["-dash.mp4"]),
                      settings=SETTINGS, plan=CPU_PLAN, threads=1, timeout_s=60)
    assert_plays(Path(info.path))


# --------------------------------------------------------------------------- reuse


def test_reuse_then_settings_change_reencodes(clips: dict[str, Path], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    first = _encode(clips["noaudio.mp4"], tmp_path)
    proxy = tmp_path / "proxy.mp4"
    mtime = proxy.stat().st_mtime_ns

    def no_encode(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("re-encoded a reusable proxy")

    with monkeypatch.context() as m:
        m.setattr(proxy_mod, "run_ffmpeg_progress", no_encode)
        again = _encode(clips["noaudio.mp4"], tmp_path)
    assert again == first and proxy.stat().st_mtime_ns == mtime

    changed = _encode(clips["noaudio.mp4"], tmp_path, settings=replace(SETTINGS, crf=35))
    assert changed.settings_key != first.settings_key and proxy.stat().st_mtime_ns != mtime
    assert json.loads((tmp_path / "proxy.json").read_text())["settings_key"] == changed.settings_key
    assert _files(tmp_path) == ["proxy.json", "proxy.mp4"]


def test_damaged_proxy_is_not_reused(clips: dict[str, Path], tmp_path: Path) -> None:
    first = _encode(clips["noaudio.mp4"], tmp_path)
    proxy = tmp_path / "proxy.mp4"
    proxy.write_bytes(proxy.read_bytes()[: first.size_bytes // 3])
    again = _encode(clips["noaudio.mp4"], tmp_path)
    assert again.size_bytes == proxy.stat().st_size and again.size_bytes > first.size_bytes // 3
    assert_plays(proxy)


# --------------------------------------------------------------------------- failures


def test_timeout_kills_and_leaves_no_partial_file(shared_media: Path, tmp_path: Path) -> None:
    src = shared_media / "sintel_trailer_10s.mp4"  # 240 frames: ~1.5 s to encode on 2 cores
    with pytest.raises(ToolTimeout, match="timed out after"):  # the kill path, not "deadline passed"
        _encode(src, tmp_path, timeout_s=0.15)
    assert _files(tmp_path) == []


def test_killed_by_callback_leaves_no_partial_file(shared_media: Path, tmp_path: Path) -> None:
    class Stop(Exception):
        """Like a worker being told to stop mid-encode."""

    def stop(fraction: float) -> None:
        if 0 < fraction < 1:
            raise Stop

    # One thread keeps the encode > 1 s on any machine, so progress arrives mid-way.
    with pytest.raises(Stop):
        _encode(shared_media / "sintel_trailer_10s.mp4", tmp_path, on_progress=stop, threads=1)
    assert _files(tmp_path) == []


def test_bad_encoder_alone_fails_clearly_without_files(clips: dict[str, Path], tmp_path: Path) -> None:
    plan = EncoderPlan(encoders=("no_such_enc",))
    with pytest.raises(ToolError) as info:
        _encode(clips["noaudio.mp4"], tmp_path, plan=plan)
    assert "no_such_enc" in str(info.value) and "Unknown encoder" in str(info.value)
    assert _files(tmp_path) == []
    with pytest.raises(ToolError, match="no usable video encoder"):
        _encode(clips["noaudio.mp4"], tmp_path, plan=EncoderPlan(encoders=()))


def test_failing_encoder_falls_back_once(clips: dict[str, Path], tmp_path: Path) -> None:
    plan = EncoderPlan(encoders=("no_such_enc", "libx264"))
    info = _encode(clips["base.mp4"], tmp_path, plan=plan)
    assert (info.encoder, info.fallback_from) == ("libx264", "no_such_enc")
    assert_plays(tmp_path / "proxy.mp4")
    both_bad = EncoderPlan(encoders=("bad_one", "bad_two", "libx264"))
    with pytest.raises(ToolError) as err:
        _encode(clips["base.mp4"], tmp_path / "x", plan=both_bad)
    assert "bad_one" in str(err.value) and "bad_two" in str(err.value)  # once, not twice
    assert _files(tmp_path / "x") == []


def test_failing_mid_way_falls_back(clips: dict[str, Path], tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """An encoder that starts, writes part of the file, then dies: the partial temp goes, the
    next encoder runs. Simulated by a first run that writes a partial temp and fails."""
    real = proxy_mod.run_ffmpeg_progress
    calls: list[str] = []

    def dies_first_time(argv: list[str], **kw: Any) -> None:
        calls.append(argv[argv.index("-c:v") + 1])
        if len(calls) == 1:
            tmp = Path(argv[-1])
            tmp.write_bytes(b"partial")
            raise ToolError("ffmpeg", "x", "exit 1: encoder crashed")
        real(argv, **kw)

    monkeypatch.setattr(proxy_mod, "run_ffmpeg_progress", dies_first_time)
    plan = EncoderPlan(encoders=("libx265", "libx264"))
    info = _encode(clips["noaudio.mp4"], tmp_path, plan=plan)
    assert calls == ["libx265", "libx264"] and info.fallback_from == "libx265"
    assert _files(tmp_path) == ["proxy.json", "proxy.mp4"]


def test_stale_temp_from_a_killed_process_is_swept(clips: dict[str, Path], tmp_path: Path) -> None:
    stale = tmp_path / ".proxy.mp4.deadbeef.tmp"
    stale.write_bytes(b"x")
    os.utime(stale, (1, 1))
    _encode(clips["noaudio.mp4"], tmp_path)
    assert _files(tmp_path) == ["proxy.json", "proxy.mp4"]


# --------------------------------------------------------------------------- detection + shared media


def test_real_detection_drives_the_encode(clips: dict[str, Path], tmp_path: Path) -> None:
    plan = detect_encoders(SETTINGS.encoders, timeout_s=30)
    info = _encode(clips["noaudio.mp4"], tmp_path, plan=plan)
    assert info.encoder == plan.encoders[0]
    if not list_gpus()[0]:
        assert info.encoder == "libx264" and not info.hardware
        assert set(plan.reasons) == {"hevc_nvenc", "h264_nvenc"}


@pytest.mark.parametrize(("name", "display", "hdr"), [
    ("with-gps.mov", (320, 568), False),        # rotated 90 cw iPhone clip
    ("hlg10-color-test.mp4", (854, 480), True),  # HEVC Main 10 HLG
    ("sample_av1.mp4", (854, 568), False),       # AV1 (no NVDEC on Hopper)
    ("100_0306.AVI", (320, 240), False),         # MJPEG 4:2:2 + PCM
])
def test_shared_media(shared_media: Path, tmp_path: Path, name: str, display: tuple[int, int],
                      hdr: bool) -> None:
    src = shared_media / name
    info = _encode(src, tmp_path)
    proxy = tmp_path / "proxy.mp4"
    v = _video(assert_plays(proxy))
    assert (info.width, info.height) == display
    sw, sh = _display_dims(src)
    assert (info.width > info.height) == (sw > sh)
    fps = source_of(src).fps or 25
    assert abs(_duration_s(proxy) - _duration_s(src)) <= 1 / fps + 1e-3
    assert (info.hdr_handling is not None) == hdr
    if hdr:
        assert v["color_transfer"] == "bt709"
        naive = _saturation(_rgb(src))
        assert _saturation(_rgb(proxy)) > 1.3 * naive
    if src.stat().st_size > 300_000:
        assert info.size_bytes < src.stat().st_size


def test_progress_reports_intermediate_fractions(shared_media: Path, tmp_path: Path) -> None:
    seen: list[float] = []
    _encode(shared_media / "sintel_trailer_10s.mp4", tmp_path, on_progress=seen.append, threads=1)
    assert any(0 < f < 1 for f in seen) and seen[-1] == 1.0 and seen == sorted(seen)


# --------------------------------------------------------------------------- GPU


@pytest.mark.gpu
def test_gpu_node_encodes_with_what_it_has(clips: dict[str, Path], tmp_path: Path) -> None:
    """On an NVENC GPU (L4, T4, RTX...) the proxy is made by NVENC; on A100/H100/H200 the
    trial rejects NVENC with the reason and NVDEC still decodes the H.264 source."""
    from rayflow.media.encoders import clear_cache, nvenc_session_capacity

    clear_cache()
    plan = detect_encoders(SETTINGS.encoders, timeout_s=60)
    gpu = plan.gpu_names[0]
    info = _encode(clips["base.mp4"], tmp_path, plan=plan)
    assert_plays(tmp_path / "proxy.mp4")
    if nvenc_session_capacity(gpu) > 0:
        assert info.hardware and info.encoder.endswith("_nvenc"), plan.reasons
    else:
        assert info.encoder == "libx264" and "no NVENC engine" in plan.reasons["hevc_nvenc"]
    assert plan.nvdec_available and info.decoder == "cuda", plan
