"""On-screen text: burnt-in captions read back, merged across frames, split by time.

Captions are drawn by ffmpeg's drawtext with a TrueType font found under
/usr/share/fonts (the argv lists are beside each asset); frames are decoded with
``decode_frames`` as the pipeline does. The OCR model loads once for the module.
Merging rules are also tested with a scripted reader (no model).
"""

from __future__ import annotations

import difflib
import subprocess
from pathlib import Path

import numpy as np
import pytest

from rayflow.media.decode import Frames, decode_frames
from rayflow.ml.ocr import OcrModel, TextLine, describe_model
from rayflow.record import TextBox
from rayflow.stages.screen_text import ScreenTextStage, normalise
from tests.media import find_font

FFMPEG = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]


def _drawtext(text: str, *, enable: str | None = None, size: int = 40) -> str:
    """A drawtext filter: white text (large by default), centred. Without a TTF, ffmpeg's default font."""
    font = find_font()
    options = [f"text='{text}'", f"fontsize={size}", "fontcolor=white", "x=(w-text_w)/2", "y=(h-text_h)/2"]
    if font is not None:
        options.insert(0, f"fontfile={font}")
    if enable is not None:
        options.append(f"enable='{enable}'")
    return "drawtext=" + ":".join(options)


def _similar(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, normalise(a), normalise(b)).ratio()


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("screen_text")
    paths = {name: out / name for name in ("caption.mp4", "two.mp4", "small.mp4")}
    # 2 s, 512x288, dark grey, "RAYFLOW TEST 42" for the whole clip.
    argv = [*FFMPEG, "-f", "lavfi", "-i", "color=c=0x202020:size=512x288:rate=25:duration=2",
            "-vf", _drawtext("RAYFLOW TEST 42"),
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(paths["caption.mp4"])]
    proc = subprocess.run(argv, capture_output=True, timeout=60, check=False)
    if proc.returncode != 0:
        pytest.skip(f"ffmpeg drawtext cannot draw text here (no TTF under /usr/share/fonts and no "
                    f"default font?): {proc.stderr.decode(errors='replace')[-300:]}")
    # "FIRST CAPTION" during 0-1 s, then "NEW TITLE 7" during 1-2 s.
    subprocess.run([*FFMPEG, "-f", "lavfi", "-i", "color=c=0x202020:size=512x288:rate=25:duration=2",
                    "-vf", _drawtext("FIRST CAPTION", enable="lt(t,1)") + ","
                    + _drawtext("NEW TITLE 7", enable="gte(t,1)"),
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(paths["two.mp4"])],
                   capture_output=True, timeout=60, check=True)
    # A 9-pixel line, as a 1080p subtitle is once sampled at 512x288.
    subprocess.run([*FFMPEG, "-f", "lavfi", "-i", "color=c=0x202020:size=512x288:rate=25:duration=1",
                    "-vf", _drawtext("meet me at the station", size=9),
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(paths["small.mp4"])],
                   capture_output=True, timeout=60, check=True)
    return paths


@pytest.fixture(scope="module")
def stage() -> ScreenTextStage:
    stage = ScreenTextStage(threads=2)
    stage.setup()
    return stage


def _frames(path: Path, count: int) -> Frames:
    return decode_frames(path, timestamps_s=None, count=count, max_side=512, rotation=0, timeout_s=60)


def test_packaged_weights_are_found() -> None:
    where = describe_model()
    assert where.present, where.detail
    assert where.path is not None and where.path.name == "models"
    assert where.label == "PP-OCRv4 (rapidocr-onnxruntime)"


def test_the_ocr_sessions_sleep_between_calls_and_keep_their_memory_arena(stage: ScreenTextStage) -> None:
    engine = stage.ocr._engine
    for session in (engine.text_det.infer.session, engine.text_rec.session.session):
        options = session.get_session_options()
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        assert options.enable_cpu_mem_arena
    from rapidocr_onnxruntime.utils import infer_engine  # the wrapped builder is put back after set-up
    assert infer_engine.OrtInferSession._init_sess_opts.__name__ == "_init_sess_opts"


def test_caption_is_read_and_merged_over_frames(stage: ScreenTextStage, clips: dict[str, Path]) -> None:
    frames = _frames(clips["caption.mp4"], 6)
    texts = stage.read(frames)
    assert len(texts) == 1, texts
    found = texts[0]
    assert _similar(found.text, "RAYFLOW TEST 42") >= 0.8, found.text
    assert found.frames == frames.count
    assert found.start_s == pytest.approx(frames.timestamps_s[0], abs=1e-3)
    assert found.end_s == pytest.approx(frames.timestamps_s[-1], abs=1e-3)
    assert found.confidence >= 0.7
    box = found.box
    assert box is not None
    assert 0 <= box.x0 < 0.5 < box.x1 <= 1 and 0 <= box.y0 < 0.5 < box.y1 <= 1  # centred
    assert box.x1 - box.x0 > 0.5  # large font: more than half the width


def test_two_captions_get_their_own_time_ranges(stage: ScreenTextStage, clips: dict[str, Path]) -> None:
    frames = _frames(clips["two.mp4"], 8)
    texts = stage.read(frames)
    assert len(texts) == 2, texts
    first, second = texts
    assert _similar(first.text, "FIRST CAPTION") >= 0.8, first.text
    assert _similar(second.text, "NEW TITLE 7") >= 0.8, second.text
    assert 0.0 <= first.start_s <= first.end_s < 1.0
    assert 1.0 <= second.start_s <= second.end_s <= 2.0
    assert first.frames + second.frames == frames.count


def test_no_frames_no_text(stage: ScreenTextStage) -> None:
    empty = Frames(images=np.zeros((0, 8, 8, 3), np.uint8), timestamps_s=np.zeros(0), decoder="ffmpeg")
    assert stage.read(empty) == []


def test_blank_frames_have_no_text(stage: ScreenTextStage) -> None:
    rng = np.random.default_rng(0)
    images = np.clip(rng.normal(40, 3, (2, 288, 512, 3)), 0, 255).astype(np.uint8)
    frames = Frames(images=images, timestamps_s=np.array([0.0, 1.0]), decoder="ffmpeg")
    assert stage.read(frames) == []


# --------------------------------------------------------------- merging, no model


class _Scripted(OcrModel):
    """Returns prepared lines per frame instead of reading pixels."""

    def __init__(self, script: list[list[tuple[str, float]]]) -> None:
        super().__init__()
        self.script = script

    def setup(self, device: str = "cpu") -> None:
        pass

    def read(self, images: np.ndarray) -> list[list[TextLine]]:
        box = TextBox(x0=0.1, y0=0.8, x1=0.9, y1=0.9)
        return [[TextLine(text, score, box) for text, score in lines] for lines in self.script]


def _run_script(script: list[list[tuple[str, float]]], **options: float) -> list:
    stage = ScreenTextStage(ocr=_Scripted(script), **options)
    stage.setup()
    n = len(script)
    frames = Frames(images=np.zeros((n, 4, 4, 3), np.uint8), timestamps_s=np.arange(n, dtype=float),
                    decoder="ffmpeg")
    return stage.read(frames)


def test_ocr_spacing_and_case_noise_merge_into_one() -> None:
    texts = _run_script([
        [("Subtitlelineforsmall text", 0.97)],
        [("Subtitle line for small text", 0.95)],
        [("SUBTITLE LINE FOR SMALL TEXT", 0.93)],
        [("Subtit1e line for small text", 0.90)],  # one character misread
    ])
    assert len(texts) == 1
    only = texts[0]
    assert only.text == "Subtitle line for small text"  # the reading with spaces wins
    assert (only.start_s, only.end_s, only.frames) == (0.0, 3.0, 4)
    assert only.confidence == pytest.approx((0.97 + 0.95 + 0.93 + 0.90) / 4, abs=1e-3)


def test_junk_is_dropped() -> None:
    texts = _run_script([[("x", 0.99), ("stray glyphs", 0.6), ("--", 0.95), ("REAL TITLE", 0.96)]])
    assert [t.text for t in texts] == ["REAL TITLE"]


def test_a_caption_that_returns_after_a_gap_is_listed_twice() -> None:
    texts = _run_script([[("HELLO WORLD", 0.9)], [], [("HELLO WORLD", 0.9)], [], [], [("HELLO WORLD", 0.9)]])
    # Missed on one frame (1): still one text; gone for two frames (3, 4): a new entry.
    assert [(t.start_s, t.end_s, t.frames) for t in texts] == [(0.0, 2.0, 2), (5.0, 5.0, 1)]


def test_two_lines_on_the_same_frames_stay_apart() -> None:
    texts = _run_script([[("BREAKING NEWS", 0.9), ("Live from the studio", 0.9)]] * 3)
    assert sorted(t.text for t in texts) == ["BREAKING NEWS", "Live from the studio"]
    assert all(t.frames == 3 for t in texts)


def test_identical_frames_are_read_once(stage: ScreenTextStage, clips: dict[str, Path],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    frames = _frames(clips["caption.mp4"], 4)
    model = stage.ocr
    detected: list[int] = []
    real_detect = model._detect

    def counting_detect(image: np.ndarray) -> list:
        detected.append(1)
        return real_detect(image)

    monkeypatch.setattr(model, "_detect", counting_detect)
    lines = model.read(frames.images)
    assert len(detected) == 1  # a static caption on a flat background: one frame read, three reused
    assert len(lines) == 4 and all(ln == lines[0] for ln in lines)
    assert lines[0] and lines[0][0].text


def test_a_caption_held_over_changing_pictures_is_recognised_once(
        stage: ScreenTextStage, clips: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    frames = _frames(clips["caption.mp4"], 1)
    changed = frames.images[0].copy()
    changed[:80] = np.clip(changed[:80].astype(np.int16) + 60, 0, 255).astype(np.uint8)  # away from the text
    model = stage.ocr
    recognised: list[int] = []
    real_recognise = model._recognise

    def counting_recognise(crops: list[np.ndarray]) -> list[tuple[str, float]]:
        recognised.append(len(crops))
        return real_recognise(crops)

    monkeypatch.setattr(model, "_recognise", counting_recognise)
    first, second = model.read(np.stack([frames.images[0], changed]))
    assert first and [ln.text for ln in second] == [ln.text for ln in first]  # both frames detected
    assert recognised == [len(first)]  # the held line was read once


def test_one_changed_glyph_is_not_taken_for_the_same_line() -> None:
    from rayflow.ml.ocr import _worst_block_diff

    line = np.full((20, 200, 3), 30, np.uint8)
    digit = line.copy()
    digit[:, 100:110] = 130  # half a glyph's width changed: 5 levels over the whole line
    assert np.abs(digit.astype(int) - line).mean() < 6 <= _worst_block_diff(digit, line)
    assert _worst_block_diff(line, line) == 0


# --------------------------------------------------------------- plausibility


def test_sintel_title_card_keeps_the_title_and_drops_the_garbled_word(stage: ScreenTextStage,
                                                                      shared_media: Path) -> None:
    # The title card "THE BLENDER FOUNDATION / presents" (4.5-6.5 s): PP-OCRv4 reads the small
    # "presents" as "peesents" at 0.99 on these frames; it must not be stored.
    frames = decode_frames(shared_media / "sintel_trailer_10s.mp4", timestamps_s=[4.7, 5.3, 5.9, 6.5],
                           count=None, max_side=512, rotation=0, timeout_s=60)
    texts = stage.read(frames)
    assert [t.text for t in texts if "BLENDER" in t.text] == ["THE BLENDER FOUNDATION"], texts
    assert not [t for t in texts if "peesents" in t.text.casefold()]
    title = texts[0]
    assert title.frames == 4 and title.confidence > 0.9
    assert all(stage.judge.verdict(t.text).plausible for t in texts)


def test_garbled_reads_are_dropped_and_the_real_word_wins() -> None:
    texts = _run_script([
        [("peesents", 0.99), ("Coxrite", 0.84), ("clccsrd", 0.97)],
        [("presents", 0.94), ("Soxrite", 0.83), ("clccsrd", 0.97)],
        [("peesents", 0.99), ("Coxrite", 0.84), ("clccsrd", 0.97)],
    ])
    # "presents" was read once: the merged text shows it; Coxrite/Soxrite disagree and
    # know no word; "clccsrd" has no vowel.
    assert [t.text for t in texts] == ["presents"]
    assert texts[0].frames == 3


def test_word_boundaries_are_restored() -> None:
    texts = _run_script([[("WEATHERALERT", 0.98)], [("WEATHERALERT", 0.97)]])
    assert [t.text for t in texts] == ["WEATHER ALERT"]


def test_a_name_is_kept_only_when_every_frame_agrees_with_high_confidence() -> None:
    assert [t.text for t in _run_script([[("Zorblat", 0.97)], [("Zorblat", 0.98)]])] == ["Zorblat"]
    assert _run_script([[("Zorblat", 0.97)], [("Zorblar", 0.98)]]) == []   # readings disagree
    assert _run_script([[("Zorblat", 0.85)], [("Zorblat", 0.86)]]) == []   # not confident enough


def test_generated_caption_keeps_its_space(stage: ScreenTextStage, tmp_path: Path) -> None:
    clip = tmp_path / "alert.mp4"
    subprocess.run([*FFMPEG, "-f", "lavfi", "-i", "color=c=0x203040:size=512x288:rate=25:duration=1",
                    "-vf", _drawtext("WEATHER ALERT"),
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(clip)],
                   capture_output=True, timeout=60, check=True)
    texts = stage.read(_frames(clip, 2))
    assert [t.text for t in texts] == ["WEATHER ALERT"]


def test_only_frames_with_small_text_get_the_enlarged_detection_pass(stage: ScreenTextStage, clips: dict[str, Path],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    model = stage.ocr
    det = model._engine.text_det
    sides: list[int] = []
    shapes: list[tuple[int, int]] = []

    class Recording:
        """Stands in for RapidOCR's detector, noting the resolution of each pass."""

        def __getattr__(self, name: str) -> object:
            return getattr(det, name)

        def __setattr__(self, name: str, value: object) -> None:
            setattr(det, name, value)

        def __call__(self, image: np.ndarray) -> tuple:
            sides.append(det.limit_side_len)
            shapes.append(image.shape[:2])
            return det(image)

    monkeypatch.setattr(model._engine, "text_det", Recording())
    rng = np.random.default_rng(1)
    blank = np.clip(rng.normal(60, 20, (2, 288, 512, 3)), 0, 255).astype(np.uint8)
    assert model.read(blank) == [[], []]
    assert sides == [model.gate_min_side_px] * 2
    sides.clear()
    lines = model.read(_frames(clips["caption.mp4"], 1).images)  # large text: found and read at 288
    assert sides == [model.gate_min_side_px] and [ln.text for ln in lines[0]] == ["RAYFLOW TEST 42"]
    sides.clear()
    shapes.clear()
    lines = model.read(_frames(clips["small.mp4"], 1).images)  # small text: found at 288, then enlarged
    assert len(sides) == 2 and sides[0] == model.gate_min_side_px
    (height, width), (band_height, band_width) = shapes
    assert band_width == width and band_height < height / 3  # only a band around the small line, full width
    assert abs(sides[1] / band_height - model.det_min_side_px / height) < 0.05  # at the enlarged pass's scale
    assert lines[0] and _similar(" ".join(ln.text for ln in lines[0]), "meet me at the station") >= 0.8
