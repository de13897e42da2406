"""Near-duplicate videos from multi-frame perceptual hashes, with the time offset of the overlap.

Two videos are a pair when many of their informative samples (``media.vhash``) match
(Hamming distance <= ``max_distance`` of 64 bits) *at one consistent time offset*: a
re-encode or resize matches at offset 0, a trim at the trim point, a proxy at 0. A
single offset is what tells a real copy from two clips that merely share a look (two
dark interiors match here and there, at scattered offsets). The pair must also cover a
good part of the overlap it implies (``min_coverage``), so a shared second of stock
footage inside two long clips is reported with its short overlap, not as a copy.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rayflow.media.tools import ToolError
from rayflow.media.vhash import DEFAULT_RATE_HZ, VideoHashes, video_hashes

log = logging.getLogger(__name__)

MAX_DISTANCE = 10
"""Bits of 64 that may differ for two samples to match; a CRF 35 re-encode at 1/4 size stays under ~6."""
MIN_MATCHES = 4
"""Matched samples at the winning offset (1 s at 4 Hz) before a pair is considered."""
MIN_COVERAGE = 0.5
"""Share of the informative samples inside the implied overlap that must match."""


@dataclass(frozen=True)
class DupePair:
    """``b`` shows what ``a`` shows from ``a_start_s`` on; ``offset_s`` = a time - b time of the same frame."""

    a: str
    b: str
    offset_s: float
    a_start_s: float
    a_end_s: float
    b_start_s: float
    b_end_s: float
    matched: int
    coverage: float
    """Matched / informative samples of ``a`` inside the overlap."""
    mean_distance: float

    @property
    def overlap_s(self) -> float:
        return self.a_end_s - self.a_start_s

    def to_dict(self) -> dict[str, object]:
        return {"a": self.a, "b": self.b, "offset_s": self.offset_s, "a_start_s": self.a_start_s,
                "a_end_s": self.a_end_s, "b_start_s": self.b_start_s, "b_end_s": self.b_end_s,
                "overlap_s": round(self.overlap_s, 3), "matched": self.matched, "coverage": round(self.coverage, 3),
                "mean_distance": round(self.mean_distance, 2)}


def compare(a: VideoHashes, b: VideoHashes, *, max_distance: int = MAX_DISTANCE, min_matches: int = MIN_MATCHES,
            min_coverage: float = MIN_COVERAGE) -> DupePair | None:
    """The pair (a, b) when they share footage at one offset, else None."""
    if len(a.hashes) == 0 or len(b.hashes) == 0 or a.rate_hz != b.rate_hz:
        return None
    dist = np.bitwise_count(a.hashes[:, None] ^ b.hashes[None, :])
    ia, ib = np.nonzero(dist <= max_distance)
    if len(ia) < min_matches:
        return None
    step = 1.0 / a.rate_hz
    bins = np.round((a.times_s[ia] - b.times_s[ib]) / step).astype(np.int64)
    best = _best_offset(bins, ia)
    near = np.abs(bins - best) <= 1  # a trim between two samples lands on either neighbour
    ia_m, ib_m = ia[near], ib[near]
    matched = len(np.unique(ia_m))
    if matched < min_matches:
        return None
    offset = float(np.median(a.times_s[ia_m] - b.times_s[ib_m]))
    b_dur = b.samples * step
    a_dur = a.samples * step
    lo, hi = max(0.0, offset), min(a_dur, offset + b_dur)  # the overlap, in a's time
    inside_a = int(np.count_nonzero((a.times_s >= lo) & (a.times_s < hi)))
    inside_b = int(np.count_nonzero((b.times_s + offset >= lo) & (b.times_s + offset < hi)))
    coverage = min(matched / max(1, inside_a), len(np.unique(ib_m)) / max(1, inside_b))
    if coverage < min_coverage:
        return None
    return DupePair(a=a.path, b=b.path, offset_s=round(offset, 3),
                    a_start_s=round(float(a.times_s[ia_m].min()), 3),
                    a_end_s=round(float(a.times_s[ia_m].max()) + step, 3),
                    b_start_s=round(float(b.times_s[ib_m].min()), 3),
                    b_end_s=round(float(b.times_s[ib_m].max()) + step, 3),
                    matched=matched, coverage=min(1.0, coverage), mean_distance=float(dist[ia_m, ib_m].mean()))


def _best_offset(bins: np.ndarray, ia: np.ndarray) -> int:
    """The offset bin (merged with its neighbours) with the most distinct matched samples of a."""
    votes: dict[int, set[int]] = {}
    for off, i in zip(bins.tolist(), ia.tolist(), strict=True):
        votes.setdefault(off, set()).add(i)
    return max(votes, key=lambda o: (len(votes[o] | votes.get(o - 1, set()) | votes.get(o + 1, set())),
                                     len(votes[o]), -abs(o)))


def find_pairs(videos: Sequence[VideoHashes], *, max_distance: int = MAX_DISTANCE, min_matches: int = MIN_MATCHES,
               min_coverage: float = MIN_COVERAGE) -> list[DupePair]:
    """Every near-duplicate pair among ``videos`` (limits as in ``compare``), longest overlap first."""
    pairs = []
    for i, a in enumerate(videos):
        for b in videos[i + 1:]:
            pair = compare(a, b, max_distance=max_distance, min_matches=min_matches, min_coverage=min_coverage)
            if pair is not None:
                pairs.append(pair)
    return sorted(pairs, key=lambda p: (-p.overlap_s, p.a, p.b))


def cached_hashes(path: Path, cache_dir: Path | None, *, rate_hz: float = DEFAULT_RATE_HZ) -> VideoHashes:
    """``video_hashes`` of ``path``, kept in ``cache_dir`` keyed by path, size, mtime and rate."""
    if cache_dir is None:
        return video_hashes(path, rate_hz=rate_hz)
    st = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{rate_hz}".encode()).hexdigest()[:24]
    file = cache_dir / f"{key}.npz"
    try:
        with np.load(file) as data:
            return VideoHashes(str(path), rate_hz, data["times_s"], data["hashes"], int(data["samples"]))
    except (OSError, KeyError, ValueError):
        pass
    made = video_hashes(path, rate_hz=rate_hz)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir / f".{key}.tmp.npz"
    np.savez(tmp, times_s=made.times_s, hashes=made.hashes, samples=made.samples)
    tmp.replace(file)
    return made


def hash_all(paths: Sequence[Path], cache_dir: Path | None) -> tuple[list[VideoHashes], dict[str, str]]:
    """Hashes of each path that decodes, and {path: error} for the rest (the batch goes on)."""
    done, errors = [], {}
    for path in paths:
        try:
            done.append(cached_hashes(path, cache_dir))
        except (ToolError, OSError) as exc:
            errors[str(path)] = str(exc)
            log.info("no hashes for %s: %s", path, exc)
    return done, errors
