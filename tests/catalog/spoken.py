"""Held-out labelled footage for search: spoken and captioned clips made here, plus real
clips from ``../shared/media``, with the queries a person would type and the answers.

Nothing here was used to calibrate the relevance model (``rayflow.catalog.search``
was calibrated on the synthetic records of ``tests/catalog/corpus.py``); the
search benchmark and the quickstart (``run.sh``) use these clips to check it.

Each generated clip is 6 s of a plain colour (320x240, ultrafast x264): a caption on
screen for 0-2 s (ffmpeg drawtext), then silence, then a sentence spoken by
espeak-ng from 2 s (:func:`make_clip`).

``python -m tests.catalog.spoken DIR`` writes the generated clips into DIR (the
quickstart's demo footage).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

FONT = next((p for p in ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
                         "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf") if Path(p).is_file()), None)
"""The captions' font (ffmpeg's drawtext default when neither is installed)."""
SHARED_MEDIA = Path(__file__).resolve().parents[3] / "shared" / "media"
"""``../shared/media`` beside the checkout (see its MANIFEST.md)."""

# name -> (sentence spoken from 2 s, caption on screen 0-2 s, lavfi colour)
SPOKEN: dict[str, tuple[str, str, str]] = {
    "harbour.mp4": ("the ferry leaves the harbour at seven in the morning", "PORT AUTHORITY", "navy"),
    "election.mp4": ("the votes will be counted tonight in the city hall", "LIVE RESULTS", "darkred"),
    "garden.mp4": ("tomatoes need plenty of sunshine and water", "GARDEN SHOW", "darkgreen"),
    "bakery.mp4": ("fresh bread comes out of the oven before dawn", "OPEN DAILY", "saddlebrown"),
    "weather.mp4": ("heavy snow is expected on the mountain roads tomorrow", "WEATHER ALERT", "slategray"),
}
SHARED: tuple[str, ...] = ("bigbuckbunny.mp4", "sintel_trailer_10s.mp4")
"""Real clips in the 8-clip evaluation catalog: a cartoon with music, a film trailer."""
JFK = "jfk_speech.mp4"
"""A real speech: ``../shared/media/jfk.flac`` (11 s, "ask not what your country can do for
you") over a black picture, since audio-only files are not catalogued. Made by
``ffmpeg -f lavfi -i color=c=black:size=320x240:rate=25:duration=11 -i jfk.flac
-c:v libx264 -preset ultrafast -c:a aac -shortest jfk_speech.mp4``."""

SPEECH_AT_S = 3.0
"""A second inside every generated clip's spoken sentence (it starts at 2 s)."""
CAPTION_AT_S = 1.0
"""A second while every generated clip's caption is on screen (0-2 s)."""


@dataclass(frozen=True)
class Query:
    query: str
    clip: str | None
    """The right clip's file name; None = about nothing in the catalog (the answer is no result)."""
    at_s: float | None = None
    """A second the right moment contains (+-2 s); None = any moment."""


QUERIES: tuple[Query, ...] = (
    Query("ferry departing from the port early", "harbour.mp4", SPEECH_AT_S),
    Query("boat leaves harbour at seven", "harbour.mp4", SPEECH_AT_S),
    Query("port authority", "harbour.mp4", CAPTION_AT_S),
    Query("counting the votes tonight", "election.mp4", SPEECH_AT_S),
    Query("election results live", "election.mp4", CAPTION_AT_S),
    Query("city hall", "election.mp4", SPEECH_AT_S),
    Query("growing tomatoes in the sun", "garden.mp4", SPEECH_AT_S),
    Query("garden show", "garden.mp4", CAPTION_AT_S),
    Query("bread baked in the oven", "bakery.mp4", SPEECH_AT_S),
    Query("bakery open daily", "bakery.mp4", CAPTION_AT_S),
    Query("snow on mountain roads", "weather.mp4", SPEECH_AT_S),
    Query("weather alert", "weather.mp4", CAPTION_AT_S),
    Query("my fellow americans", JFK, 1.8),
    Query("ask what you can do for your country", JFK, 8.0),
    Query("a cooking show with pasta", None),
    Query("dog barking at the mailman", None),
    Query("rocket launch into space", None),
    Query("piano concert", None),
    Query("surfing big waves", None),
)


def shared_clips() -> list[Path]:
    """The real clips of the evaluation catalog that exist here (none when ../shared/media is absent)."""
    return [SHARED_MEDIA / n for n in SHARED if (SHARED_MEDIA / n).is_file()]


def make_clip(folder: Path, name: str, phrase: str, caption: str, colour: str) -> Path:
    """6 s of ``colour``: ``caption`` on screen 0-2 s, then silence until ``phrase`` starts at 2 s."""
    wav = folder.parent / f"{name}.wav"  # beside the footage folder: a .wav in it would be catalogued too
    subprocess.run(["espeak-ng", "-s", "140", "-w", str(wav), phrase], check=True, timeout=60)
    text = f"drawtext=text='{caption}':fontsize=28:fontcolor=white:x=20:y=100:enable='lt(t,2)'"
    if FONT:
        text = text.replace("drawtext=", f"drawtext=fontfile={FONT}:")
    out = folder / name
    try:
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y",
                        "-f", "lavfi", "-i", f"color=c={colour}:size=320x240:rate=25:duration=6",
                        "-i", str(wav), "-filter_complex", f"[0:v]{text}[v];[1:a]adelay=2000|2000,apad[a]",
                        "-map", "[v]", "-map", "[a]", "-t", "6", "-c:v", "libx264", "-preset", "ultrafast",
                        "-c:a", "aac", str(out)], check=True, timeout=120)
    finally:
        wav.unlink(missing_ok=True)
    return out


def make_spoken(folder: Path) -> list[Path]:
    """Write the generated clips into ``folder`` (reused when present); needs espeak-ng and ffmpeg."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng): it speaks the demo sentences")
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, (phrase, caption, colour) in SPOKEN.items():
        path = folder / name
        if not path.is_file():
            make_clip(folder, name, phrase, caption, colour)
        paths.append(path)
    return paths


def make_jfk(folder: Path) -> Path | None:
    """Write :data:`JFK` into ``folder`` (None when ../shared/media has no jfk.flac)."""
    source = SHARED_MEDIA / "jfk.flac"
    out = folder / JFK
    if not source.is_file():
        return None
    if not out.is_file():
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi",
                        "-i", "color=c=black:size=320x240:rate=25:duration=11", "-i", str(source),
                        "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest", str(out)],
                       check=True, timeout=120)
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m tests.catalog.spoken DIR\n")
        return 2
    paths = make_spoken(Path(args[0]))
    jfk = make_jfk(Path(args[0]))
    paths += [jfk] if jfk else []
    sys.stderr.write(f"demo footage: {len(paths)} spoken clips in {Path(args[0]).absolute()}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
