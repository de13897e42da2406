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
- search: through ``SEARCH_HOOK`` (``benchmarks/search_quality.py``): the held-out
  8-clip catalog of ``tests/catalog/spoken.py`` ingested by the real pipeline (a few
  minutes) and searched with its labelled queries: top-1, moment ±2 s, empty answers
  to absent topics, mean results per query.

Each figure the issue sets a bar for is printed and stored beside its threshold
(``THRESHOLDS``) and whether it is met. Prints a table, writes
benchmarks/results/quality.json and quality.png.

    .venv/bin/python benchmarks/quality.py [--roles speech,screen_text,faces,shots,search]
        [--heldout RECORDS_DIR]   # search over an earlier held-out ingest instead of a new one
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
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
"""``module:function(records_dir)`` returning the search figures (top1, moment_2s,
absent_empty of absent_queries, mean_results) with their thresholds and ``met``."""
THRESHOLDS: dict[str, tuple[str, float]] = {
    "faces.precision": (">=", 0.9), "speech.non_speech_with_transcript": ("<=", 0),
    "screen_text.garbled": ("<=", 0), "shots.f1": (">=", 0.8)}
"""Issue #14's bars for the analysis roles; the search ones come with its figures
(``tests/catalog/heldout.py``)."""
ROLE_METRICS = {"speech": ("precision", "recall", "non_speech_with_transcript", "wer_clean_mean"),
                "screen_text": ("precision", "recall", "garbled", "cer_mean"),
                "faces": ("precision", "recall", "false_face_frames_by_class"),
                "shots": ("precision", "recall", "f1"),
                "search": ("top1", "moment_2s", "absent_empty", "mean_results")}


def search_quality(records_dir: Path | None) -> dict[str, Any]:
    """The search benchmark's figures through ``SEARCH_HOOK``, or why there are none."""
    module_name, _, function = SEARCH_HOOK.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError:
        return {"measured": False, "note": f"{module_name} not present: the search benchmark fills this in"}
    return {"measured": True, **getattr(module, function)(records_dir)}


def role_thresholds(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``role.metric`` -> {"threshold": ">= 0.9", "value": ..., "met": bool} for the roles measured."""
    out = {}
    for key, (op, bound) in THRESHOLDS.items():
        role, metric = key.split(".")
        value = doc.get(role, {}).get(metric)
        if value is not None:
            out[key] = {"threshold": f"{op} {bound:g}", "value": value,
                        "met": value >= bound if op == ">=" else value <= bound}
    search = doc.get("search", {})
    for metric, threshold in search.get("thresholds", {}).items():
        out[f"search.{metric}"] = {"threshold": threshold, "value": search[metric], "met": search["met"][metric]}
    return out


def table(doc: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(role, metric, value, threshold and verdict) rows for the printed summary."""

    def fmt(value: Any) -> str:
        return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)

    bars = doc["thresholds"]
    rows = []
    for role, metrics in ROLE_METRICS.items():
        if role in doc["errors"]:
            rows.append((role, "error", doc["errors"][role][:80], ""))
            continue
        if role == "search" and not doc.get("search", {}).get("measured", True):
            rows.append((role, "not measured", doc["search"].get("note", ""), ""))
            continue
        for metric in metrics:
            if role in doc:
                bar = bars.get(f"{role}.{metric}")
                verdict = f"{bar['threshold']} {'ok' if bar['met'] else 'FAIL'}" if bar else ""
                value = doc[role].get(metric)
                if role == "search" and metric == "absent_empty":
                    value = f"{value} of {doc[role]['absent_queries']}"
                rows.append((role, metric, fmt(value), verdict))
    return rows


def chart(doc: dict[str, Any], path: Path) -> None:
    """Bars: precision and recall per role, error rates, and the search figures, each
    bar the issue sets a threshold for marked by a black tick at it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = doc["thresholds"]
    roles = [r for r in ROLES if r in doc]
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 4.2), width_ratios=(3, 2, 3))
    width = 0.38
    for offset, metric in ((-width / 2, "precision"), (width / 2, "recall")):
        values = [doc[r].get(metric) or 0.0 for r in roles]
        left.bar([i + offset for i in range(len(roles))], values, width, label=metric)
    if "faces" in roles and "faces.precision" in bars:
        i = roles.index("faces") - width / 2
        left.hlines(float(bars["faces.precision"]["threshold"].split()[1]), i - width / 2, i + width / 2, "k")
    left.set_xticks(range(len(roles)), roles)
    left.set_ylim(0, 1.05)
    left.set_title("precision / recall on the labelled set")
    left.legend(loc="lower right")
    rates = {"speech WER\n(clean)": doc.get("speech", {}).get("wer_clean_mean"),
             "on-screen\nCER": doc.get("screen_text", {}).get("cer_mean"),
             "shots F1": doc.get("shots", {}).get("f1")}
    middle.bar(list(rates), [v or 0.0 for v in rates.values()], color=["tab:red", "tab:red", "tab:green"])
    if "shots.f1" in bars:
        middle.hlines(float(bars["shots.f1"]["threshold"].split()[1]), 1.6, 2.4, "k")
    middle.set_ylim(0, 1.05)
    middle.set_title("error rates (lower is better), shot F1")
    search = doc.get("search", {})
    if search.get("measured"):
        shares = {"top-1": search["top1"], "moment ±2 s": search["moment_2s"],
                  "absent → nothing": search["absent_empty"] / max(search["absent_queries"], 1)}
        right.bar(list(shares), list(shares.values()), color="tab:blue")
        for i, key in enumerate(("top1", "moment_2s", "absent_empty")):
            op, bound = search["thresholds"][key].split()
            level = float(bound) / (search["absent_queries"] if key == "absent_empty" else 1)
            right.hlines(level, i - 0.4, i + 0.4, "k")
        right.set_ylim(0, 1.05)
        count = right.twinx()
        count.bar(["mean results\nper query"], [search["mean_results"]], color="tab:orange")
        count.hlines(float(search["thresholds"]["mean_results"].split()[1]), 2.6, 3.4, "k")
        count.set_ylim(0, 10)
        count.set_ylabel("results per query (limit 10)")
        right.set_title(f"search, {search['clips']}-clip held-out catalog, {search['queries']} queries")
    else:
        right.text(0.5, 0.5, "search not measured", ha="center", va="center")
        right.set_axis_off()
    fig.suptitle(f"rayflow quality, {len(doc['clips'])} labelled clips; black ticks: issue #14's thresholds "
                 f"({doc['when'][:16]})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--roles", default=",".join([*ROLES, "search"]), help="comma-separated roles to measure")
    parser.add_argument("--heldout", type=Path,
                        help="search: records folder of an earlier ingest of the held-out footage (default: "
                             "ingest it now into a temporary home)")
    args = parser.parse_args()
    roles = [r for r in args.roles.split(",") if r]
    doc = evaluate(SHARED_MEDIA, CACHE, roles=[r for r in roles if r != "search"], clips=LABELLED,
                   corpus_dir=corpus_files(ROOT))
    started = time.perf_counter()
    doc["search"] = search_quality(args.heldout) if "search" in roles else {"measured": False,
                                                                          "note": "not in --roles"}
    doc["timings_s"]["search"] = round(time.perf_counter() - started, 2)
    doc["when"] = datetime.now(UTC).isoformat(timespec="seconds")
    doc["machine"] = f"{platform.node()} {platform.machine()}"
    doc["thresholds"] = role_thresholds(doc)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "quality.json").write_text(json.dumps(doc, indent=1))
    chart(doc, RESULTS / "quality.png")
    print(f"{'role':<12} {'metric':<28} {'value':<34} threshold")
    for role, metric, value, verdict in table(doc):
        print(f"{role:<12} {metric:<28} {value:<34} {verdict}")
    for miss in doc["search"].get("misses", []):
        print(f"search miss: {miss['query']!r} want {miss['want']} at {miss['at_s']} s, got {miss['got']} "
              f"{miss['start_s']}-{miss['end_s']} s")
    print(f"timings (s): {doc['timings_s']}")
    print(f"results: {RESULTS / 'quality.json'}  chart: {RESULTS / 'quality.png'}")


if __name__ == "__main__":
    main()
