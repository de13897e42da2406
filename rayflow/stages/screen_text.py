"""What is written on screen: captions, titles, signs read from the sampled frames.

Each sampled frame is read by a warm PP-OCRv4 model (``rayflow.ml.ocr``); the
readings are then cleaned and merged:

- junk is dropped: lines scored below ``min_confidence`` (0.8; PP-OCR gives stray
  glyphs on textures 0.55-0.75, a colour checker's "Coxrite" 0.78-0.84, and real
  captions above 0.9) or with fewer than ``min_chars`` (2) letters/digits;
- the same text on neighbouring sampled frames becomes ONE ``ScreenText`` whose
  ``start_s``/``end_s`` are the first and last frames it was read on. Two readings
  are the same text when their normalised forms (casefolded, all whitespace
  removed, because OCR drops and adds spaces from frame to frame) have a difflib
  ratio of at least ``similarity`` (0.8). A text may be missed on up to
  ``max_gap_frames`` (1) sampled frames in between; after a longer gap it starts a
  new entry, so a caption that returns later is listed twice.
- each merged text must be plausible (``rayflow.ml.text_plausibility``): its
  readings are judged (character classes, word shape, a word list, near-misses
  of common words such as "peesents"), the best plausible reading is shown with
  its word boundaries restored ("WEATHERALERT" -> "WEATHER ALERT"), and a text
  with no known word at all (a name) is kept only when every frame read it the
  same and its mean score is at least ``unknown_min_confidence`` (0.95). A text
  with no plausible reading is not stored.

Example::

    stage = ScreenTextStage(threads=2)
    stage.setup("cpu")                   # once per worker
    texts = stage.read(frames)           # [ScreenText(text='RAYFLOW TEST 42', start_s=0.16, ...)]
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass, field

from rayflow.media.decode import Frames
from rayflow.ml.ocr import OcrModel, TextLine
from rayflow.ml.text_plausibility import TextJudge, Verdict
from rayflow.record import RoleRun, ScreenText, StageName
from rayflow.stages.base import ClipInput, Device, Resources, Stage

log = logging.getLogger(__name__)


@dataclass
class _Track:
    """One text followed across frames while merging."""

    key: str
    readings: list[tuple[int, TextLine]] = field(default_factory=list)
    """(frame index, line) per frame it was read on."""

    @property
    def last_frame(self) -> int:
        return self.readings[-1][0]


class ScreenTextStage(Stage[ClipInput, list[ScreenText]]):
    """Read, filter and merge on-screen text over a clip's sampled frames.

    ``threads`` are onnxruntime threads (keep them few when many actors share a
    box); ``device`` is 'cpu' or 'cuda[:N]' (CUDA needs onnxruntime-gpu). The
    thresholds are described in the module docstring.
    """

    name: StageName = "screen_text"
    resources = Resources(cpus=1, gpus=0.25)

    def __init__(
        self,
        *,
        threads: int = 2,
        device: str = "cpu",
        min_confidence: float = 0.8,
        min_chars: int = 2,
        similarity: float = 0.8,
        max_gap_frames: int = 1,
        unknown_min_confidence: float = 0.95,
        ocr: OcrModel | None = None,
        judge: TextJudge | None = None,
    ) -> None:
        self.ocr = ocr if ocr is not None else OcrModel(threads=threads)
        self.judge = judge if judge is not None else TextJudge()
        self.unknown_min_confidence = unknown_min_confidence
        self.device = device
        self.min_confidence = min_confidence
        self.min_chars = min_chars
        self.similarity = similarity
        self.max_gap_frames = max_gap_frames

    def setup(self, device: Device | None = None) -> None:
        """Load the OCR model and the word lists (once; later calls do nothing). Raises
        ``ModelMissing`` without weights. ``device`` None keeps the constructor's; "cuda"
        without onnxruntime-gpu runs on the CPU (``observed()`` says so)."""
        self.device = device or self.device
        self.ocr.setup(self.device)
        self.judge.setup()

    def observed(self) -> RoleRun:
        actual = str(getattr(self.ocr, "device", None) or "cpu")
        fell_back = self.device.startswith("cuda") and not actual.startswith("cuda")
        return RoleRun(device=actual, model=str(getattr(self.ocr, "name", "PP-OCR (rapidocr-onnxruntime)")),
                       fell_back=fell_back,
                       reason="onnxruntime has no CUDA provider here (needs onnxruntime-gpu)" if fell_back else None)

    def process(self, item: ClipInput) -> list[ScreenText]:
        """Texts on the clip's sampled frames (none without frames)."""
        return self.read(item.frames) if item.frames is not None else []

    def read(self, frames: Frames) -> list[ScreenText]:
        """Texts seen on ``frames``, ordered by first appearance, then top to bottom."""
        if frames.count == 0:
            return []
        per_frame = self.ocr.read(frames.images)
        kept = [[line for line in lines if self._keep(line)] for lines in per_frame]
        tracks = self._merge(kept)
        stamps = [float(t) for t in frames.timestamps_s]
        texts = [text for track in tracks if (text := self._plausible(track, stamps)) is not None]
        texts.sort(key=lambda t: (t.start_s, t.box.y0 if t.box else 0.0))
        log.debug("screen text: %d readings -> %d texts", sum(len(k) for k in kept), len(texts))
        return texts

    def _keep(self, line: TextLine) -> bool:
        return line.confidence >= self.min_confidence and sum(c.isalnum() for c in line.text) >= self.min_chars

    def _plausible(self, track: _Track, stamps: list[float]) -> ScreenText | None:
        """The track as a record part when one of its readings is plausible, else None."""
        judged = [(self.judge.verdict(line.text), line) for _, line in track.readings]
        verdict, line = max(judged, key=lambda vl: _preference(*vl))
        if not verdict.plausible:
            log.debug("screen text %r dropped: %s", line.text, verdict.reason)
            return None
        if verdict.unknown_only:
            confidence = sum(ln.confidence for _, ln in judged) / len(judged)
            agree = len({normalise(ln.text) for _, ln in judged}) == 1
            if not agree or confidence < self.unknown_min_confidence:
                log.debug("screen text %r dropped: no known word, %s, mean score %.2f", line.text,
                          "readings agree" if agree else "readings disagree", confidence)
                return None
        return _to_screen_text(track, stamps, verdict.text, line)

    def _merge(self, per_frame: list[list[TextLine]]) -> list[_Track]:
        """Greedy, frame by frame: each line joins the most similar open track (one line per
        track per frame), else opens a new one."""
        tracks: list[_Track] = []
        for index, lines in enumerate(per_frame):
            open_tracks = [t for t in tracks if t.last_frame >= index - 1 - self.max_gap_frames]
            pairs = sorted(
                ((ratio, li, ti)
                 for li, line in enumerate(lines)
                 for ti, track in enumerate(open_tracks)
                 if (ratio := _similarity(normalise(line.text), track.key)) >= self.similarity),
                reverse=True,
            )
            used_lines: set[int] = set()
            used_tracks: set[int] = set()
            for _, li, ti in pairs:
                if li in used_lines or ti in used_tracks:
                    continue
                used_lines.add(li)
                used_tracks.add(ti)
                open_tracks[ti].readings.append((index, lines[li]))
            for li, line in enumerate(lines):
                if li not in used_lines:
                    tracks.append(_Track(key=normalise(line.text), readings=[(index, line)]))
        return tracks


def normalise(text: str) -> str:
    """Comparison form of a reading: casefolded, with no whitespace at all."""
    return "".join(text.casefold().split())


def _similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def _preference(verdict: Verdict, line: TextLine) -> tuple[bool, bool, float, int, float]:
    """Which reading a track shows: plausible, then with known words, the most known,
    the most spaces (OCR drops spaces far more often than it invents them), the most confident."""
    return (verdict.plausible, not verdict.unknown_only, verdict.known_share, verdict.text.count(" "),
            line.confidence)


def _to_screen_text(track: _Track, stamps: list[float], text: str, best: TextLine) -> ScreenText:
    """One record part per track: ``text`` (the chosen reading, spaces restored) with
    that reading's box; confidence is the mean over all the track's readings."""
    frames = [index for index, _ in track.readings]
    return ScreenText(
        text=text,
        start_s=round(stamps[frames[0]], 3),
        end_s=round(stamps[frames[-1]], 3),
        frames=len(frames),
        confidence=round(sum(line.confidence for _, line in track.readings) / len(track.readings), 4),
        box=best.box,
    )
