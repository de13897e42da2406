"""Temp files of atomic writes: finding and sweeping the ones an interrupted run left.

Every output rayflow writes (record sidecars, thumbnails, proxies) goes to a hidden
temp file in the target folder and is renamed into place, so a reader never sees
half a file. A process killed between the two leaves the temp file behind; it is
never mistaken for output (hidden name, ``.tmp`` suffix), and the next run sweeps it.

Only call the sweep where no other live process can be writing: the records dir at
the start of a run (the run holds the home lock), a clip folder right before this
run writes into it (clip folders are per content, one writer per run).
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TEMP_PATTERNS: tuple[str, ...] = (".*.tmp",)
"""Glob of every temp name rayflow writes: ``.<name>.<random>.tmp`` (hidden, ``.tmp``)."""


def temp_files(folder: Path, *, pattern: str = ".*.tmp") -> list[Path]:
    """Temp files in ``folder`` (not recursive); [] when it does not exist."""
    try:
        return sorted(p for p in folder.glob(pattern) if p.is_file())
    except OSError:
        return []


def sweep_temp_files(folder: Path, *, pattern: str = ".*.tmp") -> list[Path]:
    """Remove temp files matching ``pattern`` in ``folder``; returns the ones removed."""
    removed = []
    for path in temp_files(folder, pattern=pattern):
        try:
            path.unlink()
            removed.append(path)
        except FileNotFoundError:
            continue
        except OSError as exc:  # read-only or gone: leave it, the verifier reports it
            log.warning("could not remove temp file %s: %s", path, exc)
    return removed


def save_image_atomic(image: Any, target: Path, *, prefix: str, **save: Any) -> None:
    """Save a Pillow ``image`` to ``target`` through a hidden ``<prefix>*.tmp`` in its folder,
    renamed into place and readable by all (thumbnails are meant to be shared); ``save`` goes to
    ``image.save`` (``format=``, ``quality=``, ...)."""
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=prefix, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            image.save(fh, **save)
        os.chmod(tmp_name, 0o644)  # mkstemp makes 0600
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
