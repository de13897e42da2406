"""Frame sampling on real clips: exact frames (not keyframes), rotation, fallbacks, errors.

Each asset is made by the ffmpeg argv list beside it (tiny, ultrafast); real footage
comes from ../shared/media (facts in its MANIFEST.md).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from rayflow.config import SampleSettings
from rayflow.media import decode
from rayflow.media.decode import Frames, decode_frames, even_indices, probe_video_stream
from rayflow.media.tools import ToolError, ToolTimeout
from rayflow.stages.frames import sample_frames

FPS = 25
RAMP_FRAMES = 30
Y_STEP = 7


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True, timeout=60)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("frames")
    paths = {name: out / name for name in (
        "ramp.mp4", "ramp.mkv", "ramp.ts", "one.mp4", "base.mp4", "rot90.mp4", "rot180.mp4",
        "tone.wav", "junk.mp4", "anamorphic.mp4",
    )}
    # Frame k is a flat grey with Y' = 16 + 7k (30 frames, 25 fps), one keyframe (-g 50)
    # and B-frames (IBBP..., not lossless: x264 drops B-frames at -qp 0): decoding the right
    # frame, not a nearby keyframe, is visible in the pixels.
    _ffmpeg("-f", "lavfi", "-i",
            f"color=black:size=64x48:rate={FPS}:duration=1.2,geq=lum='16+N*{Y_STEP}':cb=128:cr=128",
            "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-bf", "2", "-crf", "10",
            "-pix_fmt", "yuv420p", str(paths["ramp.mp4"]))
    # The same frames in Matroska and in MPEG-TS (TS gets a ~1.4 s start offset).
    _ffmpeg("-i", str(paths["ramp.mp4"]), "-c", "copy", str(paths["ramp.mkv"]))
    _ffmpeg("-i", str(paths["ramp.mp4"]), "-c", "copy", "-f", "mpegts", str(paths["ramp.ts"]))
    # A single-frame video.
    _ffmpeg("-f", "lavfi", "-i", "color=gray:size=64x48:rate=25", "-frames:v", "1",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(paths["one.mp4"]))
    # An asymmetric picture, then the same bytes with a display matrix. NB ffmpeg 5.1 writes
    # `rotate=90` as a counter-clockwise matrix (ffprobe rotation 90 = 270 clockwise).
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=96x54:rate=10:duration=0.5", "-c:v", "libx264",
            "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(paths["base.mp4"]))
    for angle in (90, 180):
        _ffmpeg("-i", str(paths["base.mp4"]), "-c", "copy", "-metadata:s:v:0", f"rotate={angle}",
                str(paths[f"rot{angle}.mp4"]))
    # Non-square pixels: 64x48 coded, SAR 2:1, so 128x48 on screen.
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10:duration=0.3", "-vf", "setsar=2/1",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            str(paths["anamorphic.mp4"]))
    # Audio only.
    _ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=0.2", str(paths["tone.wav"]))
    paths["junk.mp4"].write_bytes(b"not a video at all " * 64)
    return paths


def _ramp_index(frames: Frames) -> list[int]:
    """Which ramp frame each decoded image is, from its grey level (RGB = (Y'-16)*255/219)."""
    grey = frames.images.reshape(frames.count, -1).mean(axis=1)
    return [round(g * 219 / 255 / Y_STEP) for g in grey]


@pytest.fixture(params=["decord", "ffmpeg-seek", "ffmpeg-in-order"])
def decoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with decord, then with decord broken so the ffmpeg fallback runs,
    once seeking per target and once decoding in order. Returns the decoder's name."""
    mode = str(request.param)
    if mode.startswith("ffmpeg"):
        def broken(*_args: object, **_kwargs: object) -> Frames:
            raise RuntimeError("decord disabled by the test")

        monkeypatch.setattr(decode, "_decode_decord", broken)
        threshold = 0 if mode == "ffmpeg-seek" else 10**9
        monkeypatch.setattr(decode, "SEEK_MIN_FRAMES_PER_TARGET", threshold)
    return mode.split("-")[0]


def _decode(path: Path, **overrides: object) -> Frames:
    kwargs: dict[str, object] = {
        "timestamps_s": None, "count": 5, "max_side": 512, "rotation": 0, "timeout_s": 60.0,
    }
    kwargs.update(overrides)
    return decode_frames(path, **kwargs)  # type: ignore[arg-type]


def test_even_indices_centres_segments() -> None:
    assert even_indices(30, 5).tolist() == [3, 9, 15, 21, 27]
    assert even_indices(1, 12).tolist() == [0]
    assert even_indices(4, 10).tolist() == [0, 1, 2, 3]
    assert even_indices(0, 3).tolist() == []


@pytest.mark.parametrize("name", ["ramp.mp4", "ramp.mkv"])
def test_exact_frames_not_keyframes(clips: dict[str, Path], decoder: str, name: str) -> None:
    frames = _decode(clips[name], count=5)
    assert frames.decoder == decoder
    assert _ramp_index(frames) == [3, 9, 15, 21, 27]
    np.testing.assert_allclose(frames.timestamps_s, np.array([3, 9, 15, 21, 27]) / FPS, atol=1e-3)


def test_mpegts_is_decoded_in_order_and_timed_from_its_first_frame(clips: dict[str, Path]) -> None:
    assert probe_video_stream(clips["ramp.ts"], timeout_s=30).start_s > 1.0
    frames = _decode(clips["ramp.ts"], count=5)
    assert frames.decoder == "ffmpeg"  # decord's TS index maps to the wrong frames
    assert _ramp_index(frames) == [3, 9, 15, 21, 27]
    np.testing.assert_allclose(frames.timestamps_s, np.array([3, 9, 15, 21, 27]) / FPS, atol=1e-3)


def test_more_frames_asked_than_exist_gives_each_once(clips: dict[str, Path], decoder: str) -> None:
    frames = _decode(clips["ramp.mp4"], count=50)
    assert _ramp_index(frames) == list(range(RAMP_FRAMES))
    assert np.all(np.diff(frames.timestamps_s) > 0)


def test_explicit_timestamps_pick_nearest_frames(clips: dict[str, Path], decoder: str) -> None:
    frames = _decode(clips["ramp.mp4"], timestamps_s=[0.0, 0.49, 0.515, 0.52, 0.89])
    assert _ramp_index(frames) == [0, 12, 13, 22]  # 0.515 and 0.52 are both frame 13


def test_one_frame_video(clips: dict[str, Path], decoder: str) -> None:
    frames = _decode(clips["one.mp4"], count=12)
    assert frames.count == 1
    assert frames.timestamps_s.tolist() == [0.0]
    assert frames.images.shape == (1, 48, 64, 3)


def test_downscale_keeps_aspect(clips: dict[str, Path], decoder: str) -> None:
    frames = _decode(clips["base.mp4"], count=2, max_side=48)
    assert frames.images.shape == (2, 27, 48, 3)
    assert _decode(clips["base.mp4"], count=1, max_side=4000).images.shape == (1, 54, 96, 3)


def test_non_square_pixels_are_stretched(clips: dict[str, Path], decoder: str) -> None:
    assert _decode(clips["anamorphic.mp4"], count=1).images.shape == (1, 48, 128, 3)
    assert _decode(clips["anamorphic.mp4"], count=1, max_side=64).images.shape == (1, 24, 64, 3)


@pytest.mark.parametrize("name", ["rot90.mp4", "rot180.mp4"])
def test_rotation_gives_display_orientation(clips: dict[str, Path], decoder: str, name: str) -> None:
    stream = probe_video_stream(clips[name], timeout_s=30)
    base = _decode(clips["base.mp4"], count=3, max_side=4000).images.astype(int)
    frames = _decode(clips[name], count=3, max_side=4000, rotation=stream.rotation)
    assert frames.images.shape[1:3] == ((96, 54) if stream.rotation in (90, 270) else (54, 96))
    # rot90 turns counter-clockwise, so clockwise degrees are negative quarter turns.
    expected = np.rot90(base, k=-stream.rotation // 90, axes=(1, 2))
    assert np.abs(frames.images.astype(int) - expected).mean() < 1.0


def test_real_rotated_phone_clip(shared_media: Path) -> None:
    frames = _decode(shared_media / "with-gps.mov", count=4, rotation=90)
    assert frames.decoder == "decord"
    assert frames.images.shape == (4, 512, 288, 3)  # 568x320 coded, 90 clockwise


def test_av1_falls_back_to_ffmpeg(shared_media: Path) -> None:
    frames = _decode(shared_media / "sample_av1.mp4", count=12)
    assert frames.decoder == "ffmpeg"
    assert frames.images.shape == (12, 341, 512, 3)
    assert 0 <= frames.timestamps_s[0] < frames.timestamps_s[-1] < 1.1
    assert frames.images.std() > 10  # real pictures, not a blank buffer


def test_real_ts_timestamps_start_at_the_stream(shared_media: Path) -> None:
    frames = _decode(shared_media / "bbb_2500ms.ts", count=12)
    assert frames.decoder == "ffmpeg"
    assert frames.count == 12
    assert 0 <= frames.timestamps_s[0] < 0.3 and frames.timestamps_s[-1] < 2.5


def test_no_video_stream_is_a_tool_error(clips: dict[str, Path]) -> None:
    with pytest.raises(ToolError, match="no video stream") as info:
        _decode(clips["tone.wav"])
    assert "tone.wav" in str(info.value)


def test_junk_is_a_tool_error_naming_the_file(clips: dict[str, Path]) -> None:
    with pytest.raises(ToolError) as info:
        _decode(clips["junk.mp4"])
    assert "junk.mp4" in str(info.value)


def test_both_decoders_failing_names_both(
    clips: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    def decord_fails(*_args: object, **_kwargs: object) -> Frames:
        raise RuntimeError("cannot find video stream")

    def ffmpeg_fails(path: Path, *_args: object, **_kwargs: object) -> Frames:
        raise ToolError("ffmpeg", path, "exit 1: Invalid data found")

    monkeypatch.setattr(decode, "_decode_decord", decord_fails)
    monkeypatch.setattr(decode, "_decode_ffmpeg", ffmpeg_fails)
    with pytest.raises(ToolError) as info:
        _decode(clips["ramp.mp4"])
    message = str(info.value)
    assert "decord" in message and "cannot find video stream" in message
    assert "ffmpeg: exit 1: Invalid data found" in message and "ramp.mp4" in message


def test_deadline_is_a_timeout(clips: dict[str, Path]) -> None:
    with pytest.raises(ToolTimeout):
        _decode(clips["ramp.mp4"], timeout_s=1e-4)


def test_frames_are_read_only_and_repr_shows_shapes(clips: dict[str, Path]) -> None:
    frames = _decode(clips["ramp.mp4"], count=3)
    assert repr(frames) == (
        "Frames(images=uint8[3, 48, 64, 3], timestamps_s=float64[3], decoder='decord')"
    )
    assert not frames.images.flags.writeable
    with pytest.raises(ValueError):
        frames.images[0, 0, 0, 0] = 1


def test_sample_stage_reports_what_it_decoded(clips: dict[str, Path]) -> None:
    every = SampleSettings(count=4, max_side=32, min_interval_s=0)  # 4 of the ramp's 1.2 s
    frames, info = sample_frames(clips["ramp.mp4"], rotation=0, settings=every, timeout_s=60, strip=False)
    assert info.decoder == frames.decoder == "decord"
    assert frames.strip is None
    with_strip, info = sample_frames(clips["ramp.mp4"], rotation=0, settings=every, timeout_s=60)
    # One ffmpeg pass decodes every frame: the sampled ones, and all of them at 48x27 for shots.
    assert info.decoder == with_strip.decoder == "ffmpeg"
    assert with_strip.strip is not None and with_strip.strip.count > with_strip.count
    np.testing.assert_allclose(with_strip.timestamps_s, frames.timestamps_s)
    assert (info.count, info.width, info.height) == (4, 32, 24)
    assert info.timestamps_s == pytest.approx(frames.timestamps_s.tolist())


@pytest.mark.parametrize(("interval", "expected"), [(0.5, [7, 22]), (0.3, [3, 11, 18, 26]), (0.0, None)])
def test_a_short_clip_gets_no_more_than_one_frame_per_interval(
        clips: dict[str, Path], interval: float, expected: list[int] | None) -> None:
    """The ramp runs 1.2 s (30 frames at 25 fps): 12 frames asked, one per ``min_interval_s`` at
    most, still evenly spaced (segment centres); 0 turns the cap off."""
    frames, info = sample_frames(clips["ramp.mp4"], rotation=0, timeout_s=60, strip=False,
                                 settings=SampleSettings(count=12, max_side=32, min_interval_s=interval))
    indices = _ramp_index(frames)
    assert indices == (expected if expected is not None else even_indices(RAMP_FRAMES, 12).tolist())
    assert info.count == len(indices)


def test_hdr_frames_are_tone_mapped_like_the_proxy(shared_media: Path) -> None:
    """hlg10-color-test.mp4 (HEVC HLG, BT.2020): the sampled frames and the shot strip go
    through the proxy's own tone-map chain, so they look like the proxy, not flat and
    hue-shifted (as decoded without it: 33 code values off the proxy's look on average)."""
    from rayflow.config import ProxySettings
    from rayflow.media.hdr import can_tonemap, hdr_tonemap_filters
    from rayflow.stages.proxy import ProxySource, video_filters

    if not can_tonemap():
        pytest.skip("this ffmpeg has no zscale/tonemap")
    source = ProxySource(width=1920, height=1080, is_hdr=True, transfer="arib-std-b67")
    assert ",".join(hdr_tonemap_filters("arib-std-b67")[1:]) in video_filters(source, ProxySettings(), "zscale")
    path = shared_media / "hlg10-color-test.mp4"
    frames = decode_frames(path, timestamps_s=None, count=2, max_side=256, rotation=0, timeout_s=60, strip=True)
    assert frames.tone_mapped == "arib-std-b67" and frames.strip is not None and frames.strip.count == 9
    width, height = frames.width, frames.height
    stamps = frames.timestamps_s.tolist()
    chain = ",".join([f"scale={width}:{height}", *hdr_tonemap_filters("arib-std-b67"), "format=rgb24"])
    flat_chain = f"scale={width}:{height},format=rgb24"
    for i, t in enumerate(stamps):
        looks = []
        for vf in (chain, flat_chain):
            argv = ["ffmpeg", "-v", "error", "-i", str(path), "-vf", f"select='gte(t,{t - 0.01:.4f})',{vf}",
                    "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
            raw = subprocess.run(argv, capture_output=True, check=True, timeout=60).stdout
            looks.append(np.frombuffer(raw, np.uint8).reshape(height, width, 3).astype(int))
        mapped, flat = (float(np.abs(frames.images[i] - look).mean()) for look in looks)
        assert mapped < 6 and flat > 20, (mapped, flat)


def test_a_recording_with_no_length_in_its_headers_is_sampled_over_its_whole_length(tmp_path: Path) -> None:
    """Matroska in live mode (as a browser's MediaRecorder writes WebM) has no Duration: ffprobe's
    quick look gives no frame count, and the sample stage failed the file ("no frame count or
    duration to place frames by"). The probe stage measures the length by a demux; sampling now
    places its frames by that."""
    from rayflow.stages.base import FileItem
    from rayflow.stages.frames import SampleStage
    from rayflow.stages.probe import probe

    clip = tmp_path / "live.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=4",
                    "-c:v", "libx264", "-preset", "ultrafast", "-f", "matroska", "-live", "1", str(clip)],
                   check=True, timeout=60)
    assert probe_video_stream(clip, timeout_s=30).frame_count is None  # what made sampling fail
    item = FileItem(path=str(clip), clip_id="live", out_dir=tmp_path, probe=probe(clip))
    sample = SampleStage(SampleSettings(), timeout_s=60).process(item)
    assert sample.count == 8  # 4 s at one frame per 0.5 s
    assert sample.timestamps_s[0] < 0.5 and sample.timestamps_s[-1] > 3.4  # over the whole recording
    assert item.frames is not None and item.frames.strip is not None and item.frames.strip.count == 100


def test_a_heic_photo_ffmpeg_cannot_open_is_read_upright_by_pillow_and_its_best_thumbnail_written(
        tmp_path: Path) -> None:
    """ffmpeg 5/6 has no HEIF demuxer; the sample stage reads the photo with Pillow + pillow-heif,
    turned upright by its rotation, and the best thumbnail is the whole photo, written by Pillow."""
    import pillow_heif
    from PIL import Image

    from rayflow.stages.select import ThumbnailSelector

    pillow_heif.register_heif_opener()
    picture = np.zeros((240, 320, 3), np.uint8)
    picture[:, :160] = (255, 0, 0)  # left half red: the top half once turned 90 degrees clockwise
    exif = Image.new("RGB", (1, 1)).getexif()
    exif[0x0112] = 6  # EXIF orientation: rotate 90 CW to display, as a phone held upright writes it
    photo = tmp_path / "IMG_0001.HEIC"
    Image.fromarray(picture).save(photo, exif=exif.tobytes(), quality=90)
    if subprocess.run(["ffprobe", "-v", "error", str(photo)], capture_output=True).returncode == 0:
        pytest.skip("this ffmpeg opens HEIF itself (ffmpeg >= 7)")

    frames, info = sample_frames(photo, rotation=0, settings=SampleSettings(max_side=160), timeout_s=30,
                                 still=True)
    assert info.decoder == frames.decoder == "pillow" and frames.note is None
    assert frames.images.shape == (1, 160, 120, 3)  # portrait, longest side 160
    top, bottom = frames.images[0, :70].mean(axis=(0, 1)), frames.images[0, 90:].mean(axis=(0, 1))
    assert top[0] > 200 and top[1] < 60 and bottom.max() < 60, (top, bottom)

    best = ThumbnailSelector().select(photo, frames, shots=None, faces=None, out_dir=tmp_path / "out",
                                      timeout_s=30)
    assert len(best) == 1 and best[0].primary and (best[0].width, best[0].height) == (240, 320)
    with Image.open(best[0].path) as written:
        assert written.format == "JPEG" and written.size == (240, 320)

    broken = tmp_path / "broken.heic"
    broken.write_bytes(b"\0\0\0\x18ftypheic" + bytes(64))
    with pytest.raises(ToolError, match="pillow.*cannot read it"):
        sample_frames(broken, rotation=0, settings=SampleSettings(), timeout_s=30, still=True)
    # Pillow opens a DNG/TIFF raw at its preview IFD: never taken for the photo
    from rayflow.media.still_image import read_still

    raw = tmp_path / "IMG_0002.dng"
    Image.fromarray(np.full((8, 8, 3), 255, np.uint8)).save(raw, format="TIFF")
    with pytest.raises(ValueError, match="only partly"):
        read_still(raw, max_side=512)
