"""Is an OCR reading real text? Character classes, word shape, a word list, and agreement.

PP-OCR scores garbled reads as confidently as real ones: on the Sintel trailer's
title card it reads "peesents" at 0.99 (and "presents" on other frames), on a
colour checker "Coxrite"/"Soxrite" at 0.80. The score alone cannot tell them
apart; these checks can:

- character classes: mostly letters and digits, few stray symbols;
- word shape: every unknown word of three or more letters has a vowel, no run of five
  consonants, no letter three times in a row, and a normal case pattern
  (lower, UPPER, Title; not "cLcCsRd");
- a word list: the word-frequency lists that ship inside the PyPI package
  ``pyspellchecker`` (English by default; 160k words; offline). A word one edit
  away from a common word ("peesents" -> "presents") is a misread, not a name;
- agreement: a line with no known word at all (a name such as "RAYFLOW") is kept
  only when several frames read exactly the same text with high confidence
  (``TextJudge.unknown_ok``; the caller counts the frames).

Word boundaries: the recogniser often drops the spaces in Latin text
("WEATHERALERT", "Subtitlelinefor"); ``restore_spaces`` splits a run of letters
that is not a word into known words when it splits completely (fewest pieces,
then most frequent), else leaves it alone.

Example::

    judge = TextJudge()                       # loads the English list (~1 s, once per worker)
    judge.verdict("WEATHERALERT").text        # 'WEATHER ALERT'
    judge.verdict("peesents").plausible       # False (near-miss of 'presents')
"""

from __future__ import annotations

import importlib.util
import logging
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PACKAGE = "pyspellchecker"
VOWELS = frozenset("aeiouyàáâãäåæèéêëìíîïòóôõöøùúûüýÿœ")
TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
"""Runs of letters and digits; everything else (spaces, punctuation) separates them."""
DIGIT_IN_WORD = re.compile(r"[^\W\d_]\d+[^\W\d_]", re.UNICODE)
"""'Subtit1e', 'c0ke': a digit between letters is a misread ('H264', '4K', 'MP3' are fine)."""


def word_list_files(languages: tuple[str, ...] = ("en",)) -> list[Path]:
    """The installed word lists (``spellchecker/resources/<code>.json.gz``) for ``languages``,
    found without importing the package (for ``rayflow models list`` / doctor); a language
    whose list is missing is left out, so an empty answer means not installed."""
    spec = importlib.util.find_spec("spellchecker")
    folders = list(spec.submodule_search_locations or []) if spec else []
    return [Path(folder) / "resources" / f"{code}.json.gz" for code in languages for folder in folders
            if (Path(folder) / "resources" / f"{code}.json.gz").is_file()]


@dataclass(frozen=True)
class Verdict:
    """What ``TextJudge`` made of one reading."""

    text: str
    """The reading with word boundaries restored (unchanged when nothing split)."""
    plausible: bool
    reason: str
    """Why not, or 'ok'."""
    known_share: float
    """Known words over words of two or more letters (1.0 for numbers only)."""
    unknown_only: bool
    """True when no word is known and it is not numbers only: needs agreement across frames."""


@dataclass
class TextJudge:
    """Judges OCR readings against word lists (loaded once; cheap per call, results cached).

    ``languages`` are pyspellchecker list codes (en, de, fr, es, it, pt, nl, ...); a
    word in any of them is known. ``min_symbol_share``: share of non-space
    characters that must be letters or digits. ``common_frequency``: a known word
    at least this frequent in the list makes an unknown word one edit away a misread
    ('presents' has 19 919). ``min_known_share``: share of words that must be known
    for the line to pass without further checks (below it, a near-miss of a common
    word marks a misread). Split thresholds: see the fields.
    """

    languages: tuple[str, ...] = ("en",)
    min_alnum_share: float = 0.7
    common_frequency: int = 200
    min_known_share: float = 0.5
    split_frequency_3: int = 1000
    """'pees' (1 064) may be a piece, 'cox' (114) may not: 'Coxrite' stays whole."""
    split_frequency_2: int = 1_000_000
    """Only the commonest two-letter words ('to', 'of', 'at'; not 'en', 'ha') split a run."""
    _lists: list[Any] = field(default_factory=list, repr=False)

    def setup(self) -> None:
        """Load the word lists (about 1 s for English); a second call is a no-op.
        Raises ``ModelMissing`` naming the package when it is not installed."""
        if self._lists:
            return
        try:
            from spellchecker import SpellChecker
        except ImportError as exc:
            from rayflow.ml.speech import ModelMissing

            raise ModelMissing(f"word lists for on-screen text not found: install them with "
                               f"`pip install {PACKAGE} -c constraints.txt`") from exc

        self._lists = [SpellChecker(language=code, distance=1).word_frequency for code in self.languages]
        log.info("text plausibility: word lists %s loaded (%s)", ", ".join(self.languages), PACKAGE)

    def frequency(self, word: str) -> int:
        """Highest frequency of ``word`` (casefolded) over the loaded lists; 0 when unknown."""
        if not self._lists:
            self.setup()
        word = word.casefold()
        return max(int(lst[word]) for lst in self._lists)

    def verdict(self, text: str) -> Verdict:
        """Judge one reading; see the module docstring for the rules."""
        return _cached_verdict(self, text)

    def split_frequency(self, word: str) -> int:
        """Frequency of ``word`` as a piece of a split run: 0 unless it is common enough
        (three or more letters: ``split_frequency_3``; two: ``split_frequency_2``)."""
        freq = self.frequency(word)
        floor = self.split_frequency_2 if len(word) <= 2 else self.split_frequency_3
        return freq if freq >= floor else 0

    def _judge(self, text: str) -> Verdict:
        restored = restore_spaces(text, self.split_frequency)
        chars = [c for c in restored if not c.isspace()]
        alnum = sum(c.isalnum() for c in chars)
        if not chars or alnum / len(chars) < self.min_alnum_share:
            return Verdict(restored, False, "mostly symbols", 0.0, False)
        tokens = TOKEN.findall(restored)
        for token in tokens:
            if DIGIT_IN_WORD.search(token):
                return Verdict(restored, False, f"{token!r}: digit inside a word", 0.0, False)
        words = [t for t in tokens if t.isalpha() and len(t) >= 2]
        for word in words:
            if len(word) >= 3 and self.frequency(word) == 0 and (why := shape_problem(word)):
                return Verdict(restored, False, f"{word!r}: {why}", 0.0, False)
        if not words:
            numeric = any(c.isdigit() for c in "".join(tokens))  # numbers and codes: 12:30, H264
            return Verdict(restored, numeric, "ok" if numeric else "no words", 1.0 if numeric else 0.0, False)
        known = [w for w in words if self.frequency(w) > 0]
        share = len(known) / len(words)
        if share >= self.min_known_share:  # one odd word among known ones: a name, a British spelling
            return Verdict(restored, True, "ok", share, False)
        for word in words:
            if word not in known and len(word) >= 4 and (near := self._near_miss(word)):
                return Verdict(restored, False, f"{word!r} looks like a misread of {near!r}", share, False)
        if not known:
            return Verdict(restored, True, "ok", 0.0, True)
        return Verdict(restored, False, f"only {len(known)} of {len(words)} words known", share, False)

    def _near_miss(self, word: str) -> str | None:
        """A common known word one edit away from ``word``, else None."""
        lower = word.casefold()
        best: tuple[int, str] | None = None
        for candidate in _edits1(lower):
            freq = self.frequency(candidate)
            if freq >= self.common_frequency and (best is None or freq > best[0]):
                best = (freq, candidate)
        return best[1] if best else None

    def __hash__(self) -> int:
        return id(self)


@lru_cache(maxsize=4096)
def _cached_verdict(judge: TextJudge, text: str) -> Verdict:
    return judge._judge(text)


def shape_problem(word: str) -> str | None:
    """Why a word of letters cannot be a real word ('no vowel', ...), else None."""
    if not (word.islower() or word.isupper() or word.istitle() or _camel(word)):
        return "odd case pattern"
    lower = word.casefold()
    if not any(c in VOWELS for c in lower) and lower.isascii():
        return "no vowel"
    run = longest = 0
    for c in lower:
        run = run + 1 if (c.isalpha() and c not in VOWELS) else 0
        longest = max(longest, run)
    if longest >= 5:
        return "five consonants in a row"
    if re.search(r"(.)\1\1", lower):
        return "a letter three times in a row"
    return None


def _camel(word: str) -> bool:
    """'iPhone', 'McDonald', 'YouTube': lower or Title parts, at most three capitals."""
    return sum(c.isupper() for c in word) <= 3 and \
        re.fullmatch(r"[a-z]*[A-Z][a-z]+(?:[A-Z][a-z]{2,})*", word) is not None


def _edits1(word: str) -> set[str]:
    """Every string one deletion, transposition, substitution or insertion away (Norvig)."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    deletes = [a + b[1:] for a, b in splits if b]
    transposes = [a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1]
    replaces = [a + c + b[1:] for a, b in splits if b for c in letters]
    inserts = [a + c + b for a, b in splits for c in letters]
    return set(deletes + transposes + replaces + inserts) - {word}


def restore_spaces(text: str, frequency: Any, *, min_run: int = 6, min_piece: int = 2) -> str:
    """Split each unknown run of ``min_run``+ letters into known words when it splits completely.

    ``frequency(word) -> int`` (0 = unknown). Fewest pieces win, then the most
    frequent rarest piece; pieces are at least ``min_piece`` letters (one-letter
    words would split almost anything). Case is kept: 'WEATHERALERT' -> 'WEATHER ALERT'."""

    def split(match: re.Match[str]) -> str:
        run = match.group(0)
        if frequency(run) > 0 or not (run.isupper() or run.islower() or run.istitle()):
            return run
        pieces = _segment(run, frequency, min_piece)
        return " ".join(pieces) if pieces else run

    return re.sub(rf"(?<![^\W_])[^\W\d_]{{{min_run},}}(?![^\W_])", split, text)


def _segment(run: str, frequency: Any, min_piece: int) -> list[str] | None:
    """Best split of ``run`` into known words (dynamic programming over prefixes)."""
    lower = run.casefold()
    n = len(lower)
    # best[i]: (pieces, -min frequency, cut positions) for lower[:i]
    best: list[tuple[int, int, list[int]] | None] = [None] * (n + 1)
    best[0] = (0, 0, [])
    for end in range(min_piece, n + 1):
        for start in range(0, end - min_piece + 1):
            prev = best[start]
            if prev is None:
                continue
            freq = frequency(lower[start:end])
            if freq <= 0:
                continue
            rarest = freq if prev[0] == 0 else min(-prev[1], freq)
            candidate = (prev[0] + 1, -rarest, [*prev[2], end])
            if best[end] is None or candidate[:2] < best[end][:2]:  # type: ignore[index]
                best[end] = candidate
    if best[n] is None or best[n][0] < 2:  # type: ignore[index]
        return None
    cuts = [0, *best[n][2]]  # type: ignore[index]
    return [run[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]
