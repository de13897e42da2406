"""Find the media files under the paths a user gave, in a stable order.

Folders are walked recursively; symlinked folders are followed once (a loop is
never walked twice: folders are keyed by device and inode). Hidden and system
entries are skipped. A file named explicitly is always taken, whatever its
extension; inside folders only ``extensions`` match (case-insensitive).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

SYSTEM_NAMES = frozenset({
    "thumbs.db", "desktop.ini", "$recycle.bin", "system volume information", "@eadir",
    "lost+found", "__macosx",
})


@dataclass
class Discovery:
    files: list[Path] = field(default_factory=list)
    """Candidate files in stable (sorted) order; may include broken symlinks so they get reported."""
    missing: list[Path] = field(default_factory=list)
    """Paths the user named that do not exist."""
    skipped: int = 0
    """Hidden/system entries and files with other extensions."""


def _hidden(name: str) -> bool:
    return name.startswith(".") or name.lower() in SYSTEM_NAMES


def discover(paths: list[Path], *, extensions: tuple[str, ...], limit: int | None = None) -> Discovery:
    """Walk ``paths`` and return matching files, sorted, de-duplicated, at most ``limit``."""
    exts = tuple(e.lower() for e in extensions)
    found: dict[str, Path] = {}
    result = Discovery()
    seen_dirs: set[tuple[int, int]] = set()

    def walk(top: Path) -> None:
        # Depth-first with an explicit stack (a recursive walk dies of RecursionError on
        # folders nested ~1000 deep); sorted, so the order is the recursive one.
        stack = [top]
        while stack:
            folder = stack.pop()
            try:
                st = folder.stat()
            except OSError as exc:
                log.warning("cannot read folder %s: %s", folder, exc)
                continue
            key = (st.st_dev, st.st_ino)
            if key in seen_dirs:
                continue
            seen_dirs.add(key)
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError as exc:
                log.warning("cannot list folder %s: %s", folder, exc)
                continue
            subdirs = []
            for entry in entries:
                if _hidden(entry.name):
                    result.skipped += 1
                    continue
                path = Path(entry.path)
                try:
                    is_dir = entry.is_dir(follow_symlinks=True)
                except OSError:
                    is_dir = False
                if is_dir:
                    subdirs.append(path)
                elif entry.name.lower().endswith(exts):
                    found.setdefault(str(path), path)
                else:
                    result.skipped += 1
            stack.extend(reversed(subdirs))

    for raw in paths:
        path = Path(os.path.abspath(raw))
        if path.is_dir():
            walk(path)
        elif path.exists() or path.is_symlink():
            found.setdefault(str(path), path)
        else:
            result.missing.append(path)
    result.files = [found[k] for k in sorted(found)]
    if limit is not None and limit >= 0:
        result.files = result.files[:limit]
    return result
