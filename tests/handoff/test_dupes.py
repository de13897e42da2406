"""``rayflow dupes``: a real clip's re-encode, trim and black-intro/fade copy are found, with offsets;
unrelated real clips (../shared/media) pair with nothing."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rayflow.cli.main import app
from rayflow.media.vhash import informative, phash_frames
from tests.conftest import SHARED_MEDIA

pytestmark = pytest.mark.skipif(not SHARED_MEDIA.is_dir(), reason="../shared/media is not present")
SOURCE = "sintel_trailer_10s.mp4"  # 854x480 24 fps, 10 s, several shots (MANIFEST.md)
UNRELATED = ["bigbuckbunny.mp4", "max-heromode.mp4", "with-gps.mov", "100_0306.AVI", "bbb_2500ms.ts"]
DERIVED = {
    # name: ffmpeg argv after "-i SOURCE" (or the whole input part for the intro), as run below
    "reencode_240p.mp4": ["-vf", "scale=426:240", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "35"],
    "trim_3.3s.mp4": ["-ss", "3.3", "-t", "5", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "28"],
}
INTRO_ARGV = ["-f", "lavfi", "-i", "color=black:s=854x480:r=24:d=1.5", "-i", "{src}", "-filter_complex",
              "[1:v]fade=t=in:st=0:d=1,fade=t=out:st=8.5:d=1.5[v];[0:v][v]concat=n=2:v=1:a=0",
              "-c:v", "libx264", "-preset", "ultrafast", "-crf", "30"]
"""1.5 s of black, then the clip fading in over 1 s and out over its last 1.5 s."""


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dupes")
    src = SHARED_MEDIA / SOURCE
    for name, args in DERIVED.items():
        subprocess.run(["ffmpeg", "-v", "error", "-i", str(src), *args, str(root / name)], check=True, timeout=120)
    intro = [a.replace("{src}", str(src)) for a in INTRO_ARGV]
    subprocess.run(["ffmpeg", "-v", "error", *intro, str(root / "black_intro_fades.mp4")], check=True, timeout=120)
    for name in [SOURCE, *UNRELATED]:
        (root / name).symlink_to(SHARED_MEDIA / name)
    return root


def test_pairs_across_reencode_trim_and_fades_with_offsets_and_no_false_pair(folder: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["dupes", str(folder), "--home", str(tmp_path / "home"), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    pairs = {frozenset((Path(p["a"]).name, Path(p["b"]).name)): p for p in doc["pairs"]}
    family = [SOURCE, *DERIVED, "black_intro_fades.mp4"]
    expected = {frozenset((x, y)) for i, x in enumerate(family) for y in family[i + 1:]}
    assert set(pairs) == expected  # all 6 within the family, none with an unrelated clip
    assert doc["files"] == len(family) + len(UNRELATED)

    def offset(x: str, y: str) -> float:
        """Time in x of the frame at 0 s in y."""
        p = pairs[frozenset((x, y))]
        return p["offset_s"] if Path(p["a"]).name == x else -p["offset_s"]
    assert abs(offset(SOURCE, "reencode_240p.mp4")) <= 0.05
    assert abs(offset(SOURCE, "trim_3.3s.mp4") - 3.3) <= 0.25
    assert abs(offset(SOURCE, "black_intro_fades.mp4") + 1.5) <= 0.25
    full = pairs[frozenset((SOURCE, "reencode_240p.mp4"))]
    assert full["overlap_s"] >= 9.0 and full["coverage"] >= 0.9
    cached = list((tmp_path / "home" / "vhash").glob("*.npz"))
    assert len(cached) == doc["files"]  # a second run decodes nothing


def test_flat_frames_are_not_informative_and_gain_keeps_the_hash() -> None:
    rng = np.random.default_rng(7)
    picture = rng.integers(0, 255, (1, 32, 32)).astype(np.float64)
    picture = (picture + np.roll(picture, 1, axis=2)) / 2  # some structure
    faded = picture * 0.4  # the same frame 60 % into a fade to black
    black = np.full((1, 32, 32), 3.0)
    frames = np.concatenate([picture, faded, black]).astype(np.uint8)
    assert informative(frames).tolist() == [True, True, False]
    h = phash_frames(frames[:2])
    assert int(np.bitwise_count(h[0] ^ h[1])) <= 4
