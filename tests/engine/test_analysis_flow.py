"""The AnalyzerPool inside a real ingest: warm models, loaded once per actor."""

from __future__ import annotations

from pathlib import Path

import pytest

from rayflow.catalog.store import Catalog
from rayflow.config import load_settings
from rayflow.engine.session import ingest
from tests.media import make_corpus

pytestmark = pytest.mark.slow


def test_models_load_once_per_actor_across_files(engine, tmp_path: Path, shared_media: Path) -> None:  # type: ignore[no-untyped-def]
    src = make_corpus(tmp_path / "src", ["h264_aac.mp4", "no_audio.mkv", "rotate90.mp4"])
    paths = [str(p) for p in src.values()] + [str(shared_media / "sample_av1.mp4")]
    settings = load_settings(env={}, home=tmp_path / "home", prefect_api_url=engine.prefect_url,
                             only=("analyze",), analysis={"workers": 1})
    summary = ingest(paths, settings)
    assert summary.counts["ingested"] == len(paths), [f.errors for f in summary.files]
    note = next(n for n in summary.notes if n.startswith("analysis:"))
    assert "model loads 1 for 4 file(s)" in note  # one actor, one load, four files
    ran_on = next(n for n in summary.notes if n.startswith("roles ran on"))
    assert "speech" in ran_on and "cuda" not in ran_on  # observed devices: a CPU box claims no GPU
    catalog = Catalog.open(path=tmp_path / "home" / "catalog", url=None)
    try:
        by_name = {Path(f.path).name: catalog.get(f.clip_id) for f in summary.files}
    finally:
        catalog.close()
    face = by_name["sample_av1.mp4"].analysis
    assert face is not None and face.faces is not None and face.faces.max_faces >= 1
    assert face.shots is not None and len(face.shots.shots) >= 1
    assert len(face.best_thumbnails) >= 1 and face.best_thumbnails[0].primary
    assert Path(face.best_thumbnails[0].path).is_file()
    assert face.description and "Derived from" in face.description
    assert face.models["speech"].startswith("tiny.en")
    # Through the real actor and catalog, each role says where it ran: never CUDA on a CPU box.
    assert {"shots", "speech", "screen_text", "faces", "describe"} <= set(face.roles)
    assert face.roles["speech"].model == face.models["speech"]
    on_gpu = any(r.device.startswith("cuda") for r in face.roles.values())
    assert face.device == ("cuda:0" if on_gpu else "cpu")
    silent = by_name["no_audio.mkv"].analysis
    assert silent is not None and silent.speech is None  # no audio: null, not an error
    assert "speech" not in by_name["no_audio.mkv"].errors
