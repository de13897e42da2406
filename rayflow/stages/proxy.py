"""The proxy step: a small, frame-accurate H.264/HEVC review copy of each clip.

One ffmpeg process per clip writes ``<out_dir>/proxy.mp4``: longest side at most
``ProxySettings.max_side`` (never upscaled, even dimensions, square pixels, display
orientation baked in), frame rate capped by an integer divisor (59.94 -> 29.97, VFR
below the cap kept frame for frame), HDR (PQ/HLG) tone-mapped to SDR BT.709,
yuv420p 8-bit, one AAC mono track (the default/first audio track), ``+faststart``.
The encoder is the first usable one of an ``EncoderPlan`` (NVENC where the GPU has it,
libx264 otherwise); NVDEC decodes when the plan has it and the codec suits the GPU.

Safety: ffmpeg writes a temp file in ``out_dir`` that is renamed over ``proxy.mp4``
only after it probes as valid, so a failed, timed-out or killed encode leaves no
partial proxy (a temp left by a killed *Python* process is swept by the next call).
A ``proxy.json`` sidecar holds the ``settings_key``, size and mtime: an equal key on
a file that still probes is reused without encoding. An encoder that fails falls back
once to the next one in the plan (recorded in ``fallback_from``), then a clear
``ToolError`` is raised; a timeout raises ``ToolTimeout`` (transient) at once.

Example::

    plan = detect_encoders(settings.proxy.encoders, timeout_s=30)
    source = ProxySource.from_record(record.video, record.audio_tracks,
                                     duration_s=record.container.duration_s)
    info = make_proxy(path, out_dir=settings.clip_dir(clip_id), source=source,
                      settings=settings.proxy, plan=plan, threads=2,
                      timeout_s=settings.timeouts.proxy_s, on_progress=print)
    info.encoder, info.width, info.height   # ('libx264', 854, 480)
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from rayflow.config import ProxySettings
from rayflow.media.encoders import (
    LIBPLACEBO_INPUT_ARGS,
    EncoderPlan,
    ToneMapper,
    detect_encoders,
    encoder_args,
    is_hardware_encoder,
    libplacebo_filter,
    nvdec_supports,
)
from rayflow.media.ffmpeg_run import ProgressCallback, run_ffmpeg_progress
from rayflow.media.parse import aspect_or_square as _aspect
from rayflow.media.parse import positive as _number
from rayflow.media.parse import rate as _fps
from rayflow.media.tools import ToolError, ToolTimeout, run_tool
from rayflow.record import AudioTrack, ProxyInfo, StageName, VideoInfo
from rayflow.stages.base import Device, Resources, Stage

log = logging.getLogger(__name__)

PROXY_NAME = "proxy.mp4"
SIDECAR_NAME = "proxy.json"
RECIPE_VERSION = "1"
"""Bump when ``build_argv`` changes what the output looks like: every proxy is remade."""

HDR_TRANSFERS: frozenset[str] = frozenset({"smpte2084", "arib-std-b67"})
"""PQ and HLG: the transfers that need tone-mapping for an SDR proxy."""

GOP_S = 2.0
"""Seconds between keyframes: a review copy is scrubbed, so short GOPs (+~3 % size)."""



@dataclass(frozen=True)
class ProxySource:
    """What the probe already knows about a clip, as the proxy step needs it.

    Build it with ``from_record`` from the record's ``VideoInfo``/``AudioTrack`` list.
    """

    width: int
    """Coded width in pixels, before rotation and sample aspect ratio."""
    height: int
    rotation: int = 0
    """Clockwise display rotation: 0/90/180/270 (ffmpeg applies the file's own matrix)."""
    sample_aspect: float = 1.0
    """Pixel width / pixel height (anamorphic sources > 1); the proxy has square pixels."""
    fps: float | None = None
    """Average frame rate; None skips the frame rate cap."""
    duration_s: float | None = None
    """Video duration; turns ffmpeg's out_time into a progress fraction."""
    is_hdr: bool = False
    transfer: str | None = None
    """Transfer characteristic as ffprobe names it (smpte2084 = PQ, arib-std-b67 = HLG)."""
    audio_index: int | None = None
    """Container stream index of the audio track to keep; None for a silent proxy."""
    video_index: int | None = None
    """Container stream index of the video; None = the first real video stream."""
    video_codec: str | None = None
    """ffprobe codec name (h264, hevc, av1, ...); decides NVDEC use."""
    pix_fmt: str | None = None
    interlaced: bool = False
    """Deinterlace (bwdif, one frame per frame) when the probe says interlaced."""

    @property
    def has_audio(self) -> bool:
        return self.audio_index is not None

    @property
    def hdr(self) -> bool:
        """True when the proxy needs tone-mapping (HDR flag or a PQ/HLG transfer)."""
        return self.is_hdr or (self.transfer or "") in HDR_TRANSFERS

    @classmethod
    def from_record(
        cls, video: VideoInfo, audio_tracks: Sequence[AudioTrack], *, duration_s: float | None = None,
    ) -> ProxySource:
        """From the probe's parts; the audio kept is the default-flagged track, else the first.

        ``duration_s`` (e.g. the container's) is used when the video stream has none.
        Raises ``ValueError`` without coded dimensions (nothing to size a proxy by).
        """
        if not video.width or not video.height:
            raise ValueError("video has no width/height; probe it first")
        audio = next((t for t in audio_tracks if t.default), audio_tracks[0] if audio_tracks else None)
        return cls(
            width=video.width, height=video.height, rotation=video.rotation % 360,
            sample_aspect=_aspect(video.sample_aspect_ratio), fps=video.fps,
            duration_s=video.duration_s or duration_s, is_hdr=video.hdr.is_hdr,
            transfer=video.color.transfer, audio_index=audio.index if audio else None,
            video_index=video.index, video_codec=video.codec, pix_fmt=video.pix_fmt,
            interlaced=video.scan_type == "interlaced",
        )

    def display_size(self, max_side: int) -> tuple[int, int]:
        """Proxy (width, height): display orientation, square pixels, longest side at most
        ``max_side``, never upscaled, each rounded down to even (yuv420p needs it), >= 2."""
        width, height = self.width * self.sample_aspect, float(self.height)
        if self.rotation in (90, 270):
            width, height = height, width
        scale = min(1.0, max_side / max(width, height))
        return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def settings_key(settings: ProxySettings, source: ProxySource) -> str:
    """Hash (16 hex) of everything that changes the proxy's pixels or sound: the output
    settings, the encoder preference, the source facts used, and ``RECIPE_VERSION``.
    Node-local knobs (sessions, workers, NVDEC) are left out: they change speed only."""
    data = {
        "recipe": RECIPE_VERSION,
        "max_side": settings.max_side, "fps_cap": settings.fps_cap, "crf": settings.crf,
        "preset": settings.preset, "audio_bitrate_bps": settings.audio_bitrate_bps,
        "encoders": list(settings.encoders), "source": asdict(source),
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def output_fps(source_fps: float | None, fps_cap: float) -> Fraction | None:
    """The capped frame rate, or None when the source is at or under the cap (or unknown).

    Divides by the smallest integer that gets under the cap, so motion cadence stays
    even: 59.94 -> 29.97, 50 -> 25, 120 -> 30, 100 -> 25 with the default cap of 30."""
    if not source_fps or source_fps <= fps_cap * 1.001:
        return None
    divisor = math.ceil(source_fps / fps_cap - 1e-6)
    return _nominal_rate(source_fps) / divisor


def _nominal_rate(fps: float) -> Fraction:
    """The exact rate a float average stands for: 60, 60000/1001 (59.94), else ~1/1000."""
    for rate in (Fraction(round(fps)), Fraction(round(fps * 1.001) * 1000, 1001)):
        if rate and abs(float(rate) - fps) < 0.002 * fps / 60:
            return rate
    return Fraction(fps).limit_denominator(1000)


def hdr_handling(source: ProxySource, tone_mapper: ToneMapper) -> str | None:
    """What ``ProxyInfo.hdr_handling`` says for this source and tone mapper (None for SDR)."""
    if not source.hdr:
        return None
    name = {"smpte2084": "PQ", "arib-std-b67": "HLG"}.get(source.transfer or "", "HDR")
    match tone_mapper:
        case "zscale":
            return f"tone-mapped {name} -> SDR BT.709 (zscale linearize + tonemap=mobius)"
        case "libplacebo":
            return f"tone-mapped {name} -> SDR BT.709 (libplacebo, tonemapping=auto)"
        case "none":
            return f"not tone-mapped: {name} shown as SDR (this ffmpeg has no zscale or libplacebo)"


def video_filters(source: ProxySource, settings: ProxySettings, tone_mapper: ToneMapper) -> str:
    """The ``-vf`` chain: deinterlace, frame rate cap, scale, tone-map, square pixels, yuv420p.

    Scaling comes before tone-mapping so the float-RGB tone-map runs on the small frame
    (1080p HLG -> 854x480: ~5x less work). zscale's input transfer is set explicitly
    (PQ unless the source says HLG), primaries/matrix to BT.2020 (HDR's only gamut in
    practice), so untagged frames still convert. mobius (linear below its knee) rather
    than hable: on SDR content mastered into PQ at 100 nits it lands 31/255 from the SDR
    original on average against hable's 55 (hable darkens mid-tones); desat=0 keeps colour.
    """
    width, height = source.display_size(settings.max_side)
    chain: list[str] = []
    if source.interlaced:
        chain.append("bwdif=mode=send_frame:deint=interlaced")
    fps = output_fps(source.fps, settings.fps_cap)
    if fps is not None:
        chain.append(f"fps=fps={fps.numerator}/{fps.denominator}")
    if source.hdr and tone_mapper == "libplacebo":
        chain.append(libplacebo_filter(width, height))
    else:
        chain.append(f"scale={width}:{height}:flags=bicubic")
        if source.hdr and tone_mapper == "zscale":
            tin = source.transfer if source.transfer in HDR_TRANSFERS else "smpte2084"
            chain += [f"zscale=tin={tin}:pin=bt2020:min=bt2020nc:t=linear:npl=100",
                      "format=gbrpf32le", "zscale=p=bt709", "tonemap=tonemap=mobius:desat=0",
                      "zscale=t=bt709:m=bt709:r=tv"]
    chain += ["setsar=1", "format=yuv420p"]
    return ",".join(chain)


def build_argv(
    path: Path,
    *,
    out_path: Path,
    source: ProxySource,
    settings: ProxySettings,
    encoder: str,
    threads: int,
    tone_mapper: ToneMapper = "zscale",
    hw_decode: bool = False,
    progress: bool = True,
) -> list[str]:
    """The full ffmpeg argv for one proxy (pure: tests and benchmarks inspect or run it).

    Input as ``file:<absolute path>`` so names like ``-x.mp4`` or ``concat:a`` are never
    options or protocols (ffmpeg has no ``--``); ``-y`` sits right before ``out_path``,
    which must be a temp file. ``threads`` bounds decoder, filters and CPU encoder.
    Timestamps pass through (``-fps_mode passthrough``): no frame is duplicated or
    dropped except by the explicit fps cap, so VFR and duration survive. Metadata
    (GPS, titles) is not copied: a proxy is for viewing. ``progress`` adds
    ``-progress pipe:1`` (key=value lines on stdout).
    """
    argv = ["ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-v", "error"]
    if progress:
        argv += ["-progress", "pipe:1"]
    if source.hdr and tone_mapper == "libplacebo":
        argv += list(LIBPLACEBO_INPUT_ARGS)
    argv += ["-filter_threads", str(threads)]
    if hw_decode:
        argv += ["-hwaccel", "cuda"]
    argv += ["-threads", str(threads), "-i", "file:" + str(Path(path).resolve())]
    argv += ["-map", f"0:{source.video_index}" if source.video_index is not None else "0:V:0"]
    if source.audio_index is not None:
        argv += ["-map", f"0:{source.audio_index}?"]
    argv += ["-vf", video_filters(source, settings, tone_mapper), "-fps_mode", "passthrough"]
    fps = output_fps(source.fps, settings.fps_cap) or source.fps or 30.0
    argv += encoder_args(encoder, quality=settings.crf, preset=settings.preset, threads=threads,
                         gop=max(1, round(float(fps) * GOP_S)))
    if source.hdr and tone_mapper != "none":
        argv += ["-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709",
                 "-color_range", "tv"]
    if source.audio_index is not None:
        argv += ["-c:a", "aac", "-ac", "1", "-b:a", str(settings.audio_bitrate_bps)]
    else:
        argv += ["-an"]
    argv += ["-sn", "-dn", "-map_metadata", "-1", "-map_chapters", "-1",
             "-movflags", "+faststart", "-f", "mp4", "-y", str(out_path)]
    return argv


def make_proxy(
    path: Path,
    *,
    out_dir: Path,
    source: ProxySource,
    settings: ProxySettings,
    plan: EncoderPlan,
    threads: int,
    timeout_s: float,
    on_progress: ProgressCallback | None = None,
) -> ProxyInfo:
    """Write (or reuse) ``out_dir/proxy.mp4`` for the clip at ``path``; return its facts.

    ``threads``: ffmpeg threads for this encode (``cpu_encode_threads(cpus, workers)``).
    ``timeout_s`` bounds the whole call, fallback included (``Timeouts.proxy_s``).
    ``on_progress(fraction)`` gets 0..1 about twice a second from ffmpeg's ``out_time``
    (only when ``source.duration_s`` is known), then 1.0; it restarts from 0 on a fallback.
    ``encode_s`` in the result is the whole call (a failed first attempt included).
    A reused proxy is returned as recorded, even if this node would now pick another
    encoder (the key is about the look of the output, not the node).
    Raises ``ToolError`` when no encoder in the plan makes a valid proxy (after one
    fallback), ``ToolTimeout`` at the deadline; neither leaves a partial file.
    """
    started = time.monotonic()
    deadline = started + timeout_s
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / PROXY_NAME
    key = settings_key(settings, source)
    _sweep_temps(out_dir, older_than_s=timeout_s)
    reused = _reusable(final, key, timeout_s=min(30.0, timeout_s))
    if reused is not None:
        log.info("proxy for %s reused (%s, settings %s)", path, reused.encoder, key)
        return reused
    if not plan.encoders:
        raise ToolError("ffmpeg", path, f"no usable video encoder for the proxy: {plan.reasons}")

    gpu = plan.gpu_names[0] if plan.gpu_names else ""
    first_hw = (settings.hwaccel_decode and plan.nvdec_available
                and nvdec_supports(source.video_codec, gpu, source.pix_fmt))
    attempts = [(plan.encoders[0], first_hw)]
    if len(plan.encoders) > 1:
        attempts.append((plan.encoders[1], False))
    elif first_hw:
        attempts.append((plan.encoders[0], False))

    errors: list[str] = []
    for n, (encoder, hw_decode) in enumerate(attempts):
        label = encoder + ("+cuda-decode" if hw_decode else "")
        try:
            info = _encode_once(path, final=final, source=source, settings=settings, encoder=encoder,
                                hw_decode=hw_decode, tone_mapper=plan.tone_mapper, threads=threads,
                                deadline=deadline, key=key, on_progress=on_progress)
        except ToolTimeout:
            raise
        except ToolError as exc:
            errors.append(f"{label}: {_without_prefix(exc)}")
            if n + 1 < len(attempts):
                log.warning("proxy encode with %s failed on %s (%s); falling back to %s",
                            label, path, _without_prefix(exc), attempts[n + 1][0])
            continue
        if n > 0:
            first_encoder, first_hw_decode = attempts[0]
            info = info.model_copy(update={
                "fallback_from": first_encoder + ("+cuda-decode" if first_hw_decode else "")})
        info = info.model_copy(update={"encode_s": round(time.monotonic() - started, 3)})
        _publish_sidecar(final, key, info)
        return info
    raise ToolError("ffmpeg", path, "proxy encode failed: " + "; ".join(errors))


@dataclass(frozen=True)
class ProxyItem:
    """One clip for ``ProxyStage``: the file on this node, its output folder, what the probe knows."""

    path: Path
    out_dir: Path
    source: ProxySource
    on_progress: ProgressCallback | None = None


class ProxyStage(Stage[ProxyItem, ProxyInfo]):
    """``make_proxy`` as a stage: ``setup`` detects this node's encoders once (cached per process),
    ``process`` encodes (or reuses) one clip's proxy.

    ``resources``: a software encode takes one CPU (and one of the node's CPU encode slots, which
    caps how many run; ``threads`` ffmpeg threads each); ``hardware_resources``: an NVENC encode
    takes one CPU to feed it and one NVENC session."""

    name: StageName = "proxy"
    resources = Resources(cpus=1)
    hardware_resources = Resources(cpus=1, nvenc=1)

    def __init__(self, settings: ProxySettings, threads: int, timeout_s: float, *,
                 detect_timeout_s: float = 60.0) -> None:
        self.settings = settings
        self.threads = threads
        self.timeout_s = timeout_s
        self.detect_timeout_s = detect_timeout_s
        self.plan: EncoderPlan | None = None

    def setup(self, device: Device) -> None:
        """Detect the usable encoders in ``settings.encoders`` order (NVENC is tried whatever
        ``device`` says: it is a separate engine on the GPU). Raises ``ToolMissing`` without ffmpeg."""
        self.plan = detect_encoders(self.settings.encoders, timeout_s=self.detect_timeout_s)

    def process(self, item: ProxyItem) -> ProxyInfo:
        if self.plan is None:
            self.setup("cpu")
        assert self.plan is not None
        return make_proxy(item.path, out_dir=item.out_dir, source=item.source, settings=self.settings,
                          plan=self.plan, threads=self.threads, timeout_s=self.timeout_s,
                          on_progress=item.on_progress)


# --------------------------------------------------------------------------- internals


def _encode_once(
    path: Path, *, final: Path, source: ProxySource, settings: ProxySettings, encoder: str,
    hw_decode: bool, tone_mapper: ToneMapper, threads: int, deadline: float, key: str,
    on_progress: ProgressCallback | None,
) -> ProxyInfo:
    """One ffmpeg run into a temp file, validated, then renamed over ``final``."""
    tmp = final.parent / f".{final.name}.{secrets.token_hex(4)}.tmp"
    argv = build_argv(path, out_path=tmp, source=source, settings=settings, encoder=encoder,
                      threads=threads, tone_mapper=tone_mapper, hw_decode=hw_decode)
    try:
        run_ffmpeg_progress(argv, timeout_s=_left(deadline, path), path=path,
                            duration_s=source.duration_s, on_progress=on_progress)
        facts = _probe_output(tmp, path=path, timeout_s=_left(deadline, path))
        expected = source.display_size(settings.max_side)
        if (facts["width"], facts["height"]) != expected:
            log.warning("proxy of %s is %dx%d, expected %dx%d (rotation/aspect in the probe?)",
                        path, facts["width"], facts["height"], *expected)
        (final.parent / SIDECAR_NAME).unlink(missing_ok=True)  # never a sidecar for another file
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return ProxyInfo(
        path=str(final), encoder=encoder, hardware=is_hardware_encoder(encoder),
        decoder="cuda" if hw_decode else "cpu", width=facts["width"], height=facts["height"],
        fps=facts["fps"], duration_s=facts["duration_s"], size_bytes=final.stat().st_size,
        bitrate_bps=facts["bitrate_bps"], audio=facts["audio"],
        hdr_handling=hdr_handling(source, tone_mapper), settings_key=key,
    )


def _probe_output(file: Path, *, path: Path | str, timeout_s: float) -> dict[str, Any]:
    """Facts of a written proxy; ``ToolError`` when it does not probe or has no video."""
    argv = ["ffprobe", "-v", "error", "-show_entries",
            "stream=codec_type,width,height,avg_frame_rate,duration:format=duration,bit_rate",
            "-of", "json", "-i", "file:" + str(file.resolve())]
    data = json.loads(run_tool(argv, timeout_s=timeout_s, path=path).text or "{}")
    streams = data.get("streams") or []
    video = next((s for s in streams if s.get("codec_type") == "video" and s.get("width")), None)
    if video is None:
        raise ToolError("ffmpeg", path, "proxy has no video stream")
    fmt = data.get("format") or {}
    duration = _number(video.get("duration")) or _number(fmt.get("duration"))
    bitrate = _number(fmt.get("bit_rate"))
    return {
        "width": int(video["width"]), "height": int(video["height"]),
        "fps": _fps(video.get("avg_frame_rate")), "duration_s": duration,
        "bitrate_bps": int(bitrate) if bitrate else None,
        "audio": any(s.get("codec_type") == "audio" for s in streams),
    }


def _reusable(final: Path, key: str, *, timeout_s: float) -> ProxyInfo | None:
    """The recorded ProxyInfo when the sidecar's key matches and the file is the one
    recorded (same size and mtime) and still probes with the recorded size."""
    sidecar = final.parent / SIDECAR_NAME
    try:
        data = json.loads(sidecar.read_text())
        stat = final.stat()
    except (OSError, ValueError):
        return None
    if (data.get("settings_key") != key or data.get("size_bytes") != stat.st_size
            or data.get("mtime_ns") != stat.st_mtime_ns):
        return None
    try:
        info = ProxyInfo.model_validate(data["proxy"])
        facts = _probe_output(final, path=final, timeout_s=timeout_s)
    except (ToolError, KeyError, ValueError) as exc:
        log.info("existing proxy %s not reusable: %s", final, exc)
        return None
    if (facts["width"], facts["height"]) != (info.width, info.height):
        return None
    return info.model_copy(update={"path": str(final)})


def _publish_sidecar(final: Path, key: str, info: ProxyInfo) -> None:
    stat = final.stat()
    data = {"settings_key": key, "size_bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "proxy": info.model_dump(mode="json")}
    tmp = final.parent / f".{SIDECAR_NAME}.{secrets.token_hex(4)}.tmp"
    try:
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, final.parent / SIDECAR_NAME)
    finally:
        tmp.unlink(missing_ok=True)


def _sweep_temps(out_dir: Path, *, older_than_s: float) -> None:
    """Remove temp files a killed process left (older than any live encode could be)."""
    now = time.time()
    for tmp in out_dir.glob(".proxy.*.tmp"):
        try:
            if now - tmp.stat().st_mtime > older_than_s:
                tmp.unlink()
        except OSError:
            log.debug("could not sweep %s", tmp, exc_info=True)


def _left(deadline: float, path: Path | str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise ToolTimeout("ffmpeg", path, "proxy deadline passed")
    return left


def _without_prefix(exc: ToolError) -> str:
    prefix = exc.tool + (f" on {exc.path!r}" if exc.path else "") + ": "
    text = str(exc)
    return text[len(prefix):] if text.startswith(prefix) else text
