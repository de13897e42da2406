"""The labelled quality set: what is really in each clip, marked by a person.

Real clips come from ../shared/media (facts and licences in its MANIFEST.md); the
generated ones from ``tests/quality/generated.py``. Labels were made by viewing
frames (contact sheets at 4 fps) and listening; where a frame is ambiguous it is
left out rather than guessed (the fog frames of the Sintel trailer, where a
hooded figure's face is hidden by a scarf; the game box in with-gps.mov, whose
cover shows a drawn face).

Sintel trailer (10 s, no audio), marked cuts as transition intervals in seconds:
fog fades to black while the title card fades in (3.75-4.4), the title fades
out, black, the old man fades in (6.25-7.0), a hard cut to Sintel (8.88-8.96).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

SpeechKind = Literal["music", "noise", "silence", "ambient", "clean speech"]
FaceClass = Literal["people", "cartoon", "test pattern", "graphics", "scene"]


@dataclass(frozen=True)
class LabelledClip:
    """One clip and the truth about it; a field left None is not labelled for that role."""

    name: str
    source: Literal["shared", "generated", "corpus"]
    """'shared': a file in ../shared/media; 'generated': a maker in tests/quality/generated.py;
    'corpus': a file of the real-file corpus (tests/corpus/files), used when present."""
    duration_s: float
    speech: SpeechKind | None = None
    """What its audio holds (None: no audio, or not labelled)."""
    transcript: str | None = None
    """What is said, for word error rate (clean speech only)."""
    texts: tuple[str, ...] | None = None
    """Every line of text on the frames at ``text_times_s`` (exhaustive: anything else read is garbled)."""
    text_times_s: tuple[float, ...] = ()
    face_class: FaceClass | None = None
    faces: tuple[tuple[float, bool], ...] = ()
    """(timestamp, a face is visible) per labelled frame."""
    cuts: tuple[tuple[float, float], ...] | None = None
    """Shot transitions as (start_s, end_s) intervals; () is one shot; None: not labelled."""
    fps: float = 25.0
    tags: tuple[str, ...] = field(default_factory=tuple)


JFK = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."

LABELLED: tuple[LabelledClip, ...] = (
    LabelledClip("sintel_trailer_10s.mp4", "shared", 10.0, fps=24.0,
                 texts=("THE BLENDER FOUNDATION", "presents"), text_times_s=(4.7, 5.3, 5.9),
                 face_class="people",  # CG humans in close-up
                 faces=((5.0, False), (6.0, False), (7.5, True), (8.2, True), (9.3, True), (9.8, True)),
                 cuts=((3.75, 4.4), (6.25, 7.0), (8.88, 8.96))),
    LabelledClip("bigbuckbunny.mp4", "shared", 5.312, speech="music", face_class="cartoon",
                 faces=((0.5, False), (2.0, False), (3.5, False), (5.0, False)), cuts=()),
    LabelledClip("bbb_2500ms.ts", "shared", 2.513, fps=24.0, speech="music", face_class="cartoon",
                 faces=((1.0, False), (2.2, False)), cuts=()),
    LabelledClip("big_buck_bunny_432_433.webm", "shared", 1.0, fps=24.0, speech="music",
                 face_class="cartoon", faces=((0.5, False),)),
    LabelledClip("sample_av1.mp4", "shared", 1.089, fps=29.97, face_class="people",
                 faces=((0.2, True), (0.5, True), (0.9, True)), cuts=()),
    LabelledClip("jfk.flac", "shared", 11.0, speech="clean speech", transcript=JFK),
    LabelledClip("max-heromode.mp4", "shared", 10.517, fps=29.97, speech="ambient", face_class="scene",
                 faces=((2.0, False), (6.0, False)), cuts=()),
    LabelledClip("100_0306.AVI", "shared", 2.733, fps=15.0, speech="ambient", face_class="scene",
                 faces=((1.0, False),)),
    LabelledClip("hlg10-color-test.mp4", "shared", 0.3, fps=29.99, speech="ambient", face_class="test pattern",
                 faces=((0.1, False),)),
    LabelledClip("noise_pattern.mp4", "generated", 3.0, speech="noise", face_class="test pattern",
                 faces=((0.5, False), (2.5, False))),
    LabelledClip("silence_bars.mp4", "generated", 3.0, speech="silence", face_class="test pattern",
                 faces=((1.0, False),)),
    LabelledClip("tune_hdbars.mp4", "generated", 4.0, speech="music", face_class="test pattern",
                 faces=((2.0, False),)),
    LabelledClip("spoken_harbour.mp4", "generated", 6.0, speech="clean speech",
                 transcript="Welcome to the harbour. The boats leave at nine every morning.",
                 texts=("BOAT TOURS DAILY",), text_times_s=(1.0, 4.0)),
    LabelledClip("spoken_weather.mp4", "generated", 6.0, speech="clean speech",
                 transcript="The weather today is calm, with light winds from the west.",
                 texts=("WEATHER ALERT",), text_times_s=(1.0, 4.0)),
    LabelledClip("two_captions.mp4", "generated", 3.0,
                 texts=("BREAKING NEWS", "STORM WARNING TONIGHT"), text_times_s=(0.5, 1.0, 2.0, 2.5)),
    LabelledClip("four_patterns.mp4", "generated", 4.0, face_class="test pattern",
                 faces=((0.5, False), (1.5, False), (2.5, False), (3.5, False)),
                 cuts=((0.96, 1.04), (1.96, 2.04), (2.96, 3.04))),
    # The real-file corpus: a drone over a coast, geese on a pond, a road from a car, a
    # cartoon bird, and the QuickTime logo animation (its name appears from ~3.3 s).
    LabelledClip("karma.mp4", "corpus", 12.079, fps=29.97, face_class="scene",
                 faces=((2.0, False), (6.0, False), (10.0, False)), cuts=()),
    LabelledClip("Issue_515.mp4", "corpus", 3.635, fps=29.986, face_class="scene",
                 faces=((1.0, False), (3.0, False)), cuts=()),
    LabelledClip("MVI_4823.AVI", "corpus", 2.6, fps=30.0, face_class="scene", faces=((0.5, False), (2.3, False))),
    LabelledClip("bbb_642x642_768kbps_30fps_vp9.webm", "corpus", 2.967, fps=30.0, face_class="cartoon",
                 faces=((0.5, False), (2.5, False)), cuts=()),
    LabelledClip("sample.3gp", "corpus", 4.933, fps=15.0, face_class="graphics",
                 texts=("QuickTime",), text_times_s=(3.5, 4.2, 4.8), faces=((1.0, False), (4.5, False))),
)
"""The labelled set. Speech: 6 non-speech (music, noise, silence) + 3 ambient + 3 clean;
text: 5 clips, 7 lines; faces: 47 frames (9 with faces); shots: 9 clips, 6 marked cuts
(16 clips without the corpus, 21 with it)."""

NON_SPEECH: frozenset[str] = frozenset({"music", "noise", "silence", "ambient"})
