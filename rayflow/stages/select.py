"""Best thumbnails: rank the sampled frames, then extract the winners at full quality.

Ranking looks only at the sampled frames (already decoded, small) plus the shot
and face results; then ffmpeg extracts the EXACT frame at each winner's timestamp
from the source, at full resolution, as a high-quality JPEG.

Score of a candidate (weights ``SHARPNESS_WEIGHT`` etc.), measured on the picture
inside black bars (``rayflow.stages.exposure.picture_area``), each part 0..1:

- sharpness relative to the content: the 95th percentile of |Laplacian| over the
  frame's own luma range (p98 - p2, + 16), then over the clip's best: crisp edges
  for the contrast there is, so a dark low-key close-up is not "soft" for being
  dark, and grain on fog is not "sharp";
- contrast: luma standard deviation (RMS contrast), full marks from 48;
- colour: Hasler & Suesstrunk's colourfulness, full marks from 40;
- exposure: mean luma inside 20..205 (low-key scenes are fine: Sintel's closing
  close-up averages 16-20 inside its bars), few clipped (>= 250) pixels, not mostly
  crushed (<= 5);
- faces: a face on the frame (``Faces.frames``, the same count everywhere), more for
  a bigger one.

On the Sintel trailer the old ranking (sharpness + exposure on the whole frame, bars
included) put a washed-out fog frame first and called the closing close-up "blank";
fog scores low on contrast and colour, and the close-up (one face, warm colour)
now ranks first.

Penalties (multiplied): a near-black, near-white or flat picture (fades, slates,
lens cap: mean luma < 16 with little above it, > 240, or std < 6) x0.05; a frame
within ``boundary_guard_s`` of a cut, or much more different from both sampled
neighbours than they are from each other (a flash, a transition caught mid-way)
x0.3. A blank frame is chosen only when nothing else exists.

Variety: the best candidate of each shot first (by score), then the rest by score,
keeping at least ``min_gap_share`` x the sampled span between picks while possible.

Extraction: one ffmpeg call for all the thumbnails of a file (``extract_frames``): each
target its own input fast-seeked to the keyframe before it with ``-noaccurate_seek`` and
raw timestamps (``-copyts``), or, where seeking is not worth it (MPEG-TS, short clips),
one input decoded in order; ``select`` takes the first frame at or after each target -
half a frame, exactly as
``rayflow.media.decode`` picks frames (its notes: ffmpeg's own accurate-seek
trimming mis-rounds coarse time bases). Display matrix applied (ffmpeg's
autorotate), non-square pixels made square, JPEG ``-q:v 2``; written to a temp file
in ``out_dir`` and renamed to ``best_<rank>.jpg``. HDR (PQ/HLG) sources are
tone-mapped to SDR BT.709 with the proxy's filter chain (``rayflow.stages.proxy.
tonemap_filter``), so a still looks like the proxy.

Example::

    selector = ThumbnailSelector()
    best = selector.select("clip.mp4", frames, shots=shots, faces=faces,
                            out_dir=clip_dir, timeout_s=60)
    best[0]   # RankedThumbnail(path='.../best_0.jpg', timestamp_s=4.2, score=0.83,
              #                 reason='sharp, well exposed, 1 face, shot 2/3', primary=True, ...)
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from rayflow.media.decode import Frames, VideoStream, first_frames_at, probe_video_stream
from rayflow.media.hdr import can_tonemap, hdr_tonemap_filters
from rayflow.media.still_image import write_full_jpeg
from rayflow.media.tools import ToolError, ToolTimeout, run_tool
from rayflow.record import Faces, RankedThumbnail, ShotDetection, StageName
from rayflow.stages.base import ClipInput, Device, Resources, Stage
from rayflow.stages.exposure import CLIP_LUMA, CRUSH_LUMA, luma, picture_area
from rayflow.stages.thumbnails import BRIGHT_MEAN_LUMA, DARK_MEAN_LUMA, FLAT_STD_LUMA

log = logging.getLogger(__name__)

SHARPNESS_WEIGHT = 0.25
CONTRAST_WEIGHT = 0.2
COLOUR_WEIGHT = 0.15
EXPOSURE_WEIGHT = 0.15
FACE_WEIGHT = 0.25
PROMPT_WEIGHT = 0.3
"""Weight of the image–text prompt match, when a CLIP/SigLIP model is configured."""
BLANK_PENALTY = 0.05
TRANSITION_PENALTY = 0.3
FULL_CONTRAST_STD = 48.0
"""Luma standard deviation (0..255) that earns full contrast marks."""
FULL_COLOURFULNESS = 40.0
"""Hasler-Suesstrunk colourfulness that earns full colour marks ("quite colourful" is ~45)."""
BLANK_PEAK_LUMA = 48.0
"""A dark picture is blank only when its 99th-percentile luma stays under this too."""
OUTLIER_MIN_DIFF = 20.0
"""Mean |luma| difference (0..255) to both neighbours above which a frame may be an outlier."""

_OURS = re.compile(r"best_\d+\.jpg")


@dataclass(frozen=True)
class SelectSettings:
    count: int = 3
    """Thumbnails kept."""
    jpeg_qscale: int = 2
    """ffmpeg ``-q:v`` for MJPEG: 2 is near-lossless (1 only grows the file), 31 the worst."""
    boundary_guard_s: float = 0.25
    """Sampled frames this close to a cut may be mid-transition."""
    min_gap_share: float = 0.1
    """Picks are kept this share of the sampled time span apart while candidates allow."""


@dataclass(frozen=True)
class Candidate:
    """One sampled frame, scored."""

    index: int
    """Index into the sampled frames."""
    timestamp_s: float
    score: float
    reason: str
    shot: int
    """Index of the shot it lies in (0 without shots)."""
    blank: bool


EXTRACT_TIMEOUT_S = 120.0
"""Most seconds the best-thumbnail extraction of one clip may take (within the clip's own bound)."""


class ThumbnailSelector(Stage[ClipInput, list[RankedThumbnail]]):
    """Ranks sampled frames and writes the best ones at full quality. Holds no model;
    it runs after shots, faces and the prompt scores (it reads them from the input)."""

    name: StageName = "best_thumbnails"
    resources = Resources(cpus=1)

    def __init__(self, settings: SelectSettings | None = None) -> None:
        self.settings = settings or SelectSettings()

    def setup(self, device: Device | None = None) -> None:
        """Nothing to load."""

    def process(self, item: ClipInput) -> list[RankedThumbnail]:
        """The best thumbnails of the clip, ranked with what earlier roles found (none without frames)."""
        if item.frames is None:
            return []
        return self.select(item.path, item.frames, shots=item.analysis.shots, faces=item.analysis.faces,
                           out_dir=item.out_dir, timeout_s=min(EXTRACT_TIMEOUT_S, item.timeout_s),
                           prompt_scores=item.prompt_scores)

    def rank(self, frames: Frames, *, shots: ShotDetection | None, faces: Faces | None,
             prompt_scores: np.ndarray | None = None) -> list[Candidate]:
        """Every sampled frame scored, in pick order (variety rules applied), best first."""
        if frames.count == 0:
            return []
        return _pick_order(score_frames(frames, shots=shots, faces=faces, settings=self.settings,
                                        prompt_scores=prompt_scores),
                           min_gap_s=self.settings.min_gap_share * _span(frames))

    def select(self, path: str | Path, frames: Frames, *, shots: ShotDetection | None,
                faces: Faces | None, out_dir: Path, timeout_s: float,
                prompt_scores: np.ndarray | None = None) -> list[RankedThumbnail]:
        """Rank, extract the top ``count`` as ``out_dir/best_<rank>.jpg`` (rank 0 is primary).

        Stale ``best_N.jpg`` of an earlier run beyond this run's count are removed.
        Raises ``ToolError`` / ``ToolTimeout`` (``timeout_s`` bounds all the calls) when
        ffmpeg cannot extract a frame. A still the sample stage read with Pillow (HEIC) is
        written whole by Pillow (``rayflow.media.still_image.write_full_jpeg``).
        """
        deadline = time.monotonic() + timeout_s
        chosen = self.rank(frames, shots=shots, faces=faces, prompt_scores=prompt_scores)[: self.settings.count]
        if not chosen:
            return []
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        targets = [out_dir / f"best_{rank}.jpg" for rank in range(len(chosen))]
        if frames.decoder == "pillow":  # a still ffmpeg cannot decode (HEIC): Pillow writes it whole
            for target in targets:
                write_full_jpeg(path, target)
        else:
            stream = frames.stream or probe_video_stream(path, timeout_s=_left(deadline, path))
            extract_frames(path, stream, [c.timestamp_s for c in chosen], targets,
                           qscale=self.settings.jpeg_qscale, timeout_s=_left(deadline, path))
        best: list[RankedThumbnail] = []
        for rank, (candidate, target) in enumerate(zip(chosen, targets, strict=True)):
            with Image.open(target) as image:
                width, height = image.size
            best.append(RankedThumbnail(path=str(target), timestamp_s=round(candidate.timestamp_s, 6),
                                        score=round(candidate.score, 4), reason=candidate.reason,
                                        primary=rank == 0, width=width, height=height))
        written = {Path(b.path).name for b in best}
        for stale in out_dir.iterdir():
            if _OURS.fullmatch(stale.name) and stale.name not in written:
                stale.unlink(missing_ok=True)
        return best


def score_frames(frames: Frames, *, shots: ShotDetection | None, faces: Faces | None,
                 settings: SelectSettings | None = None, prompt_scores: np.ndarray | None = None) -> list[Candidate]:
    """Score every sampled frame (see the module docstring), in frame order.

    ``prompt_scores`` (0..1 per frame) come from an image–text model (CLIP/SigLIP) when
    one is configured: how well each frame matches a "good thumbnail" prompt; they add
    ``PROMPT_WEIGHT`` to the score. None (the offline default) leaves them out."""
    settings = settings or SelectSettings()
    m = frame_measures(frames.images)
    sharpness, contrast, colour, exposure, blank = m["sharpness"], m["contrast"], m["colour"], m["exposure"], m["blank"]
    outlier = _outliers(m["luma"])
    cuts = [s.start_s for s in (shots.shots[1:] if shots else [])]
    face_by_time = {round(f.timestamp_s, 3): f for f in (faces.frames if faces else [])}
    shot_count = len(shots.shots) if shots and shots.shots else 1

    candidates = []
    for i, timestamp in enumerate(frames.timestamps_s.tolist()):
        face = face_by_time.get(round(timestamp, 3))
        face_score = 0.0
        if face is not None and face.faces:
            face_score = 0.5 + 0.5 * min(1.0, face.largest_face_height / 0.25)
        score = (SHARPNESS_WEIGHT * sharpness[i] + CONTRAST_WEIGHT * contrast[i] + COLOUR_WEIGHT * colour[i]
                 + EXPOSURE_WEIGHT * exposure[i] + FACE_WEIGHT * face_score)
        if prompt_scores is not None:
            score += PROMPT_WEIGHT * float(prompt_scores[i])
        near_cut = any(abs(timestamp - cut) < settings.boundary_guard_s for cut in cuts)
        reasons = []
        if blank[i]:
            score *= BLANK_PENALTY
            reasons.append("blank frame")
        if near_cut or outlier[i]:
            score *= TRANSITION_PENALTY
            reasons.append("near a cut" if near_cut else "unlike its neighbours")
        if prompt_scores is not None and float(prompt_scores[i]) >= 0.9:
            reasons.append("best prompt match")
        if sharpness[i] >= 0.95:
            reasons.append("sharpest")
        elif sharpness[i] >= 0.8:
            reasons.append("sharp")
        if contrast[i] >= 0.8:
            reasons.append("contrasty")
        if colour[i] >= 0.8:
            reasons.append("colourful")
        if exposure[i] >= 0.7:
            reasons.append("well exposed")
        if face is not None and face.faces:
            reasons.append(f"{face.faces} face" + ("s" if face.faces > 1 else ""))
        shot = _shot_of(timestamp, shots)
        if shot_count > 1:
            reasons.append(f"shot {shot + 1}/{shot_count}")
        candidates.append(Candidate(index=i, timestamp_s=float(timestamp), score=float(score),
                                    reason=", ".join(reasons) or "best available", shot=shot,
                                    blank=bool(blank[i])))
    return candidates


def frame_measures(images: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame parts of the score (module docstring), 0..1 each, plus ``blank`` (bool)
    and ``luma`` (the pictures' luma, for the outlier test), inside common black bars."""
    full = luma(images)  # (N, H, W) float32 0..255
    rows, cols = picture_area(full)
    lumas = np.ascontiguousarray(full[:, rows, cols])
    rgb = images[:, rows, cols].astype(np.float32)
    means = lumas.mean(axis=(1, 2))
    stds = lumas.std(axis=(1, 2))
    flat = lumas[:, ::2, ::2].reshape(len(lumas), -1)  # every 4th pixel: plenty for percentiles
    low, high, peak = np.percentile(flat, (2, 98, 99), axis=1)
    edges = np.array([np.percentile(np.abs(cv2.Laplacian(y, cv2.CV_32F)[::2, ::2]), 95) for y in lumas],
                     dtype=np.float64)
    crisp = edges / (high - low + 16.0)
    blank = ((means < DARK_MEAN_LUMA) & (peak < BLANK_PEAK_LUMA)) | (means > BRIGHT_MEAN_LUMA) | (stds < FLAT_STD_LUMA)
    reference = crisp[~blank].max() if (~blank).any() else crisp.max()
    sharpness = np.clip(crisp / reference, 0.0, 1.0) if reference > 0 else np.zeros_like(crisp)
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    colourfulness = (np.sqrt(rg.std(axis=(1, 2)) ** 2 + yb.std(axis=(1, 2)) ** 2)
                     + 0.3 * np.sqrt(rg.mean(axis=(1, 2)) ** 2 + yb.mean(axis=(1, 2)) ** 2))
    clipped = (lumas >= CLIP_LUMA).mean(axis=(1, 2))
    crushed = (lumas <= CRUSH_LUMA).mean(axis=(1, 2))
    balance = 1.0 - np.clip(np.maximum((20.0 - means) / 20.0, (means - 205.0) / 50.0), 0.0, 1.0)
    exposure = np.clip(balance - np.minimum(1.0, clipped * 5.0) - np.maximum(0.0, crushed - 0.5), 0.0, 1.0)
    return {"sharpness": sharpness, "contrast": np.clip(stds / FULL_CONTRAST_STD, 0.0, 1.0),
            "colour": np.clip(colourfulness / FULL_COLOURFULNESS, 0.0, 1.0), "exposure": exposure,
            "blank": blank, "luma": lumas}


def extract_frames(path: str | Path, stream: VideoStream, timestamps_s: list[float], targets: list[Path], *,
                   qscale: int = 2, timeout_s: float) -> None:
    """Write the frame of ``path`` at each of ``timestamps_s`` (seconds from the first video
    frame, as ``Frames.timestamps_s``) to its ``targets`` entry as a full-size JPEG, atomically;
    PQ/HLG tone-mapped to SDR BT.709 with the proxy's chain (``hdr_tonemap_filters``).

    One ffmpeg for all of them (a process start is ~50 ms of CPU: three per file were a fifth of
    the step on short clips). Where the stream can be seeked and has frames enough between the
    targets (``VideoStream.seeks_pay``, as the sampling decode decides), each target is its
    own input, fast-seeked to the keyframe before it; otherwise (MPEG-TS, short clips) one input is
    decoded in order and the frames picked on the way, up to the last one."""
    lows = stream.lows(timestamps_s)
    after = ""
    if abs(stream.sample_aspect - 1.0) > 1e-3:
        width, height = stream.display_size(max(stream.width, stream.height) * 4)
        after += f",scale={width}:{height}:flags=lanczos,setsar=1"
    if stream.hdr and can_tonemap():
        after = ",".join([after, *hdr_tonemap_filters(stream.transfer), "format=rgb24"])
    argv = ["ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-v", "error", "-copyts"]
    source = "file:" + str(Path(path).resolve())
    graph = []
    if stream.seeks_pay(len(lows)):
        for i, low in enumerate(lows):
            if low - stream.format_start_s > 0:
                argv += ["-noaccurate_seek", "-ss", f"{low - stream.format_start_s:.6f}"]
            argv += ["-i", source]
            graph.append(f"[{i}:V:0]select='gte(t,{low:.6f})',trim=end_frame=1{after}[v{i}]")
    else:
        argv += ["-i", source]
        order = sorted(range(len(lows)), key=lambda i: lows[i])
        pick = first_frames_at([lows[i] for i in order])
        graph.append(f"[0:V:0]select='{pick}'{after},split={len(lows)}" + "".join(f"[s{i}]" for i in order))
        graph += [f"[s{i}]select='eq(n,{rank})'[v{i}]" for rank, i in enumerate(order)]
    # The house temp names (hidden, ``.tmp``: media/tempfiles.py), so a worker killed before the
    # rename leaves temp files the next run sweeps, not stray outputs; the codec is named, as
    # ffmpeg can no longer guess it from the extension.
    temps = []
    for target in targets:
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".best_", suffix=".tmp")
        os.close(fd)
        temps.append(tmp_name)
    try:
        argv += ["-filter_complex", ";".join(graph)]
        for i, tmp_name in enumerate(temps):
            argv += ["-map", f"[v{i}]", "-frames:v", "1", "-c:v", "mjpeg", "-q:v", str(qscale), "-f", "image2",
                     "-update", "1", "-y", tmp_name]
        run_tool(argv, timeout_s=timeout_s, path=path)
        for timestamp_s, tmp_name in zip(timestamps_s, temps, strict=True):
            if os.path.getsize(tmp_name) == 0:
                raise ToolError("ffmpeg", path, f"no frame at {timestamp_s:.3f} s")
        for tmp_name, target in zip(temps, targets, strict=True):
            os.chmod(tmp_name, 0o644)  # mkstemp makes 0600; thumbnails are meant to be shared
            os.replace(tmp_name, target)
    except BaseException:
        for tmp_name in temps:
            Path(tmp_name).unlink(missing_ok=True)
        raise


def _pick_order(candidates: list[Candidate], *, min_gap_s: float) -> list[Candidate]:
    """Best of each shot first, then the rest by score, spaced ``min_gap_s`` while possible;
    blank frames only after every other one."""
    by_score = sorted(candidates, key=lambda c: (c.blank, -c.score, c.index))
    order: list[Candidate] = []
    seen_shots: set[int] = set()
    for c in by_score:
        if not c.blank and c.shot not in seen_shots:
            seen_shots.add(c.shot)
            order.append(c)
    rest = [c for c in by_score if c not in order]
    while rest:
        spaced = next((c for c in rest if not c.blank and
                       all(abs(c.timestamp_s - o.timestamp_s) >= min_gap_s for o in order)), None)
        pick = spaced or rest[0]
        order.append(pick)
        rest.remove(pick)
    return order


def _outliers(lumas: np.ndarray) -> np.ndarray:
    """Frames much more unlike both sampled neighbours than those are unlike each other.

    Compared as 16x9 area averages: the layout of light and dark, not texture or
    noise (two frames of grass differ pixel by pixel and still look alike)."""
    n = lumas.shape[0]
    flags = np.zeros(n, dtype=bool)
    small = np.stack([cv2.resize(y, (16, 9), interpolation=cv2.INTER_AREA) for y in lumas])
    for i in range(1, n - 1):
        to_prev = float(np.abs(small[i] - small[i - 1]).mean())
        to_next = float(np.abs(small[i] - small[i + 1]).mean())
        across = float(np.abs(small[i + 1] - small[i - 1]).mean())
        flags[i] = min(to_prev, to_next) > max(OUTLIER_MIN_DIFF, 2.0 * across)
    return flags


def _shot_of(timestamp_s: float, shots: ShotDetection | None) -> int:
    if not shots or not shots.shots:
        return 0
    for shot in shots.shots:
        if timestamp_s < shot.end_s:
            return shot.index
    return shots.shots[-1].index


def _span(frames: Frames) -> float:
    return float(frames.timestamps_s[-1] - frames.timestamps_s[0]) if frames.count > 1 else 0.0


def _left(deadline: float, path: str | Path) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise ToolTimeout("ffmpeg", path, "thumbnail deadline passed")
    return left
