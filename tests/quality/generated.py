"""Generated clips of the labelled quality set, each with the ffmpeg/espeak-ng argv that makes it.

512x288 (the pipeline's sampled-frame size), ``-preset ultrafast``, a few seconds
each; cached in the folder given (a maker runs only when its file is missing).
The truth about each clip is in ``tests/quality/labels.py``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.media import find_font

FFMPEG = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
AAC = ["-c:a", "aac", "-b:a", "64k"]
HARBOUR = "Welcome to the harbour. The boats leave at nine every morning."
WEATHER = "The weather today is calm, with light winds from the west."


def _run(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, timeout=120, check=False, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise RuntimeError(f"command failed ({proc.returncode}): {argv!r}\n"
                           f"{proc.stderr.decode(errors='replace')[-1000:]}")


def drawtext(text: str, *, size: int = 36, y: str = "(h-text_h)/2", enable: str | None = None) -> str:
    """White text centred horizontally (a TTF from /usr/share/fonts when there is one)."""
    font = find_font()
    options = [f"text='{text}'", f"fontsize={size}", "fontcolor=white", "x=(w-text_w)/2", f"y={y}"]
    if font is not None:
        options.insert(0, f"fontfile={font}")
    if enable is not None:
        options.append(f"enable='{enable}'")
    return "drawtext=" + ":".join(options)


def noise_pattern(out: Path) -> None:
    """3 s testsrc2 (a test pattern) with pink noise: no speech, no face."""
    _run([*FFMPEG, "-f", "lavfi", "-i", "testsrc2=size=512x288:rate=25:duration=3",
          "-f", "lavfi", "-i", "anoisesrc=color=pink:amplitude=0.5:sample_rate=48000:duration=3",
          *X264, *AAC, "-shortest", str(out)])


def silence_bars(out: Path) -> None:
    """3 s SMPTE bars with a digitally silent track: no speech, no face."""
    _run([*FFMPEG, "-f", "lavfi", "-i", "smptebars=size=512x288:rate=25:duration=3",
          "-f", "lavfi", "-i", "anullsrc=r=48000:cl=stereo", "-t", "3", *X264, *AAC, str(out)])


def tune_hdbars(out: Path) -> None:
    """4 s SMPTE HD bars with a synthetic tune (a stepping melody over a tremolo fifth): music, no speech."""
    tune = ("0.2*sin(2*PI*(220+110*floor(mod(t*2\\,4)))*t)+0.1*sin(2*PI*330*t)*sin(2*PI*2*t)")
    _run([*FFMPEG, "-f", "lavfi", "-i", "smptehdbars=size=512x288:rate=25:duration=4",
          "-f", "lavfi", "-i", f"aevalsrc={tune}:d=4:s=48000", *X264, *AAC, "-shortest", str(out)])


def _spoken(out: Path, sentence: str, caption: str, seconds: float) -> None:
    wav = out.with_suffix(".wav")
    _run(["espeak-ng", "-s", "150", "-w", str(wav), sentence])
    _run([*FFMPEG, "-f", "lavfi", "-i", f"color=c=0x203040:size=512x288:rate=25:duration={seconds}",
          "-i", str(wav),
          "-filter_complex", f"[0:v]{drawtext(caption, y='h-60')}[v];"
                             "[1:a]adelay=500:all=1,apad,aresample=44100[a]",
          "-map", "[v]", "-map", "[a]", "-t", f"{seconds:g}", *X264, *AAC, str(out)])
    wav.unlink(missing_ok=True)


def spoken_harbour(out: Path) -> None:
    """6 s: espeak-ng says HARBOUR from 0.5 s; caption "BOAT TOURS DAILY" at the bottom throughout."""
    _spoken(out, HARBOUR, "BOAT TOURS DAILY", 6.0)


def spoken_weather(out: Path) -> None:
    """6 s: espeak-ng says WEATHER from 0.5 s; caption "WEATHER ALERT" at the bottom throughout."""
    _spoken(out, WEATHER, "WEATHER ALERT", 6.0)


def two_captions(out: Path) -> None:
    """3 s on dark grey: "BREAKING NEWS" for 0-1.5 s, then "STORM WARNING TONIGHT" for 1.5-3 s; silent."""
    _run([*FFMPEG, "-f", "lavfi", "-i", "color=c=0x202020:size=512x288:rate=25:duration=3",
          "-vf", drawtext("BREAKING NEWS", enable="lt(t,1.5)") + ","
          + drawtext("STORM WARNING TONIGHT", size=30, enable="gte(t,1.5)"), *X264, str(out)])


def four_patterns(out: Path) -> None:
    """4 s, hard cuts at 1, 2 and 3 s between four test patterns (testsrc2, smptebars,
    mandelbrot, rgbtestsrc); no audio, no face."""
    sources = ["testsrc2", "smptebars", "mandelbrot", "rgbtestsrc"]
    argv = [*FFMPEG]
    for src in sources:
        argv += ["-f", "lavfi", "-t", "1", "-i", f"{src}=size=512x288:rate=25"]
    same = "".join(f"[{i}:v]format=yuv420p,setsar=1[v{i}];" for i in range(4))
    argv += ["-filter_complex", same + "".join(f"[v{i}]" for i in range(4)) + "concat=n=4:v=1:a=0[v]",
             "-map", "[v]", *X264, str(out)]
    _run(argv)


MAKERS: dict[str, Callable[[Path], None]] = {
    "noise_pattern.mp4": noise_pattern,
    "silence_bars.mp4": silence_bars,
    "tune_hdbars.mp4": tune_hdbars,
    "spoken_harbour.mp4": spoken_harbour,
    "spoken_weather.mp4": spoken_weather,
    "two_captions.mp4": two_captions,
    "four_patterns.mp4": four_patterns,
}


def make(directory: Path, name: str) -> Path:
    """The generated clip ``name`` in ``directory``, made now unless it is already there."""
    out = directory / name
    if not out.is_file():
        directory.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".partial.{name}")  # a killed maker leaves no half file under the real name
        MAKERS[name](tmp)
        tmp.replace(out)
    return out
