"""HDR (PQ/HLG) to SDR BT.709: the proxy's tone-map chain, for sampled frames and stills."""

from __future__ import annotations

import functools

HDR_TRANSFERS: frozenset[str] = frozenset({"smpte2084", "arib-std-b67"})
"""PQ and HLG: the transfers whose frames are tone-mapped (as the proxy is)."""


def hdr_tonemap_filters(transfer: str | None) -> list[str]:
    """The proxy's HDR -> SDR BT.709 chain (``rayflow.stages.proxy.video_filters``, zscale
    path): linearise from PQ/HLG in BT.2020, convert primaries, ``tonemap=mobius:desat=0``,
    back to BT.709. Sampled frames, thumbnails and best frames use the same chain so a
    still looks like the proxy (``tests/stages/test_frames.py`` checks they agree). It starts
    with 4:4:4 so odd frame sizes convert (zscale refuses 4:2:0 at 48x27)."""
    tin = transfer if transfer in HDR_TRANSFERS else "smpte2084"
    return ["format=yuv444p10le", f"zscale=tin={tin}:pin=bt2020:min=bt2020nc:t=linear:npl=100",
            "format=gbrpf32le", "zscale=p=bt709", "tonemap=tonemap=mobius:desat=0",
            "zscale=t=bt709:m=bt709:r=tv"]


@functools.lru_cache(maxsize=1)
def can_tonemap() -> bool:
    """Whether this ffmpeg has zscale and tonemap (checked once per process)."""
    from rayflow.media.encoders import ffmpeg_capabilities

    return {"zscale", "tonemap"} <= ffmpeg_capabilities("-filters")
