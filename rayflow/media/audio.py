"""Extract a clip's audio as 16 kHz mono float32 samples, in one ffmpeg call.

The samples come back on a pipe (no temporary file), already resampled and
downmixed the way Whisper-family models expect them. Memory is the trade-off: an
hour of audio is 16000 x 3600 x 4 bytes = 230 MB, so callers that may meet very
long files pass ``max_duration_s``.

Example::

    samples = extract_audio("clip.mp4", stream_index=1, timeout_s=120)
    samples.dtype, samples.shape     # float32, (duration_s * 16000,)
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from rayflow.media.tools import ToolError, last_line, run_tool

log = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 16_000
"""Output sample rate; what Whisper (and most speech models) are trained on."""


def extract_audio(
    path: str | Path,
    *,
    stream_index: int | None,
    timeout_s: float,
    max_duration_s: float | None = None,
) -> np.ndarray:
    """Decode one audio stream of ``path`` to 16 kHz mono float32 PCM (nominally -1..1;
    resampling may overshoot a little).

    ``stream_index`` is the stream's index in the container (as ffprobe and
    ``AudioTrack.index`` give it); None takes the first audio stream. Channels are
    downmixed with ffmpeg's default matrix. ``max_duration_s`` keeps only the
    start of the audio (None = all of it).

    Returns a read-only 1-D array: empty for a zero-length stream, zeros for a
    silent one (deciding what silence means is the caller's business).
    Raises ``ToolError`` when ffmpeg fails (no such stream, not media, missing
    file) and ``ToolTimeout`` after ``timeout_s`` seconds.
    """
    if stream_index is not None and (not isinstance(stream_index, int) or stream_index < 0):
        raise ValueError(f"stream_index must be a non-negative int or None, got {stream_index!r}")
    if max_duration_s is not None and max_duration_s < 0:
        raise ValueError(f"max_duration_s must be >= 0, got {max_duration_s}")
    source = Path(path).resolve()
    # "file:" + an absolute path: a name such as "-y" or "concat:x" is never read as
    # an option or a protocol.
    argv = ["ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-v", "error",
            "-i", f"file:{source}",
            "-map", f"0:{stream_index}" if stream_index is not None else "0:a:0",
            "-vn", "-sn", "-dn"]
    if max_duration_s is not None:
        argv += ["-t", f"{max_duration_s:.6f}"]
    argv += ["-ac", "1", "-ar", str(SAMPLE_RATE_HZ), "-c:a", "pcm_f32le", "-f", "f32le", "pipe:1"]
    out = run_tool(argv, timeout_s=timeout_s, path=path, check=False)
    if out.returncode != 0:
        raise ToolError("ffmpeg", path, _explain(out.stderr, stream_index))
    data = out.stdout
    if len(data) % 4:
        raise ToolError("ffmpeg", path, f"audio output of {len(data)} bytes is not whole float32 samples")
    samples = np.frombuffer(data, dtype="<f4")
    log.debug("extracted %.2f s of audio from %s (stream %s)",
              samples.size / SAMPLE_RATE_HZ, path, stream_index)
    return samples


def _explain(stderr: bytes, stream_index: int | None) -> str:
    """ffmpeg's failure in words a catalogue reader understands (its own last line is
    'To ignore this, add a trailing '?' to the map.' when there is no audio)."""
    text = stderr.decode("utf-8", errors="replace")
    if "matches no streams" in text:
        return "no audio stream" if stream_index is None else f"no stream with index {stream_index}"
    if "does not contain any stream" in text:
        return f"stream {stream_index} is not an audio stream"
    return last_line(stderr)
