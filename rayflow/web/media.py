"""Which files ``rayflow serve`` hands out, and how: by clip id + a known file name only.

A request names ``/media/<clip_id>/<name>``; ``clip_id`` must be a canonical UUID and
``name`` one of the names rayflow writes (``proxy.mp4``, ``best_<n>.jpg``,
``thumb_NN_T.TTTs.jpg|webp``). The file is ``<output>/clips/<clip_id>/<name>``,
resolved (symlinks followed) and served only when it still lies inside the output
dir. Anything else is a 404 — the same answer as a missing file, so the server does
not reveal what exists. Paths stored in records are never opened directly: they are
mapped to these URLs, so a record cannot point the server at another file.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

MEDIA_NAME = re.compile(r"(?:proxy\.mp4|best_\d{1,2}\.jpg|thumb_\d{2,4}_\d{1,7}\.\d{3}s\.(?:jpg|webp))")
"""File names rayflow writes under ``clips/<clip_id>/`` (see stages/thumbnails, select, proxy)."""


def valid_clip_id(clip_id: str) -> bool:
    """True for a canonical lower-case UUID string (what rayflow uses as clip ids)."""
    try:
        return str(uuid.UUID(clip_id)) == clip_id
    except (ValueError, AttributeError, TypeError):
        return False


def media_url(path: str | None) -> str | None:
    """``/media/<clip_id>/<name>`` for a path a record stores, or None when it is not one of ours."""
    if not path:
        return None
    p = Path(path)
    clip_id, name = p.parent.name, p.name
    if not valid_clip_id(clip_id) or not MEDIA_NAME.fullmatch(name):
        return None
    return f"/media/{clip_id}/{name}"


def media_file(output_dir: Path, clip_id: str, name: str) -> Path | None:
    """The file to serve for ``/media/<clip_id>/<name>``, or None (-> 404)."""
    if not valid_clip_id(clip_id) or not MEDIA_NAME.fullmatch(name):
        return None
    root = (output_dir / "clips").resolve()
    try:
        target = (root / clip_id / name).resolve(strict=True)
    except (OSError, RuntimeError):  # missing, or a symlink loop
        return None
    if not target.is_relative_to(root / clip_id) or not target.is_file():
        return None
    return target
