"""Fixture footage made with ffmpeg (lavfi sources) and exiftool, with the truth about each file.

Every asset is tiny (at most 320x240, at most 2 s, ``-preset ultrafast``) and is
declared by one maker function whose body holds the exact argv lists that make
it. The whole corpus builds in a few seconds on two cores and is cached: a
directory keeps a stamp per asset (a hash of its maker's source), so a reused
directory only rebuilds what changed.

Public API (import it from any test or benchmark)::

    from tests.media import ASSETS, BAD, KNOWN, Between, fact, make_asset, make_corpus, matches

    paths = make_corpus(tmp_dir)                 # {name: Path} for every asset
    paths = make_corpus(tmp_dir, ["h264_aac.mp4", "vfr.mp4"])   # just these
    path = make_asset(tmp_dir, "hdr10.mp4")

    for dotted, expected in KNOWN["hdr10.mp4"].items():   # truth, as dotted paths
        assert matches(fact(result, dotted), expected)    # into a ProbeResult/ClipRecord

- ``ASSETS``: name -> maker ``(out: Path) -> None`` (writes exactly ``out``).
- ``KNOWN``: name -> {dotted path: expected}. Paths walk attributes, dict keys
  and list indexes (``"audio_tracks.1.language"``); a trailing ``.len`` is a
  length. Expected floats match within 1 %; ``Between(lo, hi)`` is a range.
- ``BAD``: name -> a phrase the probe error for that input must contain
  (empty, truncated, text, directory).
- ``ODD_NAMES``: the assets whose only oddity is their file name.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import math
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CORPUS_VERSION = "1"
"""Bump to rebuild every cached asset (e.g. after changing a shared helper)."""

FFMPEG = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
EXIFTOOL_WRITE = ["exiftool", "-q", "-q", "-overwrite_original", "-api", "LargeFileSupport=1"]
_TIMEOUT_S = 120.0

Maker = Callable[[Path], None]


FONT_CANDIDATES = ("DejaVuSans-Bold.ttf", "DejaVuSans.ttf", "LiberationSans-Bold.ttf", "FreeSansBold.ttf")


def find_font() -> Path | None:
    """A TrueType font for ffmpeg's drawtext captions: a known bold sans first, else any."""
    fonts = Path("/usr/share/fonts")
    for name in FONT_CANDIDATES:
        found = sorted(fonts.rglob(name)) if fonts.is_dir() else []
        if found:
            return found[0]
    any_ttf = sorted(fonts.rglob("*.ttf")) if fonts.is_dir() else []
    return any_ttf[0] if any_ttf else None


def _run(argv: list[str]) -> None:
    """Run one maker command; a failure names the command and its stderr."""
    proc = subprocess.run(argv, capture_output=True, timeout=_TIMEOUT_S, check=False,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", errors="replace").strip()[-2000:]
        raise RuntimeError(f"fixture command failed ({proc.returncode}): {argv!r}\n{err}")


# --------------------------------------------------------------------------- makers
# Each maker's body is the recipe. Sources: testsrc2 (moving colour pattern) and
# sine (a tone); both deterministic.


def h264_aac(out: Path) -> None:
    """H.264 level 3.0 320x240 25 fps, 1 s, GOP 10, BT.709 tags; AAC stereo 48 kHz; a title.

    ultrafast uses no CABAC and no B-frames, so x264 signals Constrained Baseline."""
    _run([*FFMPEG,
          "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=1",
          "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=1",
          "-c:v", "libx264", "-preset", "ultrafast", "-level:v", "3.0",
          "-g", "10", "-keyint_min", "10", "-sc_threshold", "0", "-pix_fmt", "yuv420p",
          "-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709",
          "-color_range", "tv",
          "-c:a", "aac", "-b:a", "64k", "-ac", "2",
          "-metadata", "title=rayflow fixture",
          str(out)])


def hevc(out: Path) -> None:
    """HEVC Main 8-bit 320x240 25 fps, 1 s, closed GOP of 12; no audio."""
    _run([*FFMPEG,
          "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=1",
          "-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-tag:v", "hvc1",
          "-x265-params", "log-level=error:keyint=12:min-keyint=12:scenecut=0:open-gop=0",
          str(out)])


def hdr10(out: Path) -> None:
    """HEVC Main 10, PQ/BT.2020 with ST 2086 mastering display (P3, 1000/0.0001 nits)
    and MaxCLL 1000 / MaxFALL 400 written by x265 as SEI (not as container boxes)."""
    _run([*FFMPEG,
          "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=1",
          "-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv420p10le", "-tag:v", "hvc1",
          "-x265-params",
          "log-level=error:hdr10=1:repeat-headers=1"
          ":colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc"
          ":master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)"
          ":max-cll=1000,400",
          "-color_primaries", "bt2020", "-color_trc", "smpte2084", "-colorspace", "bt2020nc",
          str(out)])


def hlg(out: Path) -> None:
    """HEVC Main 10, HLG (arib-std-b67) / BT.2020, no mastering metadata."""
    _run([*FFMPEG,
          "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=1",
          "-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv420p10le", "-tag:v", "hvc1",
          "-x265-params",
          "log-level=error:colorprim=bt2020:transfer=arib-std-b67:colormatrix=bt2020nc",
          "-color_primaries", "bt2020", "-color_trc", "arib-std-b67", "-colorspace", "bt2020nc",
          str(out)])


def vfr(out: Path) -> None:
    """Variable frame rate: 10 frames at 10 fps, then 20 frames at 30 fps (1.667 s, avg 18 fps)."""
    _run([*FFMPEG,
          "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=30:duration=1",
          "-vf", "setpts='if(lt(N,10),N*3,N+20)/(30*TB)'", "-fps_mode", "passthrough",
          "-c:v", "libx264", "-preset", "ultrafast",
          str(out)])


def _rotated(out: Path, degrees_cw: int) -> None:
    # exiftool writes the track matrix; its Rotation is clockwise, like the record's.
    # (ffmpeg 5.1's `-metadata:s:v rotate=90` writes the OPPOSITE matrix: 270 cw.)
    _run([*FFMPEG,
          "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=1",
          "-c:v", "libx264", "-preset", "ultrafast", str(out)])
    _run([*EXIFTOOL_WRITE, f"-Rotation={degrees_cw}", "--", str(out)])


def rotate90(out: Path) -> None:
    """320x240 H.264 whose display matrix says rotate 90 deg clockwise (ffprobe: -90), like an iPhone."""
    _rotated(out, 90)


def rotate270(out: Path) -> None:
    """320x240 H.264 in MOV, display matrix 270 deg clockwise (ffprobe: 90)."""
    _rotated(out, 270)


def multi_audio(out: Path) -> None:
    """MKV: H.264 + AAC stereo 'eng' (default, titled) + AAC mono 'fra' (titled) + SRT 'deu' forced."""
    with tempfile.TemporaryDirectory() as tmp:
        srt = Path(tmp) / "sub.srt"
        srt.write_text("1\n00:00:00,000 --> 00:00:00,900\nHallo\n", encoding="utf-8")
        _run([*FFMPEG,
              "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=1",
              "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=1",
              "-f", "lavfi", "-i", "sine=frequency=660:sample_rate=44100:duration=1",
              "-i", str(srt),
              "-map", "0:v", "-map", "1:a", "-map", "2:a", "-map", "3:s",
              "-c:v", "libx264", "-preset", "ultrafast",
              "-c:a", "aac", "-ac:a:0", "2", "-ac:a:1", "1",
              "-c:s", "srt",
              "-metadata:s:a:0", "language=eng", "-metadata:s:a:0", "title=English stereo",
              "-metadata:s:a:1", "language=fra", "-metadata:s:a:1", "title=Français mono",
              "-metadata:s:s:0", "language=deu", "-metadata:s:s:0", "title=Deutsch forced",
              "-disposition:a:0", "default", "-disposition:a:1", "0",
              "-disposition:s:0", "forced",
              str(out)])


def subs_mp4(out: Path) -> None:
    """MP4: H.264 + AAC mono + mov_text subtitle 'spa' (default, not forced)."""
    with tempfile.TemporaryDirectory() as tmp:
        srt = Path(tmp) / "sub.srt"
        srt.write_text("1\n00:00:00,000 --> 00:00:00,900\nHola\n", encoding="utf-8")
        _run([*FFMPEG,
              "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=1",
              "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=1",
              "-i", str(srt),
              "-map", "0:v", "-map", "1:a", "-map", "2:s",
              "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-ac", "1",
              "-c:s", "mov_text", "-metadata:s:s:0", "language=spa",
              "-disposition:s:0", "default",
              str(out)])


def no_audio(out: Path) -> None:
    """MKV with one H.264 stream and nothing else (Matroska has no per-stream duration field)."""
    _run([*FFMPEG,
          "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=1",
          "-c:v", "libx264", "-preset", "ultrafast", "-g", "5",
          str(out)])


def audio_only(out: Path) -> None:
    """M4A: AAC mono 44.1 kHz, 1 s, language 'eng'."""
    _run([*FFMPEG,
          "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=1",
          "-c:a", "aac", "-b:a", "48k", "-ac", "1", "-metadata:s:a:0", "language=eng",
          str(out)])


def cover_art(out: Path) -> None:
    """FLAC 16-bit stereo with a JPEG cover (an attached_pic 'video' stream that is not video)."""
    with tempfile.TemporaryDirectory() as tmp:
        cover = Path(tmp) / "cover.jpg"
        _run([*FFMPEG, "-f", "lavfi", "-i", "testsrc2=size=64x64", "-frames:v", "1", str(cover)])
        _run([*FFMPEG,
              "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=1",
              "-i", str(cover),
              "-map", "0:a", "-map", "1:v", "-c:a", "flac", "-sample_fmt", "s16", "-ac", "2",
              "-c:v", "copy", "-disposition:v", "attached_pic",
              "-metadata", "title=Fixture tone",
              str(out)])


def one_frame(out: Path) -> None:
    """A single H.264 frame in MP4: still a video file, not an image."""
    _run([*FFMPEG,
          "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
          "-frames:v", "1", "-c:v", "libx264", "-preset", "ultrafast",
          str(out)])


def interlaced(out: Path) -> None:
    """H.264 MBAFF, top field first (x264 interlaced mode)."""
    _run([*FFMPEG,
          "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=1",
          "-c:v", "libx264", "-preset", "ultrafast", "-flags", "+ildct+ilme", "-top", "1",
          "-pix_fmt", "yuv420p",
          str(out)])


def camera_mov(out: Path) -> None:
    """MOV with Apple-style Keys (make, model, software, ISO 6709 GPS, creation date with
    offset) and XMP exposure/lens tags, as a camera app would write them."""
    _run([*FFMPEG,
          "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=1",
          "-f", "lavfi", "-i", "sine=duration=1",
          "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest",
          str(out)])
    _run([*EXIFTOOL_WRITE,
          "-Keys:Make=Canon", "-Keys:Model=EOS R5", "-Keys:Software=Firmware 1.8.1",
          "-Keys:GPSCoordinates=48.8584, 2.2945, 35.5",
          "-Keys:CreationDate=2021:06:01 12:30:00+02:00",
          "-XMP-exif:FNumber=2.8", "-XMP-exif:ExposureTime=0.004", "-XMP-exif:ISO=800",
          "-XMP-exif:FocalLength=50", "-XMP-exif:FocalLengthIn35mmFormat=80",
          "-XMP-aux:Lens=RF50mm F1.8 STM", "-XMP-aux:SerialNumber=012345678",
          "-XMP-exif:WhiteBalance=Manual",
          "--", str(out)])


def still_jpg(out: Path) -> None:
    """A 320x240 JPEG photo with full camera EXIF (southern/western GPS, offset time),
    shot in portrait: EXIF Orientation 6 = rotate 90 deg clockwise to display."""
    _run([*FFMPEG, "-f", "lavfi", "-i", "testsrc2=size=320x240", "-frames:v", "1", str(out)])
    _run([*EXIFTOOL_WRITE,
          "-Make=NIKON CORPORATION", "-Model=NIKON Z 6", "-Software=Ver.3.40",
          "-LensModel=NIKKOR Z 24-70mm f/4 S", "-SerialNumber=6012345",
          "-FocalLength=24", "-FocalLengthIn35mmFormat=24", "-ISO=200",
          "-ExposureTime=1/500", "-FNumber=5.6", "-WhiteBalance=Auto",
          "-DateTimeOriginal=2022:08:14 09:15:30", "-OffsetTimeOriginal=-03:00",
          "-GPSLatitude=22.9519", "-GPSLatitudeRef=S",
          "-GPSLongitude=43.2105", "-GPSLongitudeRef=W",
          "-GPSAltitude=710", "-GPSAltitudeRef=0", "-Orientation#=6",
          "--", str(out)])


def still_png(out: Path) -> None:
    """A 320x240 PNG with no metadata."""
    _run([*FFMPEG, "-f", "lavfi", "-i", "testsrc2=size=320x240", "-frames:v", "1", str(out)])


def _plain_clip(out: Path) -> None:
    # The odd-name assets: a valid 0.5 s clip; only the name is hard. Each name gets its
    # own content (the colour source varies with the name) so none is a duplicate.
    hue = 60 * ODD_NAMES.index(out.name)
    _run([*FFMPEG,
          "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=0.5",
          "-vf", f"hue=h={hue}",
          "-c:v", "libx264", "-preset", "ultrafast",
          str(out)])


def empty(out: Path) -> None:
    """Zero bytes named .mp4."""
    out.write_bytes(b"")


def text_file(out: Path) -> None:
    """A text file named .mp4."""
    out.write_text("This is not a video.\nIt only has an .mp4 name.\n", encoding="utf-8")


def truncated(out: Path) -> None:
    """The first 30 % of a valid MP4 whose moov atom is at the end (so it is missing)."""
    with tempfile.TemporaryDirectory() as tmp:
        full = Path(tmp) / "full.mp4"
        _run([*FFMPEG,
              "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=1",
              "-f", "lavfi", "-i", "sine=duration=1",
              "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(full)])
        data = full.read_bytes()
    out.write_bytes(data[: int(len(data) * 0.3)])


def truncated_faststart(out: Path) -> None:
    """The first 30 % of a valid fast-start MP4: the index is complete, the media is not."""
    with tempfile.TemporaryDirectory() as tmp:
        full = Path(tmp) / "full.mp4"
        _run([*FFMPEG,
              "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=1",
              "-f", "lavfi", "-i", "sine=duration=1",
              "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac",
              "-movflags", "+faststart", str(full)])
        data = full.read_bytes()
    out.write_bytes(data[: int(len(data) * 0.3)])


def directory(out: Path) -> None:
    """A directory whose name ends in .mov (with a file inside, to tempt recursive tools)."""
    out.mkdir()
    (out / "inside.txt").write_text("not media\n", encoding="utf-8")


ODD_NAMES: tuple[str, ...] = (
    "with space.mp4",
    "ünïcødé 日本.mp4",
    "quote's \"double\".mp4",
    "new\nline.mp4",
    "-leading-dash.mp4",
)

ASSETS: dict[str, Maker] = {
    "h264_aac.mp4": h264_aac,
    "hevc.mp4": hevc,
    "hdr10.mp4": hdr10,
    "hlg.mp4": hlg,
    "vfr.mp4": vfr,
    "rotate90.mp4": rotate90,
    "rotate270.mov": rotate270,
    "multi_audio.mkv": multi_audio,
    "subs.mp4": subs_mp4,
    "no_audio.mkv": no_audio,
    "audio_only.m4a": audio_only,
    "cover_art.flac": cover_art,
    "one_frame.mp4": one_frame,
    "interlaced.mp4": interlaced,
    "camera.mov": camera_mov,
    "still.jpg": still_jpg,
    "still.png": still_png,
    "empty.mp4": empty,
    "text.mp4": text_file,
    "truncated.mp4": truncated,
    "truncated_faststart.mp4": truncated_faststart,
    "x.mov": directory,
    **{name: _plain_clip for name in ODD_NAMES},
}


# --------------------------------------------------------------------------- truth


@dataclass(frozen=True)
class Between:
    """An expected number in [lo, hi] (for values the muxer pads, like AAC priming)."""

    lo: float
    hi: float


_P3_D65 = {
    "red_xy": (0.68, 0.32), "green_xy": (0.265, 0.69), "blue_xy": (0.15, 0.06),
    "white_point_xy": (0.3127, 0.329),
}
_H264_BASIC = {"kind": "video", "video.codec": "h264", "audio_tracks.len": 0}

KNOWN: dict[str, dict[str, Any]] = {
    "h264_aac.mp4": {
        "kind": "video",
        "container.format": "mov,mp4,m4a,3gp,3g2,mj2",
        "container.duration_s": Between(1.0, 1.05),
        "container.title": "rayflow fixture",
        "container.data_tracks": 0,
        "video.codec": "h264", "video.profile": "Constrained Baseline", "video.level": "3",
        "video.pix_fmt": "yuv420p", "video.bit_depth": 8, "video.chroma_subsampling": "4:2:0",
        "video.scan_type": "progressive",
        "video.width": 320, "video.height": 240,
        "video.display_width": 320, "video.display_height": 240,
        "video.display_aspect_ratio": "4:3", "video.rotation": 0,
        "video.fps": 25.0, "video.r_frame_rate": "25/1", "video.is_vfr": False,
        "video.frame_count": 25, "video.duration_s": 1.0,
        "video.gop_size": 10, "video.keyframe_interval_s": 0.4,
        "video.color.space": "bt709", "video.color.primaries": "bt709",
        "video.color.transfer": "bt709", "video.color.range": "limited",
        "video.hdr.is_hdr": False, "video.hdr.format": None,
        "audio_tracks.len": 1,
        "audio_tracks.0.codec": "aac", "audio_tracks.0.profile": "LC",
        "audio_tracks.0.channels": 2, "audio_tracks.0.channel_layout": "stereo",
        "audio_tracks.0.sample_rate": 48000, "audio_tracks.0.language": None,
        "audio_tracks.0.default": True,
        "subtitle_tracks.len": 0,
        "camera.make": None, "capture.gps": None, "capture.created_at": None,
    },
    "hevc.mp4": {
        "kind": "video", "video.codec": "hevc", "video.profile": "Main",
        "video.pix_fmt": "yuv420p", "video.bit_depth": 8,
        "video.gop_size": 12, "video.keyframe_interval_s": 0.48,
        "video.hdr.is_hdr": False, "audio_tracks.len": 0,
    },
    "hdr10.mp4": {
        "kind": "video", "video.codec": "hevc", "video.profile": "Main 10",
        "video.pix_fmt": "yuv420p10le", "video.bit_depth": 10,
        "video.color.transfer": "smpte2084", "video.color.primaries": "bt2020",
        "video.color.space": "bt2020nc",
        "video.hdr.is_hdr": True, "video.hdr.format": "HDR10",
        "video.hdr.max_cll_nits": 1000, "video.hdr.max_fall_nits": 400,
        "video.hdr.mastering_display.min_luminance_nits": 0.0001,
        "video.hdr.mastering_display.max_luminance_nits": 1000.0,
        **{f"video.hdr.mastering_display.{k}": v for k, v in _P3_D65.items()},
    },
    "hlg.mp4": {
        "kind": "video", "video.codec": "hevc", "video.bit_depth": 10,
        "video.color.transfer": "arib-std-b67", "video.color.primaries": "bt2020",
        "video.hdr.is_hdr": True, "video.hdr.format": "HLG",
        "video.hdr.mastering_display": None, "video.hdr.max_cll_nits": None,
    },
    "vfr.mp4": {
        "kind": "video", "video.is_vfr": True, "video.frame_count": 30,
        "video.fps": 18.0, "video.duration_s": Between(1.6, 1.7),
    },
    "rotate90.mp4": {
        "kind": "video", "video.rotation": 90, "video.width": 320, "video.height": 240,
        "video.display_width": 240, "video.display_height": 320,
        "video.display_aspect_ratio": "4:3",
    },
    "rotate270.mov": {
        "kind": "video", "video.rotation": 270,
        "video.display_width": 240, "video.display_height": 320,
        "container.format": "mov,mp4,m4a,3gp,3g2,mj2",
    },
    "multi_audio.mkv": {
        "kind": "video", "container.format": "matroska,webm",
        "video.duration_s": Between(0.95, 1.05), "video.frame_count": 25,
        "audio_tracks.len": 2,
        "audio_tracks.0.index": 1, "audio_tracks.0.language": "eng",
        "audio_tracks.0.title": "English stereo", "audio_tracks.0.default": True,
        "audio_tracks.0.channels": 2, "audio_tracks.0.sample_rate": 48000,
        "audio_tracks.1.index": 2, "audio_tracks.1.language": "fra",
        "audio_tracks.1.title": "Français mono", "audio_tracks.1.default": False,
        "audio_tracks.1.channels": 1, "audio_tracks.1.channel_layout": "mono",
        "audio_tracks.1.sample_rate": 44100,
        "subtitle_tracks.len": 1,
        "subtitle_tracks.0.index": 3, "subtitle_tracks.0.codec": "subrip",
        "subtitle_tracks.0.language": "deu", "subtitle_tracks.0.title": "Deutsch forced",
        "subtitle_tracks.0.forced": True,
    },
    "subs.mp4": {
        "kind": "video", "audio_tracks.len": 1, "audio_tracks.0.channels": 1,
        "subtitle_tracks.len": 1, "subtitle_tracks.0.codec": "mov_text",
        "subtitle_tracks.0.language": "spa", "subtitle_tracks.0.forced": False,
        "subtitle_tracks.0.default": True,
    },
    "no_audio.mkv": {
        **_H264_BASIC, "container.format": "matroska,webm", "video.gop_size": 5,
        "video.duration_s": Between(0.95, 1.05), "video.frame_count": 25,
        "subtitle_tracks.len": 0,
    },
    "audio_only.m4a": {
        "kind": "audio", "video": None, "container.duration_s": Between(0.95, 1.1),
        "audio_tracks.len": 1, "audio_tracks.0.codec": "aac", "audio_tracks.0.channels": 1,
        "audio_tracks.0.sample_rate": 44100, "audio_tracks.0.language": "eng",
    },
    "cover_art.flac": {
        "kind": "audio", "video": None, "container.title": "Fixture tone",
        "audio_tracks.len": 1, "audio_tracks.0.codec": "flac", "audio_tracks.0.channels": 2,
        "audio_tracks.0.bit_depth": 16, "audio_tracks.0.sample_rate": 44100,
    },
    "one_frame.mp4": {**_H264_BASIC, "video.frame_count": 1, "video.width": 320},
    "interlaced.mp4": {
        "kind": "video", "video.scan_type": "interlaced", "video.field_order": "tff",
    },
    "camera.mov": {
        "kind": "video",
        "camera.make": "Canon", "camera.model": "EOS R5", "camera.software": "Firmware 1.8.1",
        "camera.lens": "RF50mm F1.8 STM", "camera.serial": "012345678",
        "camera.focal_length_mm": 50.0, "camera.focal_length_35mm": 80.0,
        "camera.focal_category": "long", "camera.iso": 800, "camera.shutter_s": 0.004,
        "camera.aperture_f": 2.8, "camera.white_balance": "Manual",
        "capture.created_at": datetime(2021, 6, 1, 12, 30, tzinfo=timezone(timedelta(hours=2))),
        "capture.gps.lat": 48.8584, "capture.gps.lon": 2.2945, "capture.gps.alt": 35.5,
    },
    "still.jpg": {
        "kind": "image", "container.duration_s": None,
        "video.codec": "mjpeg", "video.width": 320, "video.height": 240,
        "video.rotation": 90, "video.display_width": 240, "video.display_height": 320,
        "video.fps": None, "video.frame_count": 1,
        "camera.make": "NIKON CORPORATION", "camera.model": "NIKON Z 6",
        "camera.software": "Ver.3.40", "camera.lens": "NIKKOR Z 24-70mm f/4 S",
        "camera.serial": "6012345", "camera.focal_length_mm": 24.0,
        "camera.focal_length_35mm": 24.0, "camera.focal_category": "wide",
        "camera.iso": 200, "camera.shutter_s": 0.002, "camera.aperture_f": 5.6,
        "camera.white_balance": "Auto",
        "capture.created_at": datetime(2022, 8, 14, 9, 15, 30,
                                       tzinfo=timezone(timedelta(hours=-3))),
        "capture.gps.lat": -22.9519, "capture.gps.lon": -43.2105, "capture.gps.alt": 710.0,
    },
    "still.png": {
        "kind": "image", "video.codec": "png", "video.width": 320, "video.fps": None,
        "camera.make": None, "capture.gps": None,
    },
    **{name: {**_H264_BASIC, "video.width": 160, "video.height": 120} for name in ODD_NAMES},
}

BAD: dict[str, str] = {
    "empty.mp4": "empty file",
    "text.mp4": "not a media file: it is text",
    "truncated.mp4": "moov atom not found",
    "truncated_faststart.mp4": "truncated",
    "x.mov": "is a directory",
}


# --------------------------------------------------------------------------- building


def _stamp(name: str) -> str:
    # The maker's own source plus the helpers it may call; editing a recipe rebuilds it.
    parts = [CORPUS_VERSION, name, inspect.getsource(ASSETS[name]), " ".join(FFMPEG),
             " ".join(EXIFTOOL_WRITE), inspect.getsource(_rotated), inspect.getsource(_plain_clip)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _stamp_path(directory: Path, name: str) -> Path:
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return directory / ".stamps" / digest


def make_asset(directory: Path, name: str) -> Path:
    """Build asset ``name`` into ``directory`` unless a current copy is there; return its path."""
    directory = Path(directory).absolute()
    target = directory / name
    stamp = _stamp_path(directory, name)
    want = _stamp(name)
    if (target.exists() or target.is_dir()) and stamp.is_file() and stamp.read_text() == want:
        return target
    stamp.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory, prefix=".build-") as tmp:
        built = Path(tmp) / name
        ASSETS[name](built)
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(built, target)
    stamp.write_text(want)
    log.debug("built fixture %s", target)
    return target


def make_corpus(
    directory: Path, names: Iterable[str] | None = None, *, workers: int = 4
) -> dict[str, Path]:
    """Build (or reuse) the named assets, all by default, in parallel; return {name: path}."""
    directory = Path(directory).absolute()
    directory.mkdir(parents=True, exist_ok=True)
    wanted = list(ASSETS) if names is None else list(names)
    unknown = [n for n in wanted if n not in ASSETS]
    if unknown:
        raise KeyError(f"unknown fixture asset(s): {unknown}")
    with ThreadPoolExecutor(max_workers=workers) as pool:
        paths = list(pool.map(lambda n: make_asset(directory, n), wanted))
    return dict(zip(wanted, paths, strict=True))


def fact(obj: Any, dotted: str) -> Any:
    """Walk ``obj`` along a dotted path: attributes, dict keys, list indexes, ``.len``."""
    current = obj
    for part in dotted.split("."):
        if part == "len":
            current = len(current)
        elif current is None:
            return None
        elif isinstance(current, list | tuple) and part.isdigit():
            index = int(part)
            current = current[index] if index < len(current) else _Missing(dotted)
        elif isinstance(current, dict):
            current = current.get(part, _Missing(dotted))
        else:
            current = getattr(current, part, _Missing(dotted))
        if isinstance(current, _Missing):
            return current
    return current


@dataclass(frozen=True)
class _Missing:
    """The path does not exist on the object (never equal to an expected value)."""

    path: str


def matches(actual: Any, expected: Any) -> bool:
    """The comparison every truth table uses: floats within 1 %, ``Between`` ranges,
    tuples element-wise, everything else by equality (so ``None`` must be ``None``)."""
    if isinstance(actual, _Missing):
        return False
    if isinstance(expected, Between):
        return isinstance(actual, int | float) and expected.lo <= actual <= expected.hi
    if isinstance(expected, float) and not isinstance(actual, bool):
        return isinstance(actual, int | float) and math.isclose(
            actual, expected, rel_tol=0.01, abs_tol=1e-6)
    if isinstance(expected, tuple) and isinstance(actual, tuple | list):
        return len(actual) == len(expected) and all(
            matches(a, e) for a, e in zip(actual, expected, strict=True))
    if isinstance(expected, datetime) and isinstance(actual, datetime):
        return actual == expected and actual.utcoffset() == expected.utcoffset()
    if isinstance(expected, bool) or expected is None:
        return actual is expected
    return bool(actual == expected) and not isinstance(actual, bool)


def describe(known: dict[str, Any]) -> str:
    """The truth table as JSON-ish text, for failure messages."""
    return json.dumps({k: repr(v) for k, v in known.items()}, indent=1, ensure_ascii=False)


DEMO: tuple[str, ...] = (
    "h264_aac.mp4", "hevc.mp4", "hdr10.mp4", "hlg.mp4", "vfr.mp4", "rotate90.mp4",
    "multi_audio.mkv", "subs.mp4", "no_audio.mkv", "camera.mov", "interlaced.mp4",
)
"""The valid assets ``run.sh`` ingests as its sample footage."""


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.media DIR [NAME...]``: build the demo footage (or the named assets)."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if not args:
        sys.stderr.write("usage: python -m tests.media DIR [ASSET ...]\n")
        return 2
    paths = make_corpus(Path(args[0]), args[1:] or DEMO)
    sys.stderr.write(f"sample footage: {len(paths)} clips in {Path(args[0]).absolute()}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
