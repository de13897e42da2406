"""Faces and shot scale on a real face photo (scikit-image's astronaut, NASA, public
domain) framed at three zoom levels, and on a clip with no one in it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rayflow.media.decode import Frames, decode_frames
from rayflow.record import FaceFrame
from rayflow.stages.faces import FaceSettings, FaceStage, clip_shot_scale, shot_scale

ASTRONAUT_FACE = (178, 69, 92, 92)
"""(x, y, w, h) of the face in skimage.data.astronaut() (512x512), as the haar cascade finds it."""


def _frames_of_still(still: np.ndarray, path: Path) -> Frames:
    """A 0.5 s, 10 fps H.264 clip of one still image, decoded as the sample stage would."""
    png = path.with_suffix(".png")
    Image.fromarray(still).save(png)
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-loop", "1", "-framerate", "10", "-i", str(png), "-t", "0.5",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)],
        check=True, timeout=60,
    )
    return decode_frames(path, timestamps_s=None, count=3, max_side=512, rotation=0, timeout_s=60)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data")
    return skimage_data.astronaut()


@pytest.fixture(scope="module")
def stage() -> FaceStage:
    face_stage = FaceStage()
    face_stage.setup()
    return face_stage


def test_tight_crop_is_close_up(astronaut: np.ndarray, stage: FaceStage, tmp_path: Path) -> None:
    x, y, w, h = ASTRONAUT_FACE
    crop = astronaut[y - 40:y + h + 40, x - 50:x + w + 50]  # ~172x192: the face is half the frame
    faces = stage.detect(_frames_of_still(np.ascontiguousarray(crop), tmp_path / "close.mp4"))
    assert faces.shot_scale == "close-up"
    assert all(f.faces == 1 for f in faces.frames)
    assert faces.frames[0].largest_face_height >= 0.25


def test_whole_photo_is_medium(astronaut: np.ndarray, stage: FaceStage, tmp_path: Path) -> None:
    faces = stage.detect(_frames_of_still(astronaut, tmp_path / "medium.mp4"))
    assert faces.shot_scale == "medium"
    assert faces.max_faces == 1
    frame = faces.frames[0]
    assert 0.08 <= frame.largest_face_height < 0.25
    box = frame.boxes[0]
    # The box is normalised to the frame and sits where the face is.
    x, y, w, h = ASTRONAUT_FACE
    assert abs(box.x0 - x / 512) < 0.03 and abs(box.y0 - y / 512) < 0.03
    assert abs(box.x1 - (x + w) / 512) < 0.03 and abs(box.y1 - (y + h) / 512) < 0.03


def test_small_in_a_black_canvas_is_wide(astronaut: np.ndarray, stage: FaceStage, tmp_path: Path) -> None:
    canvas = np.zeros((720, 1280, 3), dtype=np.uint8)
    small = np.asarray(Image.fromarray(astronaut).resize((256, 256), Image.Resampling.LANCZOS))
    canvas[300:556, 700:956] = small  # face ~46 px of 720: 0.064 of the height
    frames = _frames_of_still(canvas, tmp_path / "wide.mp4")
    assert frames.height == 288  # sampled at 512 wide: the face is ~18 px, found by enlarging
    faces = stage.detect(frames)
    assert faces.shot_scale == "wide"
    assert 0 < faces.frames[0].largest_face_height < 0.08


def test_no_face_is_no_people(stage: FaceStage, tmp_path: Path) -> None:
    path = tmp_path / "pattern.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=512x288:rate=10:duration=1",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)],
        check=True, timeout=60,
    )
    frames = decode_frames(path, timestamps_s=None, count=4, max_side=512, rotation=0, timeout_s=60)
    faces = stage.detect(frames)
    assert faces.shot_scale == "no people"
    assert faces.max_faces == 0
    assert [f.timestamp_s for f in faces.frames] == pytest.approx(frames.timestamps_s.tolist())
    assert faces.method == "opencv-haar(frontalface_alt2)"


def test_thresholds() -> None:
    assert shot_scale(0.4) == "close-up"
    assert shot_scale(0.25) == "close-up"
    assert shot_scale(0.1) == "medium"
    assert shot_scale(0.05) == "wide"
    assert shot_scale(0.0) == "no people"


def test_clip_label_is_the_median_of_frames_with_faces() -> None:
    def frame(height: float) -> FaceFrame:
        return FaceFrame(timestamp_s=0.0, faces=1 if height else 0, largest_face_height=height)

    # One close-up among medium frames: the median says medium.
    assert clip_shot_scale([frame(0.3), frame(0.1), frame(0.12), frame(0.0)]) == "medium"
    # One stray detection in 12 frames is below the 20 % share: no people.
    assert clip_shot_scale([frame(0.1)] + [frame(0.0)] * 11) == "no people"
    assert clip_shot_scale([frame(0.1)] + [frame(0.0)] * 11, min_face_share=0.05) == "medium"
    assert clip_shot_scale([]) == "no people"


def test_profile_option_names_itself() -> None:
    assert FaceStage(FaceSettings(profile=True)).method == "opencv-haar(frontalface_alt2+profileface)"


def test_real_footage_face_and_textured_false_face(shared_media: Path, stage: FaceStage) -> None:
    """sample_av1.mp4 shows one face throughout (close-up); 100_0306.AVI is a plaid blanket
    that the frontal cascade alone calls a face on half the frames (the eye check drops it)."""
    person = decode_frames(shared_media / "sample_av1.mp4", timestamps_s=None, count=4, max_side=512,
                           rotation=0, timeout_s=60)
    faces = stage.detect(person)
    assert faces.shot_scale == "close-up" and faces.max_faces == 1
    assert all(f.faces == 1 for f in faces.frames)
    blanket = decode_frames(shared_media / "100_0306.AVI", timestamps_s=None, count=12, max_side=512,
                            rotation=0, timeout_s=60)
    assert stage.detect(blanket).shot_scale == "no people"
