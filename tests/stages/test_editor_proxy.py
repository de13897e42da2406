"""Editor proxies that relink: Proxy/<name>.mov keeps timecode, reel, rate, duration, audio channels (ffprobe)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rayflow.cli.main import app
from rayflow.stages.editor_proxy import proxy_size
from tests.conftest import SHARED_MEDIA

TC_SOURCE_ARGV = [
    "ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=640x360:r=24000/1001:d=1",
    "-f", "lavfi", "-i", "sine=f=440:d=1:sample_rate=48000",
    "-filter_complex", "[1:a]pan=5.1|c0=c0|c1=c0|c2=c0|c3=c0|c4=c0|c5=c0[a]", "-map", "0:v", "-map", "[a]",
    "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "pcm_s16le",
    "-timecode", "01:02:03:04", "-metadata:s:v:0", "reel_name=A001",
]
"""A camera-like source: 23.976 fps, 5.1 PCM, start timecode 01:02:03:04 on reel A001 (tmcd track)."""


def _probe(path: Path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
                         capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


def _facts(path: Path) -> dict:
    data = _probe(path)
    video = next(s for s in data["streams"] if s["codec_type"] == "video")
    tags = [s.get("tags", {}) for s in data["streams"]]
    return {
        "codec": video["codec_name"], "size": (video["width"], video["height"]), "rate": video["r_frame_rate"],
        "duration_s": round(float(video.get("duration") or data["format"]["duration"]), 2),
        "timecode": next((t["timecode"] for t in tags if "timecode" in t), None),
        "reel": next((t["reel_name"] for t in tags if "reel_name" in t), None),
        "audio": [(s["channels"], s.get("channel_layout")) for s in data["streams"] if s["codec_type"] == "audio"],
    }


@pytest.mark.parametrize(("size", "max_side", "expected"), [
    ((3840, 2160), 1920, (1920, 1080)), ((4096, 2160), 2048, (2048, 1080)), ((1920, 1080), 1920, (1920, 1080)),
    ((1920, 1080), 1000, (960, 540)), ((1280, 720), 500, (320, 180)), ((854, 480), 400, (284, 160)),
])
def test_proxy_size_divides_evenly(size: tuple[int, int], max_side: int, expected: tuple[int, int]) -> None:
    got = proxy_size(*size, max_side)
    assert got == expected and got[0] % 2 == 0 and got[1] % 2 == 0


def test_prores_proxy_keeps_timecode_reel_rate_and_channels(tmp_path: Path) -> None:
    card = tmp_path / "A001"
    card.mkdir()
    src = card / "A001C001.mov"
    subprocess.run([*TC_SOURCE_ARGV, str(src)], check=True, timeout=120)
    result = CliRunner().invoke(app, ["proxies", str(card), "--codec", "prores_proxy", "--max-side", "320",
                                      "--json"])
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)
    proxy = card / "Proxy" / "A001C001.mov"
    assert row["proxy"] == str(proxy)
    made, orig = _facts(proxy), _facts(src)
    assert made["codec"] == "prores" and made["size"] == (320, 180)
    for key in ("rate", "duration_s", "timecode", "reel", "audio"):
        assert made[key] == orig[key], key
    assert made["timecode"] == "01:02:03:04" and made["audio"] == [(6, "5.1")]
    again = CliRunner().invoke(app, ["proxies", str(card), "--json"])  # Proxy/ is not walked; existing kept
    assert [r["reused"] for r in json.loads(again.stdout)] == [True]


@pytest.mark.skipif(not SHARED_MEDIA.is_dir(), reason="../shared/media is not present")
def test_dnxhr_proxy_of_a_real_clip_keeps_its_six_channels(tmp_path: Path) -> None:
    src = tmp_path / "bigbuckbunny.mp4"  # 1280x720 25 fps, AAC 5.1 (MANIFEST.md)
    shutil.copyfile(SHARED_MEDIA / "bigbuckbunny.mp4", src)
    result = CliRunner().invoke(app, ["proxies", str(src), "--codec", "dnxhr_lb", "--max-side", "640", "--json"])
    assert result.exit_code == 0, result.output
    made, orig = _facts(tmp_path / "Proxy" / "bigbuckbunny.mov"), _facts(src)
    assert made["codec"] == "dnxhd" and made["size"] == (640, 360)
    assert made["rate"] == orig["rate"] == "25/1"
    assert [c for c, _ in made["audio"]] == [c for c, _ in orig["audio"]] == [6]
    assert abs(made["duration_s"] - orig["duration_s"]) <= 0.05


def test_bad_codec_is_a_usage_error(tmp_path: Path) -> None:
    assert CliRunner().invoke(app, ["proxies", str(tmp_path), "--codec", "xvid"]).exit_code == 2
