"""The per-file stages (probe -> sample -> thumbnails, exposure) run as plain Python (no Ray) over
real files with the sequential runner, chained through one ``FileItem``."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from rayflow.config import load_settings
from rayflow.stages.base import FileItem, run_sequential
from rayflow.stages.inspect import INSPECT, build_inspect
from rayflow.stages.steps import plan_steps


def test_the_per_file_stages_run_sequentially_over_a_clip_and_a_still(shared_media: Path, tmp_path: Path) -> None:
    settings = load_settings(env={}, home=tmp_path / "home")
    steps = plan_steps().enabled
    stages = build_inspect(settings, steps)
    assert [s.name for s in stages] == [row.name for row in INSPECT] == ["probe", "sample", "thumbnails", "exposure"]
    clip = shared_media / "sintel_trailer_10s.mp4"  # 854x480, 24 fps, 10 s, no audio, 2.39:1 bars, title cards
    still = shared_media / "vacation_2017.jpg"  # 2560x1440 JPEG photo, Samsung SM-J320P
    items = [FileItem(str(clip), "sintel", tmp_path / "sintel"), FileItem(str(still), "photo", tmp_path / "photo")]

    (probed, sampled, thumbs, exposure), photo_outputs = run_sequential(stages, items, device="cpu")

    video = items[0]  # each stage wrote its field and returned it
    assert (video.probe, video.sample, video.thumbnails, video.exposure) == (probed, sampled, thumbs, exposure)
    assert probed.kind == "video" and probed.video is not None
    assert (probed.video.width, probed.video.height) == (854, 480) and probed.audio_tracks == []
    assert video.frames is not None and video.frames.count == sampled.count == settings.sample.count
    assert (sampled.width, sampled.height) == (512, 288)  # longest side settings.sample.max_side
    assert sampled.timestamps_s == sorted(sampled.timestamps_s) and 0 <= sampled.timestamps_s[0] < 10.0
    assert video.frames.strip is not None  # shots will run: the 48x27 strip came from the same pass
    assert len(thumbs) == settings.thumbnails.count
    for thumb in thumbs:
        with Image.open(thumb.path) as image:
            assert image.size == (thumb.width, thumb.height) and Path(thumb.path).parent == tmp_path / "sintel"
    # The bars and title cards are left out: the picture itself is measured, not "~5.6 stops under".
    assert 0 < exposure.frames <= sampled.count and exposure.stop_offset_ev > -3.0

    photo = items[1]
    assert photo_outputs[0].kind == "image" and photo.sample is not None and photo.sample.count == 1
    assert photo.frames is not None and photo.frames.strip is None  # a still: one frame, no strip
    assert len(photo.thumbnails) == 1 and photo.exposure is not None and photo.exposure.frames == 1


def test_without_analyze_the_sample_stage_skips_the_shot_strip(shared_media: Path, tmp_path: Path) -> None:
    settings = load_settings(env={}, home=tmp_path / "home")
    steps = plan_steps(only=("sample",)).enabled
    stages = build_inspect(settings, steps)
    assert [s.name for s in stages] == ["probe", "sample"]  # thumbnails and exposure not asked for
    item = FileItem(str(shared_media / "with-gps.mov"), "gps", tmp_path / "gps")  # 568x320, rotated 90 cw
    run_sequential(stages, [item])
    assert item.frames is not None and item.frames.strip is None
    assert item.sample is not None and (item.sample.width, item.sample.height) == (288, 512)  # as displayed
    assert item.thumbnails == [] and item.exposure is None
