"""``ClipAnalyzer``: every analysis model of one actor, loaded once, run per clip.

The AnalyzerPool (``rayflow.engine.pools``) hosts one of these per Ray actor. The
device is chosen here, inside the actor: CUDA when torch sees it, else CPU. A
model that fails on one clip is recorded in that clip's errors (``speech``,
``screen_text``, ``shots``, ``faces``, ``best_thumbnails``) and the actor carries on;
a model whose weights are missing is reported once per clip as unavailable, never
replaced by a made-up result.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from rayflow.config import Settings
from rayflow.media.decode import Frames
from rayflow.ml.device import torch_device
from rayflow.record import Analysis, ClipRecord

log = logging.getLogger(__name__)


@dataclass
class AnalyzeResult:
    """What the actor returns for one clip."""

    analysis: Analysis
    errors: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


class ModelTimeout(Exception):
    """A model call ran past ``Timeouts.model_call_s``; its thread was abandoned."""


def call_with_deadline(call: Any, timeout_s: float, *, what: str) -> Any:
    """Run ``call()`` on a daemon thread and return its result, or raise ``ModelTimeout``.

    A model call in native code (onnxruntime, CTranslate2, torch, OpenCV) cannot be
    interrupted from Python, so a hung one is abandoned, not stopped: it keeps its thread
    (and maybe a core) until the process ends. The host must restart the process after a
    timeout (``ClipAnalyzer.stuck``). Cost: one thread start per call (~0.1 ms)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:  # handed to the caller's thread below
            box["error"] = exc

    worker = threading.Thread(target=target, name=f"model:{what}", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise ModelTimeout(f"timed out after {timeout_s:g} s (model call abandoned; the analyzer restarts)")
    if "error" in box:
        raise box["error"]
    return box.get("value")


class ClipAnalyzer:
    """Speech, on-screen text, shots, faces/shot scale, focal length, description, tags
    and the best thumbnails of one clip. ``setup()`` once; ``process()`` per clip."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loads = 0
        """How many times models were loaded (one per actor: the pool's tests count it)."""
        self.device = "cpu"
        self.models: dict[str, str] = {}
        self.unavailable: dict[str, str] = {}
        self.stages: dict[str, Any] = {}
        self.stuck = False
        """A model call timed out and its thread is still running: the host must restart this
        process (the AnalyzerActor exits so Ray restarts it with fresh models)."""

    def setup(self) -> None:
        if self.loads:
            return
        from rayflow.stages.faces import FaceSettings, FaceStage
        from rayflow.stages.screen_text import ScreenTextStage
        from rayflow.stages.select import ThumbnailSelector
        from rayflow.stages.shots import ShotSettings, ShotStage
        from rayflow.stages.speech import SpeechStage

        a = self.settings.analysis
        self.device = torch_device()
        wanted: dict[str, Any] = {}
        if a.shots:
            wanted["shots"] = lambda: ShotStage(ShotSettings(detector=a.shot_detector, threads=a.threads))
        if a.speech:
            wanted["speech"] = lambda: SpeechStage(a.speech_model, threads=a.threads, device="auto")
        if a.screen_text:
            wanted["screen_text"] = lambda: ScreenTextStage(threads=a.threads)
        if a.faces:
            wanted["faces"] = lambda: FaceStage(FaceSettings(threads=1))
        if a.thumbnails:
            wanted["best_thumbnails"] = ThumbnailSelector
        from rayflow.ml.captioner import Captioner, configured_captioner
        from rayflow.ml.text_encoder import ImageTextEncoder, configured_image_model

        image_model = configured_image_model()
        if image_model and a.thumbnails:  # optional: rank thumbnails by a "good thumbnail" prompt
            wanted["thumbnail_prompt"] = lambda: ImageTextEncoder(image_model)
        caption_model = configured_captioner()
        if caption_model:  # optional: no captioning VLM ships offline
            wanted["caption"] = lambda: Captioner(caption_model)
        for role, make in wanted.items():
            started = time.perf_counter()
            try:
                stage = make()
                if role in ("shots", "faces", "caption", "thumbnail_prompt"):
                    stage.setup(self.device)
                else:
                    stage.setup()
            except Exception as exc:  # missing weights or a broken runtime: say so per clip
                self.unavailable[role] = f"model unavailable: {exc}"
                log.error("analysis role %s unavailable: %s", role, exc)
                continue
            self.stages[role] = stage
            self.models[role] = _model_name(role, stage)
            log.info("loaded %s (%s) in %.2f s", role, self.models[role], time.perf_counter() - started)
        self.loads += 1

    def process(self, path: str, clip_id: str, frames: Frames, record: ClipRecord) -> AnalyzeResult:
        """Analyse one clip from its decoded frames (object-store ref, resolved by Ray)."""
        if not self.loads:
            self.setup()
        result = AnalyzeResult(Analysis(models=dict(self.models), device=self.device))
        errors, timings, analysis = result.errors, result.timings, result.analysis
        errors.update(self.unavailable)
        timeout_s = self.settings.timeouts.analyze_s
        video = record.video
        duration_s = (video.duration_s if video else None) or (
            record.container.duration_s if record.container else None)

        def run(role: str, call: Any) -> Any:
            if role not in self.stages:
                return None
            started = time.perf_counter()
            try:
                return call_with_deadline(lambda: call(self.stages[role]),
                                          self.settings.timeouts.model_call_s, what=role)
            except ModelTimeout as exc:
                self.stuck = True
                errors[role] = str(exc)
                log.error("%s hung on %s: %s", role, path, exc)
                return None
            except Exception as exc:  # one model failing on one clip never stops the others
                errors[role] = f"{type(exc).__name__}: {exc}"[:500]
                log.warning("%s failed on %s: %s", role, path, exc)
                return None
            finally:
                timings[role] = time.perf_counter() - started

        analysis.shots = run("shots", lambda s: s.process(
            path, fps=video.fps if video else None, duration_s=duration_s, timeout_s=timeout_s,
            strip=frames.strip))  # decode once: the sampling pass's 48x27 frames
        audio = _default_audio(record)
        analysis.speech = run("speech", lambda s: s.process(
            path, audio_track_index=audio, has_audio=audio is not None, timeout_s=timeout_s))
        analysis.screen_text = run("screen_text", lambda s: s.process(frames)) or []
        analysis.faces = run("faces", lambda s: s.process(frames))
        analysis.caption = run("caption", lambda s: s.caption(frames.images) or None)
        from rayflow.stages.describe import describe
        from rayflow.stages.focal import focal_estimate

        analysis.focal = focal_estimate(record.camera)
        prompt_scores = run("thumbnail_prompt", lambda s: prompt_match(s, frames.images))
        analysis.best_thumbnails = run("best_thumbnails", lambda s: s.process(
            path, frames, shots=analysis.shots, faces=analysis.faces,
            out_dir=self.settings.clip_dir(clip_id), timeout_s=min(120.0, timeout_s),
            prompt_scores=prompt_scores)) or []
        started = time.perf_counter()
        analysis.description, analysis.tags = describe(
            duration_s=duration_s, video=video, shots=analysis.shots, faces=analysis.faces,
            speech=analysis.speech, screen_text=analysis.screen_text, exposure=record.exposure,
            focal=analysis.focal)
        timings["describe"] = time.perf_counter() - started
        return result


THUMBNAIL_PROMPT = "a sharp, well-composed, beautiful photograph"


def prompt_match(encoder: Any, images: Any, prompt: str = THUMBNAIL_PROMPT) -> Any:
    """Per-frame similarity to ``prompt``, min-max scaled to 0..1 over the clip's frames."""
    import numpy as np

    sims = encoder.encode_arrays(images) @ encoder.encode([prompt])[0]
    spread = float(sims.max() - sims.min()) if len(sims) else 0.0
    return (sims - sims.min()) / spread if spread > 1e-9 else np.full(len(sims), 0.5)


def _default_audio(record: ClipRecord) -> int | None:
    """Stream index of the default audio track, else the first; None without audio."""
    if not record.audio_tracks:
        return None
    for track in record.audio_tracks:
        if track.default:
            return track.index
    return record.audio_tracks[0].index


def _model_name(role: str, stage: Any) -> str:
    match role:
        case "shots":
            return str(getattr(stage, "method", "shots"))
        case "speech":
            model = getattr(stage, "model", None)
            return str(getattr(model, "name", None) or getattr(model, "model_id", None) or "faster-whisper")
        case "screen_text":
            return "PP-OCR (rapidocr-onnxruntime)"
        case "faces":
            return str(getattr(stage, "method", "haar"))
        case "thumbnail_prompt":
            return f"{getattr(stage, 'model_id', 'clip')} prompt score"
        case "caption":
            return str(getattr(stage, "model_id", "captioner"))
        case _:
            return "sharpness/exposure/faces ranking"


__all__ = ["AnalyzeResult", "ClipAnalyzer"]
