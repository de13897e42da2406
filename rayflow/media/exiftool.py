"""exiftool, run once per file: camera, exposure, GPS and capture-time tags.

Flags, and why::

    exiftool -json -l -a -G3:1 -api LargeFileSupport=1 [-ee] -- /abs/path

- ``-l`` (long JSON): every print-converted tag comes as ``{"num": ..., "val": ...}``,
  so one run gives both forms. ``main`` holds the numbers (what ``-n`` gives:
  "33.1268", not "33 deg 7' 36.48\\" N", so GPS, exposure time and f-number need
  no parsing); ``printed`` holds the printed names of the tags whose number is a
  code (an AVCHD ``H264:Make`` is 4113 as a number and "Canon" printed; EXIF
  WhiteBalance 0 is "Auto"). Names (make, model, lens, white balance) are read
  from ``printed``, never from the codes.
- ``-a -G3:1``: keep duplicate tags, keyed "Group:Tag" for the main document and
  "DocN:Group:Tag" for embedded documents, so the first telemetry sample is
  ``Doc1:...`` (plain ``-G1`` silently keeps one sample of many).
- ``-ee`` (ExtractEmbedded): reads timed metadata such as GoPro GPMF (first GPS
  fix with altitude, GPS UTC time, ISO/shutter series) and Apple mebx. Its cost
  grows with the clip's duration (measured: 0.1 s for 10 s of GoPro footage,
  2.7 s for 5 min), so the caller asks for it only on short clips.
- ``LargeFileSupport``: files over 2 GiB (older exiftool builds refuse them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rayflow.media.tools import ToolError, last_line, run_tool

TOOL = "exiftool"


@dataclass(frozen=True)
class ExiftoolOutput:
    """exiftool's tags for one file: ``main`` ("Group:Tag" -> value) and embedded docs."""

    main: dict[str, Any]
    embedded: dict[int, dict[str, Any]] = field(default_factory=dict, repr=False)
    """Doc number (1 = first sample) -> "Group:Tag" -> value. Empty without ``-ee``."""
    version: str | None = None
    printed: dict[str, Any] = field(default_factory=dict, repr=False)
    """"Group:Tag" -> printed value, only for main-document tags whose printed form differs
    from the number in ``main`` (enumerations, maker codes, fractions)."""
    warnings: list[str] = field(default_factory=list)


def exiftool_argv(path: Path, *, embedded: bool) -> list[str]:
    """The exact argv used for ``path``."""
    argv = [TOOL, "-json", "-l", "-a", "-G3:1", "-api", "LargeFileSupport=1"]
    if embedded:
        argv.append("-ee")
    return [*argv, "--", str(Path(path).absolute())]


def run_exiftool(path: Path, *, timeout_s: float, embedded: bool = False) -> ExiftoolOutput:
    """Run exiftool once on ``path``; ``embedded`` adds ``-ee`` (see module notes on cost).

    Raises ``ToolError`` when exiftool reports an error for the file (missing,
    empty, unreadable); unknown file types are not errors, they just carry few tags.
    """
    out = run_tool(exiftool_argv(path, embedded=embedded), timeout_s=timeout_s,
                   path=path, check=False)
    try:
        items = json.loads(out.text) if out.text.strip() else []
    except json.JSONDecodeError as exc:
        raise ToolError(TOOL, path, f"unreadable JSON output ({exc})") from exc
    if not items:
        raise ToolError(TOOL, path, f"exit {out.returncode}: {last_line(out.stderr)}")
    tags: dict[str, Any] = items[0]
    error = _number_form(tags.get("ExifTool:Error"))
    if error:
        raise ToolError(TOOL, path, str(error))
    main: dict[str, Any] = {}
    printed: dict[str, Any] = {}
    docs: dict[int, dict[str, Any]] = {}
    for key, entry in tags.items():
        value = _number_form(entry)
        head, sep, rest = key.partition(":")
        if sep and head.startswith("Doc") and head[3:].isdigit():
            docs.setdefault(int(head[3:]), {})[rest] = value
        else:
            main[key] = value
            if isinstance(entry, dict) and "num" in entry and "val" in entry:
                printed[key] = entry["val"]
    warnings = [str(v) for k, v in main.items() if k.endswith(":Warning")]
    version = main.get("ExifTool:ExifToolVersion")
    return ExiftoolOutput(
        main=main,
        embedded=dict(sorted(docs.items())),
        version=f"{version:.2f}" if isinstance(version, float) else (str(version) if version else None),
        warnings=warnings,
        printed=printed,
    )


def _number_form(entry: Any) -> Any:
    """The ``-n`` value of one ``-l`` entry: ``num`` where exiftool print-converts, else ``val``."""
    if isinstance(entry, dict) and "val" in entry:
        return entry.get("num", entry["val"])
    return entry  # SourceFile, and anything exiftool prints without the long form
