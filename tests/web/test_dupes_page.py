"""The web page's near-duplicates (``/api/dupes``, ``#/dupes``): a real clip's re-encode and trim pair
with it at their offsets, unrelated real clips pair with nothing, each pair links to both clips.

No ingest here (the web_home fixture has no duplicates): records are written as the ingest writes
them (``output/records/<clip_id>.json``, no catalog yet) with review proxies made from
``../shared/media`` clips by ffmpeg, as the proxy step makes them."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from rayflow.config import load_settings
from rayflow.record import ClipRecord, FileInfo, ProxyInfo
from rayflow.web.app import create_app
from tests.conftest import SHARED_MEDIA

pytestmark = pytest.mark.skipif(not SHARED_MEDIA.is_dir(), reason="../shared/media is not present")
SOURCE = "sintel_trailer_10s.mp4"  # 854x480 24 fps, 10 s, several shots (MANIFEST.md)
DERIVED = {
    "reencode_240p.mp4": ["-i", str(SHARED_MEDIA / SOURCE), "-vf", "scale=426:240", "-c:v", "libx264",
                          "-preset", "ultrafast", "-crf", "35"],
    "trim_3.3s.mp4": ["-ss", "3.3", "-t", "5", "-i", str(SHARED_MEDIA / SOURCE), "-c:v", "libx264",
                      "-preset", "ultrafast", "-crf", "28"],
}
UNRELATED = ["bigbuckbunny.mp4", "with-gps.mov"]
PROXY_ARGV = ["-vf", "scale=-2:240", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "28", "-an"]
"""The review proxy of each clip (smaller than the proxy step's 854 px, to keep the test quick)."""


def _record(home: Path, source: Path, *, proxy: bool = True) -> str:
    clip_id = str(uuid.uuid4())
    out = home / "output"
    info = None
    if proxy:
        made = out / "clips" / clip_id / "proxy.mp4"
        made.parent.mkdir(parents=True)
        subprocess.run(["ffmpeg", "-v", "error", "-i", str(source), *PROXY_ARGV, str(made)], check=True, timeout=120)
        info = ProxyInfo(path=str(made), encoder="libx264", hardware=False, width=0, height=240,
                         size_bytes=made.stat().st_size, audio=False, settings_key="test")
    record = ClipRecord(clip_id=clip_id, kind="video", proxy=info,
                        file=FileInfo(path=str(source), name=source.name, size_bytes=source.stat().st_size,
                                      checksum=clip_id.replace("-", "")))
    (out / "records").mkdir(parents=True, exist_ok=True)
    (out / "records" / f"{clip_id}.json").write_text(record.model_dump_json())
    return clip_id


def test_dupes_page_pairs_a_reencode_and_a_trim_with_offsets_and_links(tmp_path: Path) -> None:
    footage = tmp_path / "footage"
    footage.mkdir()
    for name, argv in DERIVED.items():
        subprocess.run(["ffmpeg", "-v", "error", *argv, str(footage / name)], check=True, timeout=120)
    home = tmp_path / "home"
    ids = {name: _record(home, footage / name) for name in DERIVED}
    ids |= {name: _record(home, SHARED_MEDIA / name) for name in [SOURCE, *UNRELATED]}
    no_proxy = _record(home, SHARED_MEDIA / "max-heromode.mp4", proxy=False)
    client = TestClient(create_app(load_settings(env={}, home=home)))

    body = client.get("/api/dupes").json()
    assert body["source"] == "records" and body["compared"] == 5
    names = {v: k for k, v in ids.items()}
    pairs = {frozenset((names[p["a"]["clip_id"]], names[p["b"]["clip_id"]])): p for p in body["pairs"]}
    assert set(pairs) == {frozenset((SOURCE, "reencode_240p.mp4")), frozenset((SOURCE, "trim_3.3s.mp4")),
                          frozenset(("reencode_240p.mp4", "trim_3.3s.mp4"))}  # none with an unrelated clip

    def offset(x: str, y: str) -> float:
        """Time in x of the frame at 0 s in y."""
        p = pairs[frozenset((x, y))]
        return p["offset_s"] if p["a"]["clip_id"] == ids[x] else -p["offset_s"]
    assert abs(offset(SOURCE, "reencode_240p.mp4")) <= 0.05
    assert abs(offset(SOURCE, "trim_3.3s.mp4") - 3.3) <= 0.25
    trim = pairs[frozenset((SOURCE, "trim_3.3s.mp4"))]
    start_in_source = trim["a_start_s"] if trim["a"]["clip_id"] == ids[SOURCE] else trim["b_start_s"]
    assert 3.0 <= start_in_source <= 4.0 and 4.0 <= trim["overlap_s"] <= 5.5
    assert trim["a"]["name"] in (SOURCE, "trim_3.3s.mp4") and trim["a"]["path"].endswith(trim["a"]["name"])
    assert [c["clip_id"] for c in body["no_proxy"]] == [no_proxy] and body["errors"] == []
    assert "/clips/" not in json.dumps(body["pairs"])  # proxy paths stay on the server
    assert len(list((home / "vhash").glob("*.npz"))) == 5  # cached: the next visit decodes nothing
    assert client.get("/api/dupes").json()["pairs"] == body["pairs"]

    page, script = client.get("/").text, client.get("/static/app.js").text
    assert 'href="#/dupes"' in page
    assert '"/api/dupes"' in script and 'parts[0] === "dupes"' in script and '"#/clip/"' in script
