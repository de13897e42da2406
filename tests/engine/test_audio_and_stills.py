"""Issue #13: audio files and stills in a footage folder are catalogued, not passed over;
what is not catalogued (sidecars, unknown types) is listed in the summary with the reason.

Real files from ../shared/media (MANIFEST.md): jfk.flac (speech, audio only) and
vacation_2017.jpg (a Samsung phone photo with EXIF and GPS)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rayflow.catalog.search import search
from rayflow.catalog.store import Catalog
from rayflow.config import load_settings
from rayflow.engine.session import ingest
from rayflow.ml.text_encoder import TextEncoder

pytestmark = pytest.mark.slow


def test_audio_and_stills_are_catalogued_and_sidecars_reported(engine, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                 shared_media: Path) -> None:
    folder = tmp_path / "shoot"
    folder.mkdir()
    for name in ("jfk.flac", "vacation_2017.jpg"):
        shutil.copy2(shared_media / name, folder / name)
    (folder / "C0001M01.XML").write_text("<NonRealTimeMeta/>")  # a camera sidecar
    (folder / "notes.xyz").write_text("call the editor")
    home = tmp_path / "home"
    settings = load_settings(env={}, home=home, prefect_api_url=engine.prefect_url, skip=("proxy",),
                             analysis={"workers": 1})
    summary = ingest([str(folder)], settings)
    files = {Path(f.path).name: f for f in summary.files}
    assert files["jfk.flac"].status == "ingested", files["jfk.flac"].errors
    assert files["vacation_2017.jpg"].status == "ingested", files["vacation_2017.jpg"].errors
    # Passed over, and the summary says so with the reason: never "skipped 0".
    assert files["C0001M01.XML"].status == "skipped" and "sidecar" in files["C0001M01.XML"].errors["discover"]
    assert files["notes.xyz"].status == "skipped" and "unknown type .xyz" in files["notes.xyz"].errors["discover"]
    assert summary.counts == {"ingested": 2, "duplicate": 0, "skipped": 2, "failed": 0}

    encoder = TextEncoder()
    encoder.setup("cpu")
    catalog = Catalog.open(path=home / "catalog", url=None)
    try:
        audio = catalog.get(files["jfk.flac"].clip_id)
        assert audio is not None and audio.kind == "audio" and audio.video is None
        assert audio.audio_tracks[0].codec == "flac" and audio.audio_tracks[0].sample_rate == 44100
        assert audio.container is not None and abs((audio.container.duration_s or 0) - 11.0) < 0.1
        assert audio.analysis is not None and audio.analysis.speech is not None
        assert "your country" in audio.analysis.speech.text.lower(), audio.analysis.speech.text
        hits = search(catalog, "ask not what your country can do for you", encoder=encoder, mode="hybrid",
                      target="moments", limit=3)
        assert hits and hits[0].name == "jfk.flac", [(h.name, h.text) for h in hits]

        still = catalog.get(files["vacation_2017.jpg"].clip_id)
        assert still is not None and still.kind == "image" and still.proxy is None
        assert (still.camera.make, still.camera.model) == ("SAMSUNG", "SM-J320P")
        assert still.capture.gps is not None and abs(still.capture.gps.lat - 26.12157) < 1e-3
        assert still.thumbnails and Path(still.thumbnails[0].path).is_file()
        assert still.analysis is not None and still.analysis.faces is not None  # run on its one frame
        # Only what applies ran, and the record lists only that: a still has no audio and no cuts.
        assert "faces" in still.analysis.roles and not {"speech", "shots"} & set(still.analysis.roles)
        assert still.analysis.speech is None and still.analysis.shots is None
        assert not {"single-shot", "multi-shot"} & set(still.analysis.tags), still.analysis.tags
        assert "speech" in audio.analysis.roles and "faces" not in audio.analysis.roles
    finally:
        catalog.close()
