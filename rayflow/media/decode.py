"""Decode a few exact frames of a video, once, small, in display orientation.

Primary decoder: decord (one thread, exact frames picked by index with ``get_batch``, not the
nearest keyframes), run in a forked child so that a native crash, a hang or a runaway
allocation on a hostile file is contained and reported. Fallback: one ffmpeg subprocess
that picks the frame at each target time (AV1, which decord 0.6.0 cannot open, and anything
else decord fails on). Containers without a trustworthy index (MPEG-TS/PS, elementary
streams, images) skip decord: its index there maps to the wrong frames, so ffmpeg decodes
them in order. A file's stream facts come from one ffprobe call first.

Both decoders resize inside the decoder to at most ``max_side`` pixels, correct non-square
pixels, and apply the container's display matrix (decord 0.6.0 does too, contrary to its
reputation; ``tests/stages/test_frames.py`` pins that), so frames come out as a player shows them.

Without ffprobe or ffmpeg (a bare GPU box), OpenCV decodes instead (``decode_opencv``: in
order, timestamps from the frame rate) and ``Frames.note`` says so.

Timestamps are seconds from the **first frame of the video stream**, not from the container's
``start_time``: ``bbb_2500ms.ts`` starts at 1.514 s (its video at 1.525 s); its first frame is at 0.0.

Decode once for shots (``strip=True``): the same ffmpeg pass also scales EVERY frame to 48x27
RGB (``FrameStrip``, TransNetV2's input size, which the classical detector reads too), so the
shot stage needs no second decode of the file. That pass decodes the whole stream in order (no
seeking, no decord): cheaper than sampling plus the shot detector's own full decode, dearer than
sampling alone. Streams over ``STRIP_MAX_FRAMES`` frames get no strip (the shot stage decodes
them itself, in chunks), so memory stays bounded: 3.9 KB a frame, 70 MB at the cap. The probe
travels with the frames too (``Frames.stream``): later stages of the file do not run it again.

Example::

    frames = decode_frames("clip.mp4", timestamps_s=None, count=12, max_side=512,
                           rotation=0, timeout_s=120, strip=True)
    frames          # Frames(images=uint8[12, 288, 512, 3], timestamps_s=float64[12], ...)
    frames.strip    # FrameStrip(images=uint8[240, 27, 48, 3], ...): every frame, for shots
"""

from __future__ import annotations

import faulthandler
import gc
import json
import logging
import math
import os
import pickle
import re
import resource
import select
import shutil
import signal
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rayflow.media.hdr import HDR_TRANSFERS, can_tonemap, hdr_tonemap_filters
from rayflow.media.strip import STRIP_HEIGHT, STRIP_MAX_FRAMES, STRIP_WIDTH, FrameStrip, freeze_frames, read_strip
from rayflow.media.tools import ToolError, ToolTimeout, run_tool, signal_name

log = logging.getLogger(__name__)

Decoder = Literal["decord", "ffmpeg", "opencv", "pillow"]

SEEKABLE_FORMATS: frozenset[str] = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi"})
"""ffprobe format names whose index makes frame-exact seeking reliable (checked on ../shared/media)."""

SEEK_MIN_FRAMES_PER_TARGET = 25
"""ffmpeg seeks only with more frames than this per target; below, a decode in order is cheaper."""

DECODE_MEMORY_HEADROOM_BYTES = 3 * 1024**3
"""Address space the isolated decord process may add to what it inherits (3 GiB): a file declaring
absurd dimensions fails its allocation there instead of exhausting the node."""

CRASH_HOOK_ENV = "RAYFLOW_FAULT_DECODER_CRASH"
"""Tests only: the isolated decord process SIGSEGVs on files whose name contains its value."""


class DecoderCrashed(ToolError):
    """The isolated decoder process died of a signal (a native crash on this file)."""


@dataclass(frozen=True, eq=False, repr=False)
class Frames:
    """Frames decoded from one file; arrays are read-only (they travel as Ray refs)."""

    images: np.ndarray
    """(N, H, W, 3) uint8 RGB in display orientation."""
    timestamps_s: np.ndarray
    """(N,) float64 ascending seconds from the first frame of the video stream."""
    decoder: Decoder
    """Which decoder produced the frames."""
    note: str | None = None
    """Why the preferred decoder was not the one used, when it crashed (for the record)."""
    strip: FrameStrip | None = None
    """Every frame at 48x27 from the same pass, when asked for (``decode_frames(strip=True)``)."""
    tone_mapped: str | None = None
    """The HDR transfer the frames were tone-mapped from ("arib-std-b67", "smpte2084"), else None."""
    stream: VideoStream | None = None
    """The probe the decode used (None: OpenCV decoded without one); best thumbnails and shots reuse it."""

    def __post_init__(self) -> None:
        images = np.asarray(self.images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
        freeze_frames(self, images, self.timestamps_s)

    @property
    def count(self) -> int:
        return int(self.images.shape[0])

    @property
    def height(self) -> int:
        return int(self.images.shape[1])

    @property
    def width(self) -> int:
        return int(self.images.shape[2])

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        shape = ", ".join(str(d) for d in self.images.shape)
        return (
            f"Frames(images=uint8[{shape}], timestamps_s=float64[{self.timestamps_s.shape[0]}], "
            f"decoder={self.decoder!r})"
        )


@dataclass(frozen=True)
class VideoStream:
    """The facts about the first video stream that frame decoding needs (from ffprobe)."""

    width: int
    """Coded width in pixels, before rotation and sample aspect ratio."""
    height: int
    sample_aspect: float
    """Pixel width / pixel height; 1.0 when unknown."""
    rotation: int
    """Clockwise display rotation from the display matrix: 0, 90, 180 or 270."""
    fps: float | None
    frame_count: int | None
    """From the header, else estimated as duration x fps (may be off by a frame or two)."""
    start_s: float
    """Raw timestamp of the stream's first frame (1.525 s in ``bbb_2500ms.ts``)."""
    format_start_s: float
    """The container's start_time, the origin of ffmpeg's input ``-ss``."""
    format_name: str
    """ffprobe's container name, e.g. 'mov,mp4,m4a,3gp,3g2,mj2' or 'mpegts'."""
    transfer: str | None = None
    """ffprobe's ``color_transfer`` ("arib-std-b67" = HLG, "smpte2084" = PQ), None when untagged."""

    @property
    def hdr(self) -> bool:
        """PQ or HLG: frames need tone-mapping to look right as SDR."""
        return (self.transfer or "") in HDR_TRANSFERS

    @property
    def seekable(self) -> bool:
        """Whether the container has a frame index that exact seeking can trust: decord maps indices
        to the wrong frames in MPEG-TS (``bbb_2500ms.ts``: index 16 of 58 decodes frame 28) and
        ffmpeg's seeks there can land past the target; the rest are decoded in order."""
        return self.format_name in SEEKABLE_FORMATS

    def seeks_pay(self, targets: int) -> bool:
        """Whether one fast-seeked input per target beats one decode in order (seekable, and more
        than ``SEEK_MIN_FRAMES_PER_TARGET`` frames per target)."""
        return self.seekable and (self.frame_count or math.inf) > SEEK_MIN_FRAMES_PER_TARGET * targets

    def lows(self, times_s: Iterable[float]) -> list[float]:
        """Raw timestamps (as ``-copyts`` shows them) half a frame before each of ``times_s`` (seconds
        from the first frame): ``select`` takes the first frame at or after each, never skipping it."""
        return [self.start_s + max(0.0, float(t)) - 0.5 / (self.fps or 25.0) for t in times_s]

    def display_size(self, max_side: int) -> tuple[int, int]:
        """(width, height) as displayed (SAR and rotation applied), longest side <= max_side; never
        upscales; whole pixels (odd sizes are fine for RGB)."""
        width, height = self.width * self.sample_aspect, float(self.height)
        if self.rotation in (90, 270):
            width, height = height, width
        scale = min(1.0, max_side / max(width, height))
        return max(1, round(width * scale)), max(1, round(height * scale))


def first_frames_at(lows: Iterable[float]) -> str:
    """A ``select`` expression picking, in one decode in order, the first frame at or after each low."""
    return "+".join(f"gte(t,{low:.6f})*(isnan(prev_t)+lt(prev_t,{low:.6f}))" for low in lows)


def even_indices(total: int, count: int) -> np.ndarray:
    """Indices of the centres of ``count`` equal segments of ``range(total)``, unique: a 1-frame
    video gives ``[0]``; ``count > total`` gives every index once."""
    if total <= 0 or count <= 0:
        return np.zeros(0, dtype=np.int64)
    picks = np.floor((np.arange(count) + 0.5) * total / count).astype(np.int64)
    return np.unique(np.clip(picks, 0, total - 1))


def frames_for(stream: VideoStream, count: int, min_interval_s: float) -> int:
    """``count``, or at most one frame per ``min_interval_s`` of a short stream (at least one; a
    stream of unknown length keeps ``count``): closer frames show nearly the same picture."""
    if min_interval_s <= 0 or not stream.fps or not stream.frame_count:
        return count
    running_s = stream.frame_count / stream.fps
    return max(1, min(count, math.floor(running_s / min_interval_s + 1e-6)))


def decode_frames(path: str | Path, *, timestamps_s: list[float] | None, count: int, max_side: int, rotation: int,
                  timeout_s: float, strip: bool = False, min_interval_s: float = 0.0, duration_s: float | None = None,
                  fps: float | None = None) -> Frames:
    """Decode exact frames of ``path`` once, downscaled, in display orientation.

    With ``timestamps_s`` None, ``count`` frames evenly spaced by index (centre of each of
    ``count`` equal segments; fewer when the video has fewer frames, or is short: ``frames_for``).
    With ``timestamps_s`` (seconds from the first frame), the frame nearest each one,
    duplicates dropped; ``count`` is then ignored.

    ``rotation`` is the clockwise rotation the probe stage read (``VideoInfo.rotation``).
    Both decoders apply the file's own display matrix, so it only cross-checks: a
    disagreement is logged and the file wins (a second rotation would be wrong).

    ``timeout_s`` bounds the whole call: ffprobe, ffmpeg and decord's forked child
    (``_isolated``) are killed at the deadline. When decord crashes (a signal), ffmpeg decodes
    instead and ``Frames.note`` says so; when ffmpeg then fails as well, the error names both.

    ``strip``: also every frame at 48x27 (``Frames.strip``) from the same pass, for shots (see
    above); past ``STRIP_MAX_FRAMES`` frames, or when that pass fails, no strip.
    ``duration_s``/``fps``: what the probe stage measured, used where the headers give no length
    (a browser's MediaRecorder WebM has no Duration and a bogus frame rate).

    Raises ``ToolError`` naming the decoders and the file when nothing decodes,
    ``ToolTimeout`` when the deadline passes.
    """
    if timestamps_s is None and count <= 0:
        raise ValueError(f"count must be positive, got {count}")
    if timestamps_s is not None and not timestamps_s:
        raise ValueError("timestamps_s is empty; pass None to sample evenly")
    if max_side <= 0:
        raise ValueError(f"max_side must be positive, got {max_side}")
    if shutil.which("ffprobe") is None or shutil.which("ffmpeg") is None:
        from rayflow.media.decode_opencv import decode_frames_opencv

        images, stamps = decode_frames_opencv(path, timestamps_s=timestamps_s, count=count, max_side=max_side,
                                              timeout_s=timeout_s)
        return Frames(images, stamps, decoder="opencv", note="ffprobe/ffmpeg not installed: decoded by OpenCV")
    deadline = time.monotonic() + timeout_s
    stream = probe_video_stream(path, timeout_s=_left(deadline, path, "ffprobe"))
    if not stream.frame_count and duration_s and (rate := fps or stream.fps):  # no length in the headers
        stream = replace(stream, fps=rate, frame_count=max(1, round(duration_s * rate)))
    frames = _decode_probed(path, stream, timestamps_s=timestamps_s, count=count, max_side=max_side,
                            rotation=rotation, deadline=deadline, strip=strip, min_interval_s=min_interval_s)
    return replace(frames, stream=stream)


def _decode_probed(path: str | Path, stream: VideoStream, *, timestamps_s: list[float] | None, count: int,
                   max_side: int, rotation: int, deadline: float, strip: bool, min_interval_s: float) -> Frames:
    """``decode_frames`` once the stream is probed."""
    if timestamps_s is None:
        count = frames_for(stream, count, min_interval_s)
    if rotation % 360 != stream.rotation:
        log.warning(
            "%s: caller says rotation %d but the display matrix says %d; using the file's",
            path, rotation, stream.rotation,
        )
    if stream.hdr and can_tonemap():
        # decord cannot tone-map: ffmpeg decodes HDR so the frames look like the proxy.
        strip = strip and bool(stream.frame_count and stream.frame_count <= STRIP_MAX_FRAMES)
        return _decode_ffmpeg(path, stream, timestamps_s=timestamps_s, count=count, max_side=max_side,
                              deadline=deadline, strip=strip)
    if strip and stream.fps and stream.frame_count and stream.frame_count <= STRIP_MAX_FRAMES:
        try:
            return _decode_ffmpeg(path, stream, timestamps_s=timestamps_s, count=count, max_side=max_side,
                                  deadline=deadline, strip=True)
        except ToolTimeout:
            raise
        except ToolError as exc:
            log.info("one-pass decode with a shot strip failed on %s (%s); decoding without it", path, exc)
    crashed: str | None = None
    if stream.seekable:
        try:
            return _isolated(
                lambda: _decode_decord(path, stream, timestamps_s=timestamps_s, count=count,
                                       max_side=max_side),
                path=path, deadline=deadline)
        except ToolTimeout:
            raise  # decord hung: its process was killed at the deadline
        except DecoderCrashed as exc:
            crashed = why_not_decord = _message(exc)
            log.warning("decord crashed on %s (%s); falling back to ffmpeg", path, why_not_decord)
        except Exception as exc:  # any decord failure (DECORDError, RuntimeError, ...)
            why_not_decord = f"decord failed: {type(exc).__name__}: {_first_line(str(exc))}"
            log.info("%s on %s; falling back to ffmpeg", why_not_decord, path)
    else:
        why_not_decord = f"decord not used for {stream.format_name!r} (unreliable index)"
    try:
        frames = _decode_ffmpeg(path, stream, timestamps_s=timestamps_s, count=count,
                                max_side=max_side, deadline=deadline)
    except ToolTimeout:
        raise  # transient: names ffmpeg and the file already; the engine may retry
    except ToolError as exc:
        raise ToolError("decord+ffmpeg", path,
                        f"no frames decoded; {why_not_decord}; ffmpeg: {_message(exc)}") from exc
    if crashed:
        frames = replace(frames, note=f"{crashed}; frames decoded by ffmpeg instead")
    return frames


def _isolated(fn: Any, *, path: str | Path, deadline: float) -> Frames:
    """Run ``fn`` (an in-process native decode) in a forked child and return its frames. decord is
    C++: a hostile file can crash or hang it, which in-process would kill the Ray worker and every
    file of its task. In a child a signal death becomes ``DecoderCrashed`` ("decord crashed (signal
    11 SIGSEGV)"), the deadline kills it (``ToolTimeout``), its address space is capped
    (``DECODE_MEMORY_HEADROOM_BYTES`` over what it inherits). Cost: one fork (~1-5 ms) and a copy
    of the frames through a pipe (~5 MB by default)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: no logging, no cleanup handlers; always leave through os._exit
        # No GC in the child: it would run finalizers of the PARENT's objects (a freed onnxruntime
        # session waits forever on its pool's threads, gone after fork: a decode hung to its deadline).
        gc.disable()
        try:
            os.close(read_fd)
            faulthandler.disable()  # a crash is reported by the parent, by signal; no dump here
            _child_limits()
            hook = os.environ.get(CRASH_HOOK_ENV)
            if hook and hook in os.path.basename(str(path)):
                os.kill(os.getpid(), signal.SIGSEGV)
            try:
                frames = fn()
                payload = pickle.dumps(("ok", (frames.images, frames.timestamps_s, frames.decoder)),
                                       protocol=pickle.HIGHEST_PROTOCOL)
            except BaseException as exc:  # reported to the parent as a value
                payload = pickle.dumps(("error", (type(exc).__name__, str(exc))))
            with os.fdopen(write_fd, "wb") as fh:
                fh.write(payload)
        finally:
            os._exit(0)
    os.close(write_fd)
    chunks: list[bytes] = []
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise ToolTimeout("decord", path, "decode timed out (decoder process killed)")
            ready, _, _ = select.select([read_fd], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(read_fd, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
    finally:
        os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        raise DecoderCrashed("decord", path, f"decord crashed (signal {sig} {signal_name(sig)})")
    if not chunks:
        raise ToolError("decord", path, f"decoder process exited with {os.waitstatus_to_exitcode(status)} "
                                        "and no result")
    kind, value = pickle.loads(b"".join(chunks))
    if kind == "error":
        name, message = value
        raise RuntimeError(f"{name}: {message}")
    images, stamps, decoder = value
    return Frames(images=images, timestamps_s=stamps, decoder=decoder)


def _child_limits() -> None:
    """Cap the decode child's address space at what it has now plus the headroom."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            vm_kb = next(int(line.split()[1]) for line in fh if line.startswith("VmSize:"))
        limit = vm_kb * 1024 + DECODE_MEMORY_HEADROOM_BYTES
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard == resource.RLIM_INFINITY or hard > limit:
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (OSError, StopIteration, ValueError):
        pass  # no /proc (not Linux): the decode runs without a cap


def probe_video_stream(path: str | Path, *, timeout_s: float) -> VideoStream:
    """ffprobe the first video stream (attached pictures excluded) for decoding facts."""
    argv = [
        "ffprobe", "-v", "error", "-select_streams", "V:0",
        "-show_entries",
        "stream=width,height,sample_aspect_ratio,avg_frame_rate,r_frame_rate,nb_frames,"
        "start_time,duration,color_transfer:stream_side_data=rotation:format=format_name,start_time,duration",
        "-of", "json", "-i", _ffmpeg_input(path),
    ]
    data = json.loads(run_tool(argv, timeout_s=timeout_s, path=path).text or "{}")
    streams = data.get("streams") or []
    if not streams or not streams[0].get("width"):
        raise ToolError("ffprobe", path, "no video stream")
    st, fmt = streams[0], data.get("format") or {}
    fps = _ratio(st.get("avg_frame_rate")) or _ratio(st.get("r_frame_rate"))
    format_start = _number(fmt.get("start_time")) or 0.0
    start = _number(st.get("start_time"))
    start = format_start if start is None else start
    frame_count = _number(st.get("nb_frames"))
    if not frame_count:
        duration = _number(st.get("duration"))
        format_duration = _number(fmt.get("duration"))
        if duration is None and format_duration is not None:
            duration = format_duration - (start - format_start)
        frame_count = max(1, round(duration * fps)) if duration and fps else None
    matrix = next((sd.get("rotation") for sd in st.get("side_data_list") or []
                   if "rotation" in sd), 0)
    return VideoStream(
        width=int(st["width"]),
        height=int(st["height"]),
        sample_aspect=_ratio(st.get("sample_aspect_ratio"), sep=":") or 1.0,
        # ffprobe gives counter-clockwise degrees; decoders only honour quarter turns.
        rotation=round(-float(matrix) / 90) * 90 % 360,
        fps=fps,
        frame_count=int(frame_count) if frame_count else None,
        start_s=start,
        format_start_s=format_start,
        format_name=str(fmt.get("format_name") or ""),
        transfer=st.get("color_transfer") or None,
    )


def _decode_decord(
    path: str | Path, stream: VideoStream, *, timestamps_s: list[float] | None, count: int,
    max_side: int,
) -> Frames:
    import decord  # lazy: a platform without decord wheels still decodes via ffmpeg

    width, height = stream.display_size(max_side)
    # decord takes the size in display orientation (it applies the display matrix).
    reader = decord.VideoReader(str(path), ctx=decord.cpu(0), width=width, height=height,
                                num_threads=1)
    total = len(reader)
    pts = reader.get_frame_timestamp(list(range(total)))[:, 0].astype(np.float64)
    relative = pts - pts[0]
    if timestamps_s is None:
        indices = even_indices(total, count)
    else:
        indices = np.unique([_nearest(relative, t) for t in timestamps_s]).astype(np.int64)
    images = reader.get_batch(indices.tolist()).asnumpy()
    if images.shape[1:3] != (height, width):
        raise RuntimeError(f"decord returned {images.shape[1:3]}, asked for {(height, width)}")
    return Frames(images=np.ascontiguousarray(images), timestamps_s=relative[indices],
                  decoder="decord")


_SHOWINFO = re.compile(
    r"\[showinfo@f(\d+) @ [^\]]*\]\s*n:\s*(\d+)\s+pts:\s*-?\d+\s+pts_time:(\S+)"
)


def _decode_ffmpeg(
    path: str | Path, stream: VideoStream, *, timestamps_s: list[float] | None, count: int,
    max_side: int, deadline: float, strip: bool = False,
) -> Frames:
    """One ffmpeg process; picks, for each target time, the first frame at or after it.

    Targets are frame times ``index / fps`` (exact for constant frame rate, nearest for variable),
    lowered by half a frame (``VideoStream.lows``). ``-copyts`` keeps raw timestamps and ``select``
    compares them, so ffmpeg's accurate-seek trimming (which mis-rounds coarse time bases such as
    AVI's 1/15 s) is not relied on; showinfo reports each chosen frame's time.

    Where seeking pays (``VideoStream.seeks_pay``) each target is an input fast-seeking to the
    keyframe before it (2 min of 720p: 0.6 s against 4 s for a full decode), one decoder thread
    each. Short files (each seek would decode most of a GOP: bigbuckbunny.mp4 took 2.0 s sought,
    0.37 s in order) and containers whose seeks can land past the target are decoded start to end.
    ``strip`` always decodes in order and splits the stream: one branch picks the frames, the
    other scales every frame to 48x27 into a temp file (``FrameStrip``).
    """
    fps = stream.fps
    if not fps:
        raise ToolError("ffmpeg", path, "no frame rate to place frames by")
    if timestamps_s is None:
        if not stream.frame_count:
            raise ToolError("ffmpeg", path, "no frame count or duration to place frames by")
        targets = even_indices(stream.frame_count, count) / fps
    else:
        targets = np.unique(np.maximum(np.asarray(timestamps_s, dtype=np.float64), 0.0))
    lows = stream.lows(targets)
    width, height = stream.display_size(max_side)
    resize = f"scale={width}:{height}:flags=area,setsar=1"
    tonemap = stream.hdr and can_tonemap()
    small = f"scale={STRIP_WIDTH}:{STRIP_HEIGHT}"
    if tonemap:
        resize = ",".join([resize, *hdr_tonemap_filters(stream.transfer)])
        small = ",".join([small, *hdr_tonemap_filters(stream.transfer)])
    source = _ffmpeg_input(path)
    argv = ["ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-v", "info", "-copyts"]
    strip_file: Any = None
    if not strip and stream.seeks_pay(len(lows)):
        graph = []
        for i, low in enumerate(lows):
            argv += ["-threads", "1", "-noaccurate_seek"]
            if low - stream.format_start_s > 0:
                argv += ["-ss", f"{low - stream.format_start_s:.6f}"]
            argv += ["-i", source]
            graph.append(f"[{i}:V:0]select='gte(t,{low:.6f})',trim=end_frame=1,"
                         f"showinfo@f{i},{resize}[v{i}]")
        graph.append("".join(f"[v{i}]" for i in range(len(lows)))
                     + f"concat=n={len(lows)}:v=1:a=0[out]")
        filters = ";".join(graph)
    else:
        expr = first_frames_at(lows)
        argv += ["-i", source]
        filters = f"[0:V:0]select='{expr}',showinfo@f0,{resize}[out]"
        if strip:
            filters = (f"[0:V:0]split=2[pick][every];[pick]select='{expr}',showinfo@f0,{resize}[out];"
                       f"[every]{small},showinfo@strip[strip]")
            strip_file = tempfile.NamedTemporaryFile(prefix="rayflow-strip-", suffix=".rgb")  # noqa: SIM115
    argv += ["-filter_complex", filters, "-map", "[out]", "-fps_mode", "passthrough",
             "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:"]
    if strip_file is not None:
        argv += ["-map", "[strip]", "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24",
                 "-y", "file:" + strip_file.name]
    try:
        out = run_tool(argv, timeout_s=_left(deadline, path, "ffmpeg"), path=path)
        strip_frames = read_strip(strip_file, out.stderr, stream.start_s, path) if strip_file is not None else None
    finally:
        if strip_file is not None:
            strip_file.close()
    found = sorted((int(m[1]), int(m[2]), float(m[3]))
                   for m in _SHOWINFO.finditer(out.stderr.decode(errors="replace")))
    if not found:
        raise ToolError("ffmpeg", path, f"no frame decoded at {len(lows)} target time(s)")
    if len(out.stdout) != len(found) * width * height * 3:
        raise ToolError("ffmpeg", path, f"expected {len(found)} frames of {width}x{height}, "
                        f"got {len(out.stdout)} bytes")
    if len(found) < len(lows):
        log.info("ffmpeg found %d of %d frames in %s", len(found), len(lows), path)
    images = np.frombuffer(out.stdout, dtype=np.uint8).reshape(len(found), height, width, 3)
    stamps = np.array([pts for _, _, pts in found]) - stream.start_s
    # Two targets can land on one frame (timestamps closer than a frame): keep it once.
    stamps, keep = np.unique(np.round(stamps, 6), return_index=True)
    return Frames(images=images[keep].copy(), timestamps_s=stamps, decoder="ffmpeg", strip=strip_frames,
                  tone_mapped=stream.transfer if tonemap else None)


def _message(exc: ToolError) -> str:
    """A ToolError's message without its 'tool on path: ' prefix."""
    prefix = exc.tool + (f" on {exc.path!r}" if exc.path else "") + ": "
    text = str(exc)
    return text[len(prefix):] if text.startswith(prefix) else text


def _ffmpeg_input(path: str | Path) -> str:
    """``file:`` + absolute path, so a name like ``concat:x`` or ``-y`` is never an option or protocol."""
    return "file:" + str(Path(path).resolve())


def _left(deadline: float, path: str | Path, tool: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise ToolTimeout(tool, path, "decode deadline passed before it could start")
    return left


def _nearest(sorted_values: np.ndarray, value: float) -> int:
    i = int(np.searchsorted(sorted_values, value))
    if i == 0:
        return 0
    if i >= len(sorted_values):
        return len(sorted_values) - 1
    return i if sorted_values[i] - value < value - sorted_values[i - 1] else i - 1


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _ratio(value: Any, sep: str = "/") -> float | None:
    """'30000/1001' -> 29.97; None for missing, 'N/A', '0/0' or '0:1'."""
    if not isinstance(value, str) or sep not in value:
        return None
    num, _, den = value.partition(sep)
    try:
        ratio = Fraction(int(num), int(den))
    except (ValueError, ZeroDivisionError):
        return None
    return float(ratio) if ratio > 0 else None


_DMLC_PREFIX = re.compile(r"^\[[\d:]+\] \S+:\d+: ")


def _first_line(text: str, limit: int = 300) -> str:
    """The first non-empty line of an error, without decord's '[time] file.cc:123: ' prefix."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return _DMLC_PREFIX.sub("", lines[0] if lines else "no message")[:limit]
