"""Run the analysis role stages over the labelled set and score them against the labels.

One function per role; each sets its stage up once (as a warm actor would), runs it
on the labelled clips the way the analysis step does (frames decoded at 512 px,
audio extracted by ffmpeg), and returns plain dicts: the per-clip observations
and the role's scores. ``tests/quality/test_quality.py`` asserts the issue's
thresholds on them; ``benchmarks/quality.py`` writes them to JSON and PNG.

Faces go through the analysis role stage (``rayflow.stages.faces.FaceStage`` with
its default settings), never a detector of this module's own.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rayflow.media.decode import Frames, decode_frames
from tests.quality import generated
from tests.quality.labels import LABELLED, NON_SPEECH, LabelledClip
from tests.quality.scoring import cer, match_cuts, prf, wer

MATCH_CER = 0.25
"""A labelled line is found when a reading's CER (spaces included) is at most this."""
GARBLED_CER = 0.05
"""A reading is garbled when, spaces ignored, its CER to every labelled line is above this:
one wrong letter in a short word ("peesents" for "presents": 0.125) is garbled; a
dropped space ("WEATHERALERT") is not, it costs CER instead."""
CUT_TOLERANCE_S = 0.25
"""A detected cut matches a marked transition within this many seconds of its interval."""
TIMEOUT_S = 120.0


def corpus_files(repo_root: Path) -> Path | None:
    """The real-file corpus where this machine has it (see ``tests.corpus.facts.find_files``),
    else None (the corpus clips are then left out)."""
    from tests.corpus.facts import find_files

    folder = find_files()
    return folder if folder.is_dir() else None


def clip_path(clip: LabelledClip, shared_media: Path, generated_dir: Path, corpus_dir: Path | None = None) -> Path:
    """Where the clip's file is (generated clips are made on first use)."""
    match clip.source:
        case "generated":
            return generated.make(generated_dir, clip.name)
        case "corpus":
            return (corpus_dir or Path("/nonexistent")) / clip.name
        case _:
            return shared_media / clip.name


def _frames(path: Path, times_s: Iterable[float]) -> Frames:
    return decode_frames(path, timestamps_s=list(times_s), count=0, max_side=512, rotation=0,
                         timeout_s=TIMEOUT_S)


def available(clips: Iterable[LabelledClip], shared_media: Path,
              corpus_dir: Path | None = None) -> list[LabelledClip]:
    """The clips whose files exist here (generated ones always can)."""
    return [c for c in clips if c.source == "generated"
            or clip_path(c, shared_media, Path("."), corpus_dir).is_file()]


def evaluate_speech(clips: list[LabelledClip], paths: dict[str, Path]) -> dict[str, Any]:
    """Transcripts on speech and non-speech audio: precision/recall of 'has a transcript',
    non-speech clips that got one, and WER on clean speech."""
    from rayflow.stages.speech import SpeechStage

    stage = SpeechStage(threads=2, device="cpu")
    stage.setup()
    rows = []
    for clip in (c for c in clips if c.speech is not None):
        speech = stage.transcribe(paths[clip.name], audio_track_index=None, has_audio=True, timeout_s=TIMEOUT_S)
        text = speech.text if speech is not None else ""
        row: dict[str, Any] = {"clip": clip.name, "kind": clip.speech, "transcript": text,
                               "language": speech.language if speech else None}
        if clip.transcript is not None:
            row["wer"] = round(wer(clip.transcript, text), 4)
        rows.append(row)
    spoken = [r for r in rows if r["kind"] == "clean speech"]
    silent = [r for r in rows if r["kind"] in NON_SPEECH]
    tp = sum(bool(r["transcript"]) for r in spoken)
    fp = sum(bool(r["transcript"]) for r in silent)
    wers = [r["wer"] for r in spoken if "wer" in r]
    return {"clips": rows, **prf(tp, fp, len(spoken) - tp),
            "non_speech_clips": len(silent), "non_speech_with_transcript": fp,
            "wer_clean_mean": round(sum(wers) / len(wers), 4) if wers else None}


def evaluate_screen_text(clips: list[LabelledClip], paths: dict[str, Path]) -> dict[str, Any]:
    """On-screen text: each labelled line's best CER, lines found, and readings that match
    no labelled line (garbled or invented) on exhaustively labelled frames."""
    from rayflow.stages.screen_text import ScreenTextStage

    stage = ScreenTextStage(threads=2)
    stage.setup()
    rows = []
    tp = fp = fn = 0
    cers: list[float] = []
    for clip in (c for c in clips if c.texts is not None):
        read = [t.text for t in stage.read(_frames(paths[clip.name], clip.text_times_s))]
        best = {line: min((cer(line, r) for r in read), default=1.0) for line in clip.texts}
        garbled = [r for r in read if min((cer(_nospace(line), _nospace(r)) for line in clip.texts),
                                          default=1.0) > GARBLED_CER]
        found = sum(v <= MATCH_CER for v in best.values())
        tp, fp, fn = tp + len(read) - len(garbled), fp + len(garbled), fn + len(clip.texts) - found
        cers.extend(best.values())
        rows.append({"clip": clip.name, "truth": list(clip.texts), "read": read,
                     "cer": {k: round(v, 4) for k, v in best.items()}, "garbled": garbled})
    return {"clips": rows, **prf(tp, fp, fn), "garbled": fp,
            "cer_mean": round(sum(cers) / len(cers), 4) if cers else None}


def _nospace(text: str) -> str:
    return "".join(text.split())


def evaluate_faces(clips: list[LabelledClip], paths: dict[str, Path]) -> dict[str, Any]:
    """Faces per labelled frame through the analysis role stage: frame-level precision and
    recall of 'a face is here', and frames with a face on cartoons, test patterns, scenes."""
    from rayflow.stages.faces import FaceStage

    stage = FaceStage()
    stage.setup()
    rows = []
    for clip in (c for c in clips if c.faces):
        frames = _frames(paths[clip.name], [t for t, _ in clip.faces])
        result = stage.detect(frames)
        counts = [f.faces for f in result.frames] if result is not None else [0] * frames.count
        if len(counts) != len(clip.faces):
            raise RuntimeError(f"{clip.name}: {len(counts)} face frames for {len(clip.faces)} labels")
        for (t, truth), count in zip(clip.faces, counts, strict=True):
            rows.append({"clip": clip.name, "t": t, "class": clip.face_class, "truth": truth, "faces": count})
    tp = sum(r["truth"] and r["faces"] > 0 for r in rows)
    fp = sum(not r["truth"] and r["faces"] > 0 for r in rows)
    fn = sum(r["truth"] and r["faces"] == 0 for r in rows)
    by_class: dict[str, int] = {}
    for r in rows:
        if not r["truth"]:
            by_class[r["class"]] = by_class.get(r["class"], 0) + (r["faces"] > 0)
    return {"frames": rows, **prf(tp, fp, fn), "false_face_frames_by_class": by_class,
            "method": getattr(result, "method", None) if rows else None}


def evaluate_shots(clips: list[LabelledClip], paths: dict[str, Path]) -> dict[str, Any]:
    """Shot cuts against marked transitions: precision, recall, F1 over all marked clips."""
    from rayflow.stages.shots import ShotSettings, ShotStage

    stage = ShotStage(ShotSettings())
    stage.setup("cpu")
    rows = []
    tp = fp = fn = 0
    for clip in (c for c in clips if c.cuts is not None):
        shots = stage.detect(paths[clip.name], fps=clip.fps, duration_s=clip.duration_s, timeout_s=TIMEOUT_S)
        detected = [s.start_s for s in shots.shots[1:]]
        hits = match_cuts(list(clip.cuts), detected, CUT_TOLERANCE_S)
        tp, fp, fn = tp + hits, fp + len(detected) - hits, fn + len(clip.cuts) - hits
        rows.append({"clip": clip.name, "marked": [list(c) for c in clip.cuts], "detected": detected,
                     "method": shots.method})
    return {"clips": rows, **prf(tp, fp, fn)}


ROLES = {"speech": evaluate_speech, "screen_text": evaluate_screen_text,
         "faces": evaluate_faces, "shots": evaluate_shots}


def evaluate(shared_media: Path, generated_dir: Path, roles: Iterable[str] = tuple(ROLES),
             clips: Iterable[LabelledClip] = LABELLED, corpus_dir: Path | None = None) -> dict[str, Any]:
    """Every requested role over the labelled clips present here (corpus clips only with
    ``corpus_dir``); a role that fails is recorded under ``errors`` and the others still run."""
    present = available(clips, shared_media, corpus_dir)
    paths = {c.name: clip_path(c, shared_media, generated_dir, corpus_dir) for c in present}
    out: dict[str, Any] = {"clips": [c.name for c in present], "errors": {}, "timings_s": {}}
    for role in roles:
        started = time.perf_counter()
        try:
            out[role] = ROLES[role](present, paths)
        except Exception as exc:  # one role failing must not hide the others' scores
            out["errors"][role] = f"{type(exc).__name__}: {exc}"[:500]
        out["timings_s"][role] = round(time.perf_counter() - started, 2)
    return out
