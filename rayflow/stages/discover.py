"""Find the media files under the paths a user gave, in a stable order.

Folders are walked recursively; symlinked folders are followed once (a loop is
never walked twice: folders are keyed by device and inode). Hidden and system
entries are skipped (counted). A file named explicitly is always taken, whatever its
extension; inside folders only ``extensions`` match (case-insensitive: video, audio
and stills by default). Every other file found in a folder is listed in
``passed_over`` with the reason it is not catalogued (a camera sidecar, an unknown
type), so the run summary can say so instead of passing over it in silence.
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
    passed_over: list[tuple[Path, str]] = field(default_factory=list)
    """Files with other extensions (not hidden/system ones), each with why it is not catalogued;
    with ``limit``, only those that sort before the last file taken."""
    hidden: int = 0
    """Hidden and system entries (dot-files, Thumbs.db, __MACOSX...) not walked or taken."""


SIDECARS: dict[str, str] = {
    ".xml": "camera metadata", ".thm": "camera thumbnail", ".lrf": "low-resolution preview",
    ".xmp": "XMP metadata", ".aae": "Apple photo edits", ".srt": "subtitles or drone telemetry",
    ".bim": "AVCHD index", ".cpi": "AVCHD clip info", ".mpl": "AVCHD playlist", ".bdm": "AVCHD index",
    ".ind": "camera index", ".idx": "camera index", ".ifo": "DVD index", ".bup": "DVD index backup",
    ".ppn": "camera project file", ".sav": "camera save data",
    ".json": "metadata", ".txt": "notes", ".md5": "checksum list", ".mhl": "media hash list",
}
"""Files that travel with footage; listed in the run summary as sidecars, never catalogued."""


def pass_over_reason(name: str) -> str:
    """Why a file found in a folder is not catalogued, from its extension."""
    ext = os.path.splitext(name)[1].lower()
    if ext in SIDECARS:
        return f"sidecar ({SIDECARS[ext]}, {ext}), not media: not catalogued"
    if not ext:
        return "no file extension: not a media type rayflow catalogues (name the file to ingest it anyway)"
    return f"unknown type {ext}: not a media type rayflow catalogues (name the file to ingest it anyway)"


def editor_proxy_source(path: Path, exts: tuple[str, ...]) -> Path | None:
    """The source clip of an editor proxy: a file in a ``Proxy`` folder (the layout Resolve and
    Premiere relink, and ``rayflow proxies`` writes) whose name stem matches a media file in the
    folder above. A proxy is the same footage again, smaller: listed, never catalogued twice."""
    if path.parent.name.lower() != "proxy":
        return None
    try:
        siblings = os.scandir(path.parent.parent)
        for entry in siblings:
            if entry.is_file() and Path(entry.name).stem == path.stem and entry.name.lower().endswith(exts):
                return Path(entry.path)
    except OSError:
        return None
    return None


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
                    result.hidden += 1
                    continue
                path = Path(entry.path)
                try:
                    is_dir = entry.is_dir(follow_symlinks=True)
                except OSError:
                    is_dir = False
                if is_dir:
                    subdirs.append(path)
                elif entry.name.lower().endswith(exts):
                    source = editor_proxy_source(path, exts)
                    if source is None:
                        found.setdefault(str(path), path)
                    else:
                        result.skipped += 1
                        result.passed_over.append(
                            (path, f"editor proxy of {source.name} (Proxy/ beside its source): not catalogued"))
                else:
                    result.skipped += 1
                    result.passed_over.append((path, pass_over_reason(entry.name)))
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
    if limit is not None and 0 <= limit < len(result.files):
        result.files = result.files[:limit]
        # Only what sorts among the files taken is reported: the rest was not looked at.
        last = str(result.files[-1]) if result.files else ""
        result.passed_over = [(p, r) for p, r in result.passed_over if str(p) < last]
    return result
