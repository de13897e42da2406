"""Exposure from the sampled frames: luma statistics, clipping, and a stop offset.

Luma is Rec.709 Y' = 0.2126 R' + 0.7152 G' + 0.0722 B' on the decoded (gamma-encoded,
full-range) RGB, 0..255. The stop offset converts the *median* luma to scene-linear
with the inverse Rec.709 camera curve and compares it with 18 % mid-grey:

    offset_ev = log2(linear(median / 255) / 0.18)

Approximations, stated: Y' of encoded RGB is not linear luminance; real cameras add
knees, log profiles or HDR curves (PQ/HLG frames arrive tone-mapped to SDR BT.709 with
the proxy's chain, ``Frames.tone_mapped``, so they are measured as the proxy shows them);
only the median is converted. So the offset is a guide
("about two stops under"), not a light-meter reading. Code value 128 reads +0.5 EV;
mid-grey's 18 % encodes to about 104. The median is floored at code value 1, so a
black frame reads about -7.7 EV; a white one reads the ceiling, +2.5 EV.

Editorial black is not exposure: letterbox/pillarbox bars (edge rows or columns dark in
every frame, up to 30 % a side) and blank frames (fades, title cards: mean luma < 16)
are left out when anything else is there. Without that, the Sintel trailer in
../shared/media (2.39:1 bars, three title cards) read "underexposed by ~5.6 stops".
"""

from __future__ import annotations

import math

import numpy as np

from rayflow.media.decode import Frames
from rayflow.record import ExposureInfo, StageName
from rayflow.stages.base import FileItem, Resources, Stage

REC709_LUMA = (0.2126, 0.7152, 0.0722)
CLIP_LUMA = 250.0
"""A pixel at or above this luma counts as clipped highlight."""
CRUSH_LUMA = 5.0
"""A pixel at or below this luma counts as crushed shadow."""
MID_GREY = 0.18

CLIPPED_WARN_PCT = 5.0
"""Warn when more than this share of pixels is clipped: skies and lamps clip a little."""
CRUSHED_WARN_PCT = 40.0
"""Warn when more than this share is crushed; generous, as night and low-key scenes are legitimately dark."""
BAR_LUMA = 12.0
"""An edge row/column whose mean luma stays at or below this in every frame is a black bar."""
MAX_BAR_SHARE = 0.3
"""At most this share of the height (width) is cut from each side as a bar."""
BLANK_FRAME_LUMA = 16.0
"""A frame with mean luma below this is blank (fade, title card) and left out when others exist."""

UNDER_WARN_EV = -2.0
"""Warn when the median sits this many stops or more below mid-grey (median code value <= ~44)."""
OVER_WARN_EV = 1.5
"""Warn when the median sits this far above mid-grey (median code value >= ~182)."""


def rec709_to_linear(encoded: float) -> float:
    """Inverse of the Rec.709 OETF for a 0..1 value (scene-linear, 1.0 = reference white)."""
    encoded = min(max(encoded, 0.0), 1.0)
    if encoded < 0.081:
        return encoded / 4.5
    return ((encoded + 0.099) / 1.099) ** (1 / 0.45)


def luma(images: np.ndarray) -> np.ndarray:
    """Rec.709 luma of (..., 3) uint8 RGB as float32, 0..255."""
    return images.astype(np.float32) @ np.asarray(REC709_LUMA, dtype=np.float32)


def picture_area(lumas: np.ndarray) -> tuple[slice, slice]:
    """(rows, columns) inside black bars common to all frames of (N, H, W) luma."""
    return (_inside_bars(lumas.mean(axis=2).max(axis=0)),
            _inside_bars(lumas.mean(axis=1).max(axis=0)))


def _inside_bars(profile: np.ndarray) -> slice:
    lit = np.flatnonzero(profile > BAR_LUMA)
    if lit.size == 0:
        return slice(None)  # all dark: no bars to speak of, measure everything
    limit = int(profile.size * MAX_BAR_SHARE)
    return slice(min(int(lit[0]), limit), max(int(lit[-1]) + 1, profile.size - limit))


def measure_exposure(frames: Frames) -> ExposureInfo:
    """Exposure of the sampled frames taken together (every pixel weighs the same).

    Black bars and blank frames are left out first (see the module docstring);
    ``frames`` in the result counts the frames measured. The warning carries the
    specific reasons, e.g. "12.3% of pixels clipped; overexposed by ~1.8 stops",
    from the thresholds in this module.
    """
    if frames.count == 0:
        raise ValueError("no frames to measure")
    lumas = luma(frames.images)
    rows, cols = picture_area(lumas)
    lumas = lumas[:, rows, cols]
    lit = lumas.mean(axis=(1, 2)) >= BLANK_FRAME_LUMA
    if lit.any():
        lumas = lumas[lit]
    values = lumas.ravel()
    median = float(np.median(values))
    clipped_pct = float(np.count_nonzero(values >= CLIP_LUMA)) * 100.0 / values.size
    crushed_pct = float(np.count_nonzero(values <= CRUSH_LUMA)) * 100.0 / values.size
    offset_ev = math.log2(rec709_to_linear(max(median, 1.0) / 255.0) / MID_GREY)

    reasons: list[str] = []
    if clipped_pct > CLIPPED_WARN_PCT:
        reasons.append(f"{clipped_pct:.1f}% of pixels clipped")
    if crushed_pct > CRUSHED_WARN_PCT:
        reasons.append(f"{crushed_pct:.1f}% of pixels crushed to black")
    if offset_ev <= UNDER_WARN_EV:
        reasons.append(f"underexposed by ~{-offset_ev:.1f} stops")
    elif offset_ev >= OVER_WARN_EV:
        reasons.append(f"overexposed by ~{offset_ev:.1f} stops")
    return ExposureInfo(
        frames=int(lumas.shape[0]),
        mean_luma=round(float(values.mean()), 3),
        median_luma=round(median, 3),
        clipped_highlights_pct=round(clipped_pct, 3),
        crushed_shadows_pct=round(crushed_pct, 3),
        stop_offset_ev=round(offset_ev, 3),
        warning=bool(reasons),
        reason="; ".join(reasons) or None,
    )


class ExposureStage(Stage[FileItem, ExposureInfo]):
    """``measure_exposure`` as a stage: reads ``item.frames``, writes ``item.exposure``
    (numpy on a few MB of frames: one CPU, milliseconds)."""

    name: StageName = "exposure"
    resources = Resources(cpus=1)

    def process(self, item: FileItem) -> ExposureInfo:
        if item.frames is None:
            raise ValueError(f"no frames to measure: {item.path}")
        item.exposure = measure_exposure(item.frames)
        return item.exposure
