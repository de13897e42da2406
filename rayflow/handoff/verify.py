"""Re-hash an offloaded copy against its ASC MHL history and name every changed, missing or new file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rayflow.handoff import mhl
from rayflow.handoff.offload import card_files, hash_file, is_hash_format


@dataclass
class VerifyReport:
    root: Path
    ok: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    """On disk but in no generation (not an error of the copy; reported so nothing hides)."""

    @property
    def passed(self) -> bool:
        return bool(self.ok) and not self.changed and not self.missing


def history_roots(dest: Path) -> list[Path]:
    """``dest`` itself when it holds an ``ascmhl/`` history, else each child folder that does."""
    if (dest / mhl.FOLDER / mhl.CHAIN_FILE).is_file():
        return [dest]
    if not dest.is_dir():
        return []
    return sorted(p for p in dest.iterdir() if (p / mhl.FOLDER / mhl.CHAIN_FILE).is_file())


def verify_root(root: Path) -> VerifyReport:
    """Hash every file the history lists (cold reads) and compare with its newest recorded digest."""
    report = VerifyReport(root)
    known = mhl.latest_hashes(root)
    for rel, entry in sorted(known.items()):
        path = root / rel
        if not path.is_file():
            report.missing.append(rel)
            continue
        fmt = entry.hash_format
        if not is_hash_format(fmt):
            report.changed.append(f"{rel} (unsupported hash format {fmt})")
            continue
        seen = hash_file(path, fmt, cold=True)
        (report.ok if seen == entry.digest else report.changed).append(rel)
    report.new = [rel for rel, _ in card_files(root) if rel not in known]
    return report
