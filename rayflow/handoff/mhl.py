"""ASC MHL v2.0 histories: write one generation per offload, read them back for ``--verify``.

The files follow the layout and XML of the ``ascmhl`` reference tool (1.2): a folder
``ascmhl/`` at the copy's root holding ``NNNN_<folder>_<UTC date>.mhl`` hash lists
(``urn:ASC:MHL:v2.0``) and an ``ascmhl_chain.xml`` (``urn:ASC:MHL:DIRECTORY:v2.0``)
that references each generation by its C4 id. We write them ourselves instead of
importing ``ascmhl``: its wheel pins ``Click~=8.1.7`` (huggingface_hub here needs
>=8.4.2) and installs a top-level ``tests`` package. Its own verifier
(``ascmhl-debug verify``) accepts what this module writes (tests/handoff).
"""

from __future__ import annotations

import hashlib
import re
import socket
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rayflow import __version__

MHL_NS = "urn:ASC:MHL:v2.0"
CHAIN_NS = "urn:ASC:MHL:DIRECTORY:v2.0"
FOLDER = "ascmhl"
CHAIN_FILE = "ascmhl_chain.xml"
IGNORE_PATTERNS = (".DS_Store", "ascmhl", "ascmhl/")
"""ascmhl's default ignore list; the copy tool never lists its own history."""
HASH_FORMATS = ("md5", "sha1", "xxh128", "xxh3", "xxh64", "c4")
_C4_CHARSET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


@dataclass(frozen=True)
class HashEntry:
    """One file in a generation: POSIX path relative to the history root, size, digest."""

    path: str
    size_bytes: int
    hash_format: str
    digest: str
    action: str = "original"
    """``original`` (first seen), ``verified`` (matched an earlier generation) or ``failed``."""
    mtime: datetime | None = None


def c4_id(path: Path) -> str:
    """The C4 id (SHA-512, base58, 90 characters) ASC MHL uses to reference hash-list files."""
    value = int(hashlib.sha512(path.read_bytes()).hexdigest(), 16)
    out = ""
    while value:
        value, rem = divmod(value, 58)
        out = _C4_CHARSET[rem] + out
    return "c4" + out.rjust(88, "1")


def _iso(moment: datetime, *, micro: bool = False) -> str:
    moment = moment.astimezone(UTC)
    return (moment if micro else moment.replace(microsecond=0)).isoformat()


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _hash_xml(entry: HashEntry, now: datetime) -> str:
    mod = f' lastmodificationdate="{_iso(entry.mtime)}"' if entry.mtime else ""
    return (f"    <hash>\n      <path size=\"{entry.size_bytes}\"{mod}>{_esc(entry.path)}</path>\n"
            f"      <{entry.hash_format} action=\"{entry.action}\" hashdate=\"{_iso(now, micro=True)}\">"
            f"{entry.digest}</{entry.hash_format}>\n    </hash>\n")


def write_generation(root: Path, entries: list[HashEntry], *, process: str = "transfer",
                     comment: str | None = None) -> Path:
    """Append one generation (hash list + chain entry) to the history under ``root/ascmhl``.

    ``process`` is ASC MHL's process type: ``transfer`` for a copy from a card,
    ``in-place`` for a re-hash where the files already are. Returns the new .mhl path.
    """
    folder = root / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    chain = read_chain(root)
    number = max((n for n, _ in chain), default=0) + 1
    now = datetime.now(UTC)
    name = f"{number:04d}_{_safe_name(root.name)}_{now.strftime('%Y-%m-%d_%H%M%SZ')}.mhl"
    extra = f"    <comment>{_esc(comment)}</comment>\n" if comment else ""
    text = ['<?xml version="1.0" encoding="UTF-8"?>\n', f'<hashlist version="2.0" xmlns="{MHL_NS}">\n',
            "  <creatorinfo>\n", f"    <creationdate>{_iso(now)}</creationdate>\n",
            f"    <hostname>{_esc(socket.gethostname())}</hostname>\n",
            f'    <tool version="{__version__}">rayflow offload</tool>\n', extra, "  </creatorinfo>\n",
            "  <processinfo>\n", f"    <process>{process}</process>\n", "    <ignore>\n",
            *(f"      <pattern>{p}</pattern>\n" for p in IGNORE_PATTERNS), "    </ignore>\n",
            "  </processinfo>\n", "  <hashes>\n",
            *(_hash_xml(e, now) for e in sorted(entries, key=lambda e: e.path)),
            "  </hashes>\n", "</hashlist>\n"]
    path = folder / name
    tmp = path.with_suffix(".mhl.part")
    tmp.write_text("".join(text), encoding="utf-8")
    tmp.replace(path)
    _write_chain(root, [*chain, (number, name)])
    return path


def _safe_name(name: str) -> str:
    return re.sub(r"[^\w.-]", "_", name) or "root"


def _write_chain(root: Path, generations: list[tuple[int, str]]) -> None:
    folder = root / FOLDER
    lines = ['<?xml version="1.0" encoding="UTF-8"?>\n', f'<ascmhldirectory xmlns="{CHAIN_NS}">\n']
    for number, name in generations:
        lines.append(f'  <hashlist sequencenr="{number}">\n    <path>{_esc(name)}</path>\n'
                     f"    <c4>{c4_id(folder / name)}</c4>\n  </hashlist>\n")
    lines.append("</ascmhldirectory>\n")
    tmp = folder / (CHAIN_FILE + ".part")
    tmp.write_text("".join(lines), encoding="utf-8")
    tmp.replace(folder / CHAIN_FILE)


def read_chain(root: Path) -> list[tuple[int, str]]:
    """(sequence number, file name) of each generation in ``root/ascmhl/ascmhl_chain.xml``."""
    chain = root / FOLDER / CHAIN_FILE
    if not chain.is_file():
        return []
    out = []
    for node in ET.parse(chain).getroot().iter(f"{{{CHAIN_NS}}}hashlist"):
        path = node.find(f"{{{CHAIN_NS}}}path")
        if path is not None and path.text:
            out.append((int(node.get("sequencenr", "0")), path.text))
    return sorted(out)


def latest_hashes(root: Path) -> dict[str, HashEntry]:
    """Each path's newest recorded hash over every generation of the history (later wins)."""
    known: dict[str, HashEntry] = {}
    for _, name in read_chain(root):
        for node in ET.parse(root / FOLDER / name).getroot().iter(f"{{{MHL_NS}}}hash"):
            path = node.find(f"{{{MHL_NS}}}path")
            if path is None or not path.text:
                continue
            for fmt in HASH_FORMATS:
                digest = node.find(f"{{{MHL_NS}}}{fmt}")
                if digest is not None and digest.text:
                    known[path.text] = HashEntry(path.text, int(path.get("size", "0")), fmt, digest.text.strip(),
                                                 digest.get("action", "original"))
                    break
    return known
