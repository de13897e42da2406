"""Multi-frame perceptual hashes of a video: what ``rayflow dupes`` compares.

ffmpeg decodes the video at ``rate_hz`` frames per second, scaled to 32x32 grey (so
resizes, re-encodes and proxies of a shot look alike); each frame gets a 64-bit DCT
pHash (the sign of each of the 8x8 lowest-frequency coefficients, DC left out, against
their median). Leaving out DC and comparing with the median makes the bits indifferent
to a uniform change of brightness or contrast, so a fade keeps the hash of its shot;
frames that are nearly flat (black intros, the bottom of a fade, a blank slate) carry
no picture and are dropped (``informative``), so they cannot match everything.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rayflow.media.tools import ToolError, dies_with_parent, which

SIDE = 32
DEFAULT_RATE_HZ = 4.0
"""Samples per second: offsets come out to 0.25 s, and a trim never falls more than 1/8 s from a sample."""
MIN_STD = 6.0
"""Grey-level standard deviation (0..255) under which a 32x32 frame counts as flat (black, fade, slate)."""


@dataclass(frozen=True)
class VideoHashes:
    """Per-sample hashes of one video; ``times_s`` are from the video's first frame."""

    path: str
    rate_hz: float
    times_s: np.ndarray
    hashes: np.ndarray
    """uint64, one per informative sample (flat frames already dropped)."""
    samples: int
    """Samples decoded, informative or not (duration ~ samples / rate_hz)."""

    def __repr__(self) -> str:
        return f"VideoHashes({self.path!r}, {len(self.hashes)}/{self.samples} informative @ {self.rate_hz:g} Hz)"


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * x + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


_DCT = _dct_matrix(SIDE)
_BITS = (1 << np.arange(64, dtype=np.uint64)).astype(np.uint64)


def phash_frames(frames: np.ndarray) -> np.ndarray:
    """64-bit pHash of each (N, 32, 32) grey frame, as uint64."""
    coeffs = np.einsum("ij,njk,lk->nil", _DCT, frames.astype(np.float64), _DCT)[:, :8, :8].reshape(-1, 64)
    ac = coeffs[:, 1:]
    bits = np.concatenate([np.zeros((len(ac), 1), bool), ac > np.median(ac, axis=1, keepdims=True)], axis=1)
    return (bits.astype(np.uint64) * _BITS).sum(axis=1, dtype=np.uint64)


def informative(frames: np.ndarray, *, min_std: float = MIN_STD) -> np.ndarray:
    """Mask of frames with picture content (not black, not flat)."""
    return frames.reshape(len(frames), -1).std(axis=1) >= min_std


def video_hashes(path: Path, *, rate_hz: float = DEFAULT_RATE_HZ, timeout_s: float = 600.0) -> VideoHashes:
    """Decode ``path`` once at ``rate_hz`` and hash each sample. ``ToolError`` when ffmpeg fails."""
    argv = [which("ffmpeg"), "-hide_banner", "-nostdin", "-v", "error", "-i", "file:" + str(Path(path).resolve()),
            "-map", "0:V:0", "-an", "-sn", "-dn",
            "-vf", f"fps={rate_hz},scale={SIDE}:{SIDE}:flags=area,format=gray", "-f", "rawvideo", "pipe:1"]
    try:
        proc = subprocess.run(dies_with_parent(argv), capture_output=True, timeout=timeout_s,
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ToolError("ffmpeg", path, f"hashing timed out after {timeout_s:g} s") from exc
    if proc.returncode != 0:
        lines = proc.stderr.decode(errors="replace").strip().splitlines()
        raise ToolError("ffmpeg", path, f"could not decode for hashing: {lines[-1] if lines else proc.returncode}")
    n = len(proc.stdout) // (SIDE * SIDE)
    if n == 0:
        return VideoHashes(str(path), rate_hz, np.zeros(0), np.zeros(0, np.uint64), 0)
    frames = np.frombuffer(proc.stdout[: n * SIDE * SIDE], np.uint8).reshape(n, SIDE, SIDE)
    keep = informative(frames)
    times = np.arange(n, dtype=np.float64) / rate_hz
    return VideoHashes(str(path), rate_hz, times[keep], phash_frames(frames[keep]) if keep.any()
                       else np.zeros(0, np.uint64), n)
