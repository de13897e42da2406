"""The deterministic description: every given signal is mentioned, tags are stable."""

from __future__ import annotations

from rayflow.record import (
    ExposureInfo,
    FaceFrame,
    Faces,
    FocalEstimate,
    HdrInfo,
    ScreenText,
    Shot,
    ShotDetection,
    Speech,
    VideoInfo,
)
from rayflow.stages.describe import describe, topic_words

TRANSCRIPT = (
    "Today we launch the rocket. The rocket engines are ready and the launch window opens at noon. "
    "Weather looks good for the launch, and the crew is ready."
)


def _inputs() -> dict[str, object]:
    return {
        "duration_s": 12.4,
        "video": VideoInfo(width=1920, height=1080, display_width=1920, display_height=1080,
                           hdr=HdrInfo(is_hdr=True, format="HDR10")),
        "shots": ShotDetection(method="transnetv2", motion_mean=1.7, shots=[
            Shot(index=0, start_s=0.0, end_s=4.0), Shot(index=1, start_s=4.0, end_s=8.0),
            Shot(index=2, start_s=8.0, end_s=12.4)]),
        "faces": Faces(method="opencv-haar(frontalface_alt2)", max_faces=2, shot_scale="medium",
                       frames=[FaceFrame(timestamp_s=1.0, faces=2, largest_face_height=0.15)]),
        "speech": Speech(model="tiny.en", language="en", text=TRANSCRIPT),
        "screen_text": [
            ScreenText(text="MISSION CONTROL", start_s=0.0, end_s=3.0, frames=4, confidence=0.93),
            ScreenText(text="T-10", start_s=9.0, end_s=9.5, frames=1, confidence=0.88),
            ScreenText(text="blurry", start_s=5.0, end_s=5.0, frames=1, confidence=0.2),
        ],
        "exposure": ExposureInfo(frames=12, mean_luma=30.0, median_luma=28.0, clipped_highlights_pct=0.1,
                                 crushed_shadows_pct=45.0, stop_offset_ev=-2.6, warning=True,
                                 reason="45.0% of pixels crushed to black; underexposed by ~2.6 stops"),
        "focal": FocalEstimate(category="long", focal_length_35mm=85.0, source="exif"),
    }


def test_every_signal_is_mentioned() -> None:
    text, tags = describe(**_inputs())  # type: ignore[arg-type]
    assert text.startswith("A 12-second 1080p HDR10 clip in 3 shots, with moderate motion.")
    assert "Mostly medium shots, showing up to 2 people." in text
    assert "Speech in English, about launch, rocket, ready" in text
    assert "\u201cMISSION CONTROL\u201d" in text and "\u201cT-10\u201d" in text
    assert "blurry" not in text  # read with too little confidence
    assert "Dark, low-key picture (45.0% of pixels crushed to black; underexposed by ~2.6 stops)." in text
    assert "Shot on a long lens (85 mm equivalent)." in text
    assert text.endswith("Derived from: probe, shots, faces, transcript, on-screen text, exposure, lens metadata.")
    assert tags == ["1080p", "hdr", "hdr10", "multi-shot", "moderate-motion", "medium-shot", "people", "speech",
                    "english", "launch", "rocket", "ready", "today", "engines", "on-screen-text", "dark",
                    "underexposed", "long-lens"]


def test_same_inputs_same_output() -> None:
    assert describe(**_inputs()) == describe(**_inputs())  # type: ignore[arg-type]


def test_only_what_is_known_is_said() -> None:
    text, tags = describe(duration_s=3.0, video=None)
    assert text == "A 3-second clip."
    assert tags == []
    text, tags = describe(duration_s=None, video=VideoInfo(width=1080, height=1920),
                          faces=Faces(method="haar", shot_scale="no people"),
                          speech=Speech(model="tiny.en", language="en", text="  "))
    assert text == ("A 1080p vertical clip. No faces were seen. No speech was heard. "
                    "Derived from: probe, faces, transcript.")
    assert tags == ["1080p", "vertical", "no-people"]


def test_topic_words_skip_stop_words_and_keep_first_on_ties() -> None:
    assert topic_words("The horse and the mouse. The mouse ran past the horse; a cat sang.") == [
        "horse", "mouse", "past", "sang"]  # 'ran' and 'cat' are too short
    assert topic_words("alpha beta gamma delta epsilon zeta", count=2) == ["alpha", "beta"]
    assert topic_words("") == []


def test_a_still_is_called_a_still_and_given_no_running_time() -> None:
    text, tags = describe(duration_s=0.04, video=VideoInfo(width=4128, height=2322),
                          faces=Faces(method="haar", shot_scale="no people"), still=True)
    assert text.startswith("A 4K still image. No faces were seen."), text
    assert "second" not in text and "shot" not in " ".join(tags)
