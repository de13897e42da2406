"""A hostile input corpus for fault tests and the soak benchmark: files built to break a
video pipeline, each with the outcome rayflow must give it.

Public API::

    from tests.hostile import HOSTILE, make_hostile, make_tiny_tree, make_deep_tree

    files = make_hostile(folder)        # {name: Path}; EXPECT[name] says what must happen
    make_tiny_tree(folder, 10_000)      # 10k tiny garbage files in 100 sub-folders
    make_deep_tree(folder, depth=1500)  # one clip 1500 folders down

Every maker is deterministic (seeded bytes, lavfi sources) and small (under 200 KB).
``EXPECT[name]`` is ``("ingested", None)`` or ``("failed", (stage, phrase))``: the stage
whose error must name the problem and a phrase that error must contain.
"""

from __future__ import annotations

import random
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

FFMPEG = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]

MARKUP_TITLE = "[bold red]SPOOF[/] [link=https://evil.example]click me[/link] \x1b[31mred"
"""A container title that would restyle or hyperlink the terminal if rendered as markup."""


def _run(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, timeout=120, check=False, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise RuntimeError(f"hostile fixture failed: {argv!r}\n{proc.stderr.decode(errors='replace')[-800:]}")


def clip(out: Path, *, hue: int = 0, seconds: float = 1.0, size: str = "160x120", fmt: str | None = None,
         title: str | None = None, faststart: bool = False) -> None:
    """A small valid H.264 clip; ``hue`` makes the content (and so the clip id) unique."""
    argv = [*FFMPEG, "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25:duration={seconds}",
            "-vf", f"hue=h={hue}", "-c:v", "libx264", "-preset", "ultrafast", "-g", "10"]
    if title is not None:
        argv += ["-metadata", f"title={title}"]
    if faststart:
        argv += ["-movflags", "+faststart"]
    if fmt:
        argv += ["-f", fmt]
    _run([*argv, str(out)])


def _garbage(out: Path, size: int, seed: int) -> None:
    out.write_bytes(random.Random(seed).randbytes(size))


def _truncate(out: Path, fraction: float, **kw: object) -> None:
    tmp = out.with_name("full_" + out.name)
    clip(tmp, **kw)  # type: ignore[arg-type]
    data = tmp.read_bytes()
    tmp.unlink()
    out.write_bytes(data[: int(len(data) * fraction)])


def _patch_box(data: bytearray, box: bytes, offset: int, value: bytes) -> int:
    """Overwrite ``value`` at ``offset`` bytes after every ``box`` fourcc; returns how many."""
    n, start = 0, 0
    while (i := data.find(box, start)) >= 0:
        data[i + offset: i + offset + len(value)] = value
        n, start = n + 1, i + 4
    return n


def huge_declared_dims(out: Path) -> None:
    """An MP4 whose track header declares 60000x60000 (the H.264 stream inside is 160x120)."""
    clip(out, hue=200)
    data = bytearray(out.read_bytes())
    # tkhd (version 0): fourcc, then 76 bytes (flags, times, ids, matrix) before width/height (16.16).
    assert _patch_box(data, b"tkhd", 4 + 76, struct.pack(">II", 60000 << 16, 60000 << 16))
    out.write_bytes(bytes(data))


def huge_y4m(out: Path) -> None:
    """A raw YUV4MPEG stream declaring 30000x30000 frames (1.35 GB each) with 1 KB of data."""
    out.write_bytes(b"YUV4MPEG2 W30000 H30000 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + b"\x80" * 1024)


def million_frames(out: Path) -> None:
    """A 1 s MP4 whose movie and media headers declare ~49 days (~100 million frames at 25 fps)."""
    clip(out, hue=220)
    data = bytearray(out.read_bytes())
    # mvhd/mdhd version 0: fourcc + 4 flags + 4 ctime + 4 mtime + 4 timescale, then duration.
    assert _patch_box(data, b"mvhd", 4 + 16, struct.pack(">I", 0xFFFF0000))
    assert _patch_box(data, b"mdhd", 4 + 16, struct.pack(">I", 0xFFFF0000))
    out.write_bytes(bytes(data))


def zero_duration(out: Path) -> None:
    """An MP4 with a video track but no frames at all."""
    _run([*FFMPEG, "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=1", "-frames:v", "0",
          "-c:v", "libx264", "-preset", "ultrafast", str(out)])


Maker = Callable[[Path], None]

HOSTILE: dict[str, Maker] = {
    "trunc_moov_at_end.mp4": lambda p: _truncate(p, 0.4, hue=10),
    "trunc_faststart.mp4": lambda p: _truncate(p, 0.5, hue=20, faststart=True),
    "trunc_half.mkv": lambda p: _truncate(p, 0.5, hue=30, fmt="matroska"),
    "garbage.mp4": lambda p: _garbage(p, 50_000, 1),
    "garbage.mov": lambda p: _garbage(p, 3_000, 2),
    "garbage.mkv": lambda p: _garbage(p, 20_000, 3),
    "zeros.avi": lambda p: p.write_bytes(b"\x00" * 65536),
    "mkv_named.mp4": lambda p: clip(p, hue=40, fmt="matroska"),
    "jpeg_named.mov": lambda p: _run([*FFMPEG, "-f", "lavfi", "-i", "testsrc2=size=160x120", "-frames:v", "1",
                                      "-f", "image2", "-c:v", "mjpeg", str(p)]),
    "huge_dims_header.mp4": huge_declared_dims,
    "huge_dims_y4m.mp4": huge_y4m,
    "million_frames.mp4": million_frames,
    "zero_duration.mp4": zero_duration,
    "-i.mp4": lambda p: clip(p, hue=60),
    "--help.mov": lambda p: clip(p, hue=70, fmt="mov"),
    "ctl\x01\x1b[31mred.mp4": lambda p: clip(p, hue=80),
    "tab\tand\rcr.mp4": lambda p: clip(p, hue=90),
    "[bold red]spoof.mp4": lambda p: clip(p, hue=100, title=MARKUP_TITLE),
}

EXPECT: dict[str, tuple[str, tuple[str, str] | None]] = {
    "trunc_moov_at_end.mp4": ("failed", ("probe", "moov atom not found")),
    "trunc_faststart.mp4": ("failed", ("probe", "truncated")),
    "trunc_half.mkv": ("failed", ("probe", "truncated")),
    "garbage.mp4": ("failed", ("probe", "moov atom not found")),
    "garbage.mov": ("failed", ("probe", "moov atom not found")),
    "garbage.mkv": ("failed", ("probe", "not a media file")),
    "zeros.avi": ("failed", ("probe", "not a media file")),
    "mkv_named.mp4": ("ingested", None),  # content decides, not the extension
    "jpeg_named.mov": ("ingested", None),  # a still, whatever its name: catalogued as kind image (#13)
    "huge_dims_header.mp4": ("ingested", None),  # the stream's own size wins over the header's
    "huge_dims_y4m.mp4": ("failed", ("probe", "ffprobe")),
    "million_frames.mp4": ("ingested", None),  # frames come from the stream, not the declared count
    "zero_duration.mp4": ("failed", ("probe", "no streams")),
    "-i.mp4": ("ingested", None),
    "--help.mov": ("ingested", None),
    "ctl\x01\x1b[31mred.mp4": ("ingested", None),
    "tab\tand\rcr.mp4": ("ingested", None),
    "[bold red]spoof.mp4": ("ingested", None),
}


def make_hostile(folder: Path, names: list[str] | None = None) -> dict[str, Path]:
    """Write the hostile files (all, or ``names``) into ``folder``; returns name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in names or list(HOSTILE):
        path = folder / name
        HOSTILE[name](path)
        out[name] = path
    return out


def make_tiny_tree(folder: Path, count: int, *, per_folder: int = 100) -> list[Path]:
    """``count`` tiny (16-byte, distinct) ``.mp4`` files spread over sub-folders."""
    paths = []
    for i in range(count):
        sub = folder / f"d{i // per_folder:04d}"
        if i % per_folder == 0:
            sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"t{i:05d}.mp4"
        path.write_bytes(i.to_bytes(8, "big") * 2)
        paths.append(path)
    return paths


def make_deep_tree(folder: Path, *, depth: int, leaf: Path | None = None) -> Path:
    """A chain of ``depth`` one-letter folders under ``folder``; ``leaf`` is copied to the bottom."""
    bottom = folder
    for _ in range(depth):  # a loop: Path.mkdir(parents=True) recurses once per level
        bottom = bottom / "d"
        bottom.mkdir(parents=True, exist_ok=True)
    if leaf is not None:
        (bottom / leaf.name).write_bytes(leaf.read_bytes())
        return bottom / leaf.name
    return bottom
