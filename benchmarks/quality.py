"""Quality benchmark: per-role precision/recall on the labelled set (tests/quality/labels.py).

Runs each analysis role stage once over the labelled clips (real footage from
../shared/media and, when present, the real-file corpus tests/corpus/files, plus
generated clips) and scores it against the labels:

- speech: 'has a transcript' precision/recall over music, noise, silence,
  ambient sound and clean speech; transcripts on non-speech clips; word error rate
  on clean speech;
- on-screen text: line precision/recall, character error rate, garbled readings;
- faces (through the analysis role stage): frame precision/recall, frames with a
  face on cartoons, test patterns and scenes;
- shots: cut precision/recall/F1 against marked transitions (±0.25 s);
- search: filled in by the search benchmark through ``SEARCH_HOOK`` (top-1, moment
  ±2 s, empty answers to absent topics, mean results per query); "not measured"
  until that module exists.

Prints a table, writes benchmarks/results/quality.json and quality.png.

    .venv/bin/python benchmarks/quality.py [--roles speech,screen_text,faces,shots]
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.quality.evaluate import ROLES, corpus_files, evaluate  # noqa: E402
from tests.quality.labels import LABELLED  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
CACHE = ROOT / "benchmarks" / ".cache" / "quality"
SHARED_MEDIA = ROOT.parent / "shared" / "media"
SEARCH_HOOK = "benchmarks.search_quality:measure"
"""``module:function`` returning a dict of search-quality figures (top1, moment_2s,
absent_empty, mean_results); the search engineer's benchmark provides it."""
THRESHOLDS = {"faces.precision": 0.9, "speech.non_speech_with_transcript": 0, "screen_text.garbled": 0,
              "shots.f1": 0.8}


def search_quality() -> dict[str, Any]:
    """The search benchmark's figures through ``SEARCH_HOOK``, or why there are none."""
    module_name, _, function = SEARCH_HOOK.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError:
        return {"measured": False, "note": f"{module_name} not present: the search benchmark fills this in"}
    return {"measured": True, **getattr(module, function)()}


def table(doc: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(role, metric, value) rows for the printed summary."""

    def fmt(value: Any) -> str:
        return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)

    rows = []
    for role, metrics in (("speech", ("precision", "recall", "non_speech_with_transcript", "wer_clean_mean")),
                          ("screen_text", ("precision", "recall", "garbled", "cer_mean")),
                          ("faces", ("precision", "recall", "false_face_frames_by_class")),
                          ("shots", ("precision", "recall", "f1"))):
        if role in doc["errors"]:
            rows.append((role, "error", doc["errors"][role][:80]))
            continue
        for metric in metrics:
            if role in doc:
                rows.append((role, metric, fmt(doc[role].get(metric))))
    return rows


def chart(doc: dict[str, Any], path: Path) -> None:
    """Bars: precision and recall per role, error rates beside them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    roles = [r for r in ROLES if r in doc]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    width = 0.38
    for offset, metric in ((-width / 2, "precision"), (width / 2, "recall")):
        values = [doc[r].get(metric) or 0.0 for r in roles]
        left.bar([i + offset for i in range(len(roles))], values, width, label=metric)
    left.set_xticks(range(len(roles)), roles)
    left.set_ylim(0, 1.05)
    left.set_title("precision / recall on the labelled set")
    left.legend(loc="lower right")
    rates = {"speech WER (clean)": doc.get("speech", {}).get("wer_clean_mean"),
             "on-screen CER": doc.get("screen_text", {}).get("cer_mean")}
    right.bar(list(rates), [v or 0.0 for v in rates.values()], color="tab:red")
    right.set_ylim(0, 1.0)
    right.set_title("error rates (lower is better)")
    fig.suptitle(f"rayflow quality, {len(doc['clips'])} labelled clips ({doc['when'][:16]})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--roles", default=",".join(ROLES), help="comma-separated roles to measure")
    args = parser.parse_args()
    roles = [r for r in args.roles.split(",") if r]
    doc = evaluate(SHARED_MEDIA, CACHE, roles=roles, clips=LABELLED, corpus_dir=corpus_files(ROOT))
    doc["search"] = search_quality()
    doc["when"] = datetime.now(UTC).isoformat(timespec="seconds")
    doc["machine"] = f"{platform.node()} {platform.machine()}"
    doc["thresholds"] = THRESHOLDS
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "quality.json").write_text(json.dumps(doc, indent=1))
    chart(doc, RESULTS / "quality.png")
    print(f"{'role':<12} {'metric':<28} value")
    for role, metric, value in table(doc):
        print(f"{role:<12} {metric:<28} {value}")
    print(f"search: {doc['search']}")
    print(f"timings (s): {doc['timings_s']}")
    print(f"results: {RESULTS / 'quality.json'}  chart: {RESULTS / 'quality.png'}")


if __name__ == "__main__":
    main()
