"""Audio extraction: 16 kHz mono float32 from the chosen stream, one ffmpeg call, clear errors.

Each asset is made by the ffmpeg argv list beside it (lavfi sources, tiny); real
speech comes from ../shared/media/jfk.flac (facts in its MANIFEST.md).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from rayflow.media.audio import SAMPLE_RATE_HZ, extract_audio
from rayflow.media.tools import ToolError, ToolTimeout

FFMPEG = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]


def _ffmpeg(*args: str) -> None:
    subprocess.run([*FFMPEG, *args], check=True, timeout=60, capture_output=True)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("audio")
    paths = {name: out / name for name in ("two_tracks.mkv", "-leading-dash.mkv", "video_only.mp4", "empty.wav")}
    # Stream 0 video; stream 1 a 440 Hz stereo tone at 48 kHz (amplitude 1/8); stream 2
    # digital silence. PCM, so the length is exact (no codec priming): 2 s.
    _ffmpeg("-f", "lavfi", "-i", "color=c=black:size=64x48:rate=10:duration=2",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=2",
            "-f", "lavfi", "-i", "anullsrc=r=44100:cl=mono",
            "-filter_complex", "[1:a]pan=stereo|c0=c0|c1=c0[tone]",
            "-map", "0:v", "-map", "[tone]", "-map", "2:a", "-t", "2",
            "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "pcm_s16le", str(paths["two_tracks.mkv"]))
    shutil.copyfile(paths["two_tracks.mkv"], paths["-leading-dash.mkv"])
    # Video without any audio stream.
    _ffmpeg("-f", "lavfi", "-i", "color=c=black:size=64x48:rate=10:duration=1",
            "-c:v", "libx264", "-preset", "ultrafast", str(paths["video_only.mp4"]))
    # A WAV header with no samples: a zero-length audio stream.
    _ffmpeg("-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-frames:a", "0", "-c:a", "pcm_s16le",
            str(paths["empty.wav"]))
    return paths


def _dominant_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(samples.size, 1 / SAMPLE_RATE_HZ)[int(np.argmax(spectrum))])


def test_first_audio_stream_is_16k_mono_float32(clips: dict[str, Path]) -> None:
    samples = extract_audio(clips["two_tracks.mkv"], stream_index=None, timeout_s=30)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert samples.size == pytest.approx(2 * SAMPLE_RATE_HZ, rel=0.01)
    assert _dominant_hz(samples) == pytest.approx(440, abs=2)  # resampled, not re-pitched
    # lavfi sine has amplitude 1/8; ffmpeg's stereo->mono downmix adds L and R at -3 dB each.
    assert float(np.abs(samples).max()) == pytest.approx(0.125 * 2**0.5, rel=0.05)
    assert not samples.flags.writeable


def test_stream_index_picks_the_track(clips: dict[str, Path]) -> None:
    tone = extract_audio(clips["two_tracks.mkv"], stream_index=1, timeout_s=30)
    silence = extract_audio(clips["two_tracks.mkv"], stream_index=2, timeout_s=30)
    assert float(np.abs(tone).max()) > 0.1
    assert silence.size == pytest.approx(2 * SAMPLE_RATE_HZ, rel=0.01)
    assert float(np.abs(silence).max()) == 0.0


def test_max_duration_keeps_the_start(clips: dict[str, Path]) -> None:
    samples = extract_audio(clips["two_tracks.mkv"], stream_index=1, timeout_s=30, max_duration_s=0.5)
    assert samples.size == pytest.approx(0.5 * SAMPLE_RATE_HZ, abs=16)  # within 1 ms (resampler edge)
    assert extract_audio(clips["two_tracks.mkv"], stream_index=1, timeout_s=30, max_duration_s=0).size == 0


def test_zero_length_audio_is_empty(clips: dict[str, Path]) -> None:
    samples = extract_audio(clips["empty.wav"], stream_index=None, timeout_s=30)
    assert samples.size == 0 and samples.dtype == np.float32


def test_name_starting_with_dash_is_a_file(clips: dict[str, Path]) -> None:
    samples = extract_audio(clips["-leading-dash.mkv"], stream_index=1, timeout_s=30)
    assert samples.size == pytest.approx(2 * SAMPLE_RATE_HZ, rel=0.01)


def test_real_speech_file(shared_media: Path) -> None:
    # jfk.flac: FLAC stereo 44.1 kHz, 11.0 s.
    samples = extract_audio(shared_media / "jfk.flac", stream_index=0, timeout_s=30)
    assert samples.size == pytest.approx(11.0 * SAMPLE_RATE_HZ, rel=0.01)
    assert float(np.abs(samples).max()) > 0.3


@pytest.mark.parametrize(
    ("name", "stream_index", "phrase"),
    [
        ("video_only.mp4", None, "no audio stream"),
        ("video_only.mp4", 0, "stream 0 is not an audio stream"),
        ("two_tracks.mkv", 9, "no stream with index 9"),
        ("missing.mkv", None, "ffmpeg on"),
    ],
)
def test_errors_name_the_tool_file_and_cause(clips: dict[str, Path], name: str, stream_index: int | None,
                                             phrase: str) -> None:
    path = clips.get(name, clips["two_tracks.mkv"].parent / name)
    with pytest.raises(ToolError, match=phrase) as info:
        extract_audio(path, stream_index=stream_index, timeout_s=30)
    assert not isinstance(info.value, ToolTimeout)
    assert name in str(info.value)


def test_timeout_is_transient(clips: dict[str, Path]) -> None:
    with pytest.raises(ToolTimeout):
        extract_audio(clips["two_tracks.mkv"], stream_index=None, timeout_s=1e-4)


def test_bad_arguments_raise_value_error(clips: dict[str, Path]) -> None:
    with pytest.raises(ValueError):
        extract_audio(clips["two_tracks.mkv"], stream_index=-1, timeout_s=30)
    with pytest.raises(ValueError):
        extract_audio(clips["two_tracks.mkv"], stream_index=None, timeout_s=30, max_duration_s=-1)
