"""Search over footage that went through the whole pipeline: spoken phrases (espeak-ng)
and burned-in captions (drawtext) are found, on the right clip and the right moment."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from rayflow.catalog.search import search
from rayflow.catalog.store import Catalog
from rayflow.config import load_settings
from rayflow.engine.session import ingest
from rayflow.ml.text_encoder import TextEncoder

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")]

FONT = next((p for p in ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
                         "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf") if Path(p).is_file()), None)

# clip name -> (spoken phrase starting at 2 s, on-screen caption during 0-2 s, lavfi colour)
CLIPS = {
    "harbour.mp4": ("the ferry leaves the harbour at seven in the morning", "PORT AUTHORITY", "navy"),
    "election.mp4": ("the votes will be counted tonight in the city hall", "LIVE RESULTS", "darkred"),
    "garden.mp4": ("tomatoes need plenty of sunshine and water", "GARDEN SHOW", "darkgreen"),
}


def _make(folder: Path, name: str, phrase: str, caption: str, colour: str) -> Path:
    """6 s: caption on screen 0-2 s, then silence until the phrase starts at 2 s."""
    wav = folder.parent / f"{name}.wav"  # beside the footage folder: a .wav in it is catalogued too
    subprocess.run(["espeak-ng", "-s", "140", "-w", str(wav), phrase], check=True, timeout=60)
    text = f"drawtext=text='{caption}':fontsize=28:fontcolor=white:x=20:y=100:enable='lt(t,2)'"
    if FONT:
        text = text.replace("drawtext=", f"drawtext=fontfile={FONT}:")
    out = folder / name
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y",
                    "-f", "lavfi", "-i", f"color=c={colour}:size=320x240:rate=25:duration=6",
                    "-i", str(wav), "-filter_complex", f"[0:v]{text}[v];[1:a]adelay=2000|2000,apad[a]",
                    "-map", "[v]", "-map", "[a]", "-t", "6", "-c:v", "libx264", "-preset", "ultrafast",
                    "-c:a", "aac", str(out)], check=True, timeout=120)
    return out


def test_spoken_and_on_screen_words_find_the_right_clip_and_moment(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "footage"
    folder.mkdir()
    for name, (phrase, caption, colour) in CLIPS.items():
        _make(folder, name, phrase, caption, colour)
    home = tmp_path / "home"
    settings = load_settings(env={}, home=home, prefect_api_url=engine.prefect_url, skip=("proxy",))
    summary = ingest([str(folder)], settings)
    assert summary.counts["ingested"] == len(CLIPS), [f.errors for f in summary.files]
    encoder = TextEncoder()
    encoder.setup("cpu")
    catalog = Catalog.open(path=home / "catalog", url=None)
    try:
        queries = {
            "ferry leaving the harbour": ("harbour.mp4", 2.0),
            "counting votes at city hall": ("election.mp4", 2.0),
            "tomatoes sunshine": ("garden.mp4", 2.0),
        }
        for query, (name, start_s) in queries.items():
            hits = search(catalog, query, encoder=encoder, mode="hybrid", target="moments", limit=3)
            assert hits and hits[0].name == name, (query, [(h.name, h.text) for h in hits])
            assert hits[0].start_s is not None and abs(hits[0].start_s - start_s) <= 2.0
        for name, (_, caption, _) in CLIPS.items():
            # The packaged PP-OCR recogniser often drops the spaces of short Latin captions
            # ("LIVERESULTS"): the text is read, so compare without spaces; hybrid search
            # (dense + keyword) still finds the clip by the caption's words.
            record = next(r for r in catalog.iter_records() if r.file.name == name)
            assert record.analysis is not None
            read = [t.text.replace(" ", "").casefold() for t in record.analysis.screen_text]
            assert caption.replace(" ", "").casefold() in read, (name, read)
            hits = search(catalog, caption.lower(), encoder=encoder, mode="hybrid", target="clips", limit=3)
            assert hits and hits[0].name == name, (caption, [h.name for h in hits])
    finally:
        catalog.close()
