"""Scores for the quality set: word and character error rates, cut matching, precision/recall."""

from __future__ import annotations

import re


def edit_distance(a: list[str] | str, b: list[str] | str) -> int:
    """Levenshtein distance between two sequences (words or characters)."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


NUMBERS = {"nine": "9", "ten": "10", "one": "1", "two": "2", "three": "3"}


def words(text: str) -> list[str]:
    """Lower-case words without punctuation; British/American and number spellings folded
    ('harbour' = 'harbor', 'nine' = '9') so that WER counts misheard words, not spelling."""
    out = []
    for word in re.findall(r"[a-z0-9']+", text.casefold()):
        word = NUMBERS.get(word, word)
        out.append(re.sub(r"our$", "or", word) if len(word) > 4 else word)
    return out


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: word edits over reference words (1.0 for an empty hypothesis)."""
    ref = words(reference)
    return edit_distance(ref, words(hypothesis)) / max(1, len(ref))


def line_form(text: str) -> str:
    """Comparison form of an on-screen line: casefolded, single spaces (word boundaries count)."""
    return " ".join(text.casefold().split())


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate of one line (spaces included), capped at 1."""
    ref = line_form(reference)
    return min(1.0, edit_distance(ref, line_form(hypothesis)) / max(1, len(ref)))


def match_cuts(marked: list[tuple[float, float]], detected: list[float], tolerance_s: float) -> int:
    """Detected cut times matched one-to-one to marked transition intervals (widened by
    ``tolerance_s`` each side); returns the number of matches."""
    used: set[int] = set()
    hits = 0
    for start, end in marked:
        for i, t in enumerate(detected):
            if i not in used and start - tolerance_s <= t <= end + tolerance_s:
                used.add(i)
                hits += 1
                break
    return hits


def prf(tp: int, fp: int, fn: int) -> dict[str, float | None]:
    """Precision, recall and F1 (None where undefined: nothing predicted or nothing to find)."""
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = (2 * precision * recall / (precision + recall)
          if precision is not None and recall is not None and precision + recall else None)
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn}
