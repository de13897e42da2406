"""``rayflow show``'s fact rendering (rayflow/cli/facts_view.py) on records built from real
corpus files (tests/corpus/files): every fact with readable units, never 'None'."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from rayflow.cli.facts_view import bitrate_text, duration_text, fps_text, shutter_text
from rayflow.cli.render import record_view
from rayflow.record import ClipRecord, FileInfo, LogProfile
from rayflow.stages.probe import probe
from tests.corpus.facts import corpus_file


def _shown(name: str, **video_color: object) -> str:
    result = probe(corpus_file(name))
    record = ClipRecord(clip_id="0" * 36, file=FileInfo(path=str(corpus_file(name)), name=name, size_bytes=1,
                                                        checksum="0"), **result.record_fields())
    if video_color and record.video is not None:
        record.video.color = record.video.color.model_copy(update=video_color)
    console = Console(record=True, width=200, file=io.StringIO())
    console.print(record_view(record))
    return console.export_text()


def test_video_facts_timecode_and_log_profile_are_shown_readably() -> None:
    profile = LogProfile(name="S-Log3", raw="s-log3-cine", gamut="s-gamut3-cine", source="C0001M01.XML")
    text = _shown("karma.mp4", log_profile=profile)
    assert "29.97 fps" in text and "29.97002997" not in text
    assert "19:26:48:04 · 29.97 fps non-drop (ffprobe:tmcd)" in text
    assert "1/205 s" in text and "software HD5.02.02.00.00" in text
    assert "S-Log3 (s-log3-cine; gamut s-gamut3-cine; from C0001M01.XML)" in text
    assert "12.08 s" in text and "854x480" in text
    assert "None" not in text


def test_audio_file_with_bwf_timecode_and_reel() -> None:
    text = _shown("SoundDevices_702T_A101_1.WAV")
    assert "12:39:59:00 · 23.976 fps non-drop (bwf:time_reference)" in text
    assert "18Y12M31" in text and "48 kHz" in text and "24-bit" in text
    assert "None" not in text


def test_unknown_parts_are_left_out_not_printed_as_none() -> None:
    text = _shown("chrome57.webm")  # no colour tags, no camera, no timecode
    assert "None" not in text and "/None" not in text
    assert "24.364 fps (variable)" in text
    assert "timecode" not in text and "log profile" not in text


@pytest.mark.parametrize(("fn", "value", "expected"), [
    (fps_text, 30000 / 1001, "29.97"), (fps_text, 24000 / 1001, "23.976"), (fps_text, 25.0, "25"),
    (fps_text, None, None), (duration_text, 7.612, "7.61 s"), (duration_text, 243.2, "4:03.20 (243.2 s)"),
    (duration_text, 3723.5, "1:02:03.50 (3723.5 s)"), (bitrate_text, 12_345_678, "12.3 Mb/s"),
    (bitrate_text, 128_000, "128 kb/s"), (shutter_text, 0.02, "1/50 s"), (shutter_text, 2.0, "2 s"),
])
def test_unit_formats(fn: object, value: object, expected: str | None) -> None:
    assert fn(value) == expected  # type: ignore[operator]
