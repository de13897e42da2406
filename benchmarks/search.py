"""Search benchmark: how fast do we embed and index, how fast and how right is search?

Catalog: the 16 labelled clips of ``tests/catalog/corpus.py`` (30 queries whose
right clip and moment are known) hidden among ``--records`` synthetic distractors
(default 1000) written like real analysis output: a few transcript segments built from
a vocabulary of subjects/actions/places, sometimes on-screen text, shots, faces,
randomised technical traits (codec, resolution, HDR, camera, date, duration).

1. Encoder throughput: texts/s of the packaged all-MiniLM-L6-v2 for short (moment-like,
   ~20 words) and long (transcript chunks, ~150 words) texts at batch sizes 16/64/256.
2. Embed stage: ``embed_records`` over the whole catalog in batches of 64 records (one
   encode call per batch). The synthetic texts repeat, so an exact-text cache sits in
   front of the model (only new texts are encoded); throughput is reported both as
   model texts/s and as records/s including the cache hits.
3. Upsert: ``Catalog.upsert`` (clips + moments, embedded local mode on disk), records/s and points/s.
4. Query latency p50/p95 per mode (semantic, keyword, hybrid) and target (clips,
   moments), query embedding included, plus hybrid with a ``--where`` filter.
5. Accuracy on the labelled queries: top-1 clip, and right moment (the hit's time
   range contains the expected second, +-2 s), per mode.

6. ``--relevance``: the relevance model alone (``benchmarks/relevance_eval.py``): its
   calibration fit on the labelled corpus, then on held-out clips it never saw (the
   spoken/captioned clips of ``tests/catalog/spoken.py`` + real clips, ingested by the
   real pipeline): top-1, moment +-2 s, absent topics answered with nothing, mean
   results per query. Writes ``benchmarks/results/search_relevance.json``.

Run: ``.venv/bin/python benchmarks/search.py`` (about 2-3 min on 2 busy cores);
``--relevance [--heldout RECORDS_DIR]`` for 6 only.
Writes ``benchmarks/results/search.json`` and ``search.png`` and prints a table.
A Qdrant server would change 3 and 4 (HNSW + payload indexes instead of local mode's
exact scans); this script measures local mode, the default.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rayflow.catalog.moments import build_moments, clip_texts  # noqa: E402  (after the path fix above)
from rayflow.catalog.search import search  # noqa: E402
from rayflow.catalog.store import Catalog  # noqa: E402
from rayflow.ml.text_encoder import TextEncoder  # noqa: E402
from rayflow.record import ClipRecord  # noqa: E402
from rayflow.stages.embed import embed_records  # noqa: E402
from tests.catalog.corpus import Labelled, labelled_corpus, make_record, moment_ok  # noqa: E402

log = logging.getLogger("benchmarks.search")
RESULTS = ROOT / "benchmarks" / "results"

SUBJECTS = ["the chef", "a cyclist", "the teacher", "two hikers", "the band", "a farmer", "the pilot",
            "a skateboarder", "the nurse", "a fisherman", "the architect", "a street vendor", "the choir",
            "a carpenter", "the lifeguard", "a gardener"]
ACTIONS = ["explains the plan", "walks slowly", "laughs with friends", "checks the equipment", "waves at the crowd",
           "repairs an old engine", "paints a mural", "counts the money", "ties a knot", "plays the guitar",
           "reads a map", "lifts a heavy box", "pours coffee", "answers the phone"]
PLACES = ["in the market square", "near the train station", "on a rooftop", "inside a workshop", "by the lake",
          "in a small classroom", "on a busy street", "at the airport", "in the vineyard", "under the bridge arches"]
SIGNS = ["OPEN", "SALE 50%", "PLATFORM 4", "NO PARKING", "WELCOME", "EXIT", "TICKETS", "CAFE"]
CAMERAS = [("Sony", "ILCE-7M3"), ("Canon", "EOS R6"), ("Panasonic", "DC-S5"), ("Apple", "iPhone 13"),
           ("DJI", "Osmo Pocket 3"), ("Nikon", "Z6II"), ("GoPro", "HERO10 Black")]
CODECS = ["h264", "h264", "hevc", "prores", "av1"]
SIZES = [(1920, 1080), (1920, 1080), (3840, 2160), (1280, 720), (1080, 1920)]


def synthetic_records(n: int, seed: int = 7) -> list[ClipRecord]:
    """``n`` distractor records: plausible, varied, unrelated to the labelled queries' answers."""
    rng = random.Random(seed)
    start = datetime(2023, 1, 1, 9, 0)
    out = []
    for i in range(n):
        duration = float(rng.choice([12, 25, 40, 75, 120, 300]))
        segments = []
        t = rng.uniform(0, 3)
        for _ in range(rng.randint(2, 6)):
            length = rng.uniform(3, 8)
            if t + length > duration:
                break
            sentence = f"{rng.choice(SUBJECTS).capitalize()} {rng.choice(ACTIONS)} {rng.choice(PLACES)}."
            segments.append((round(t, 2), round(t + length, 2), sentence))
            t += length + rng.uniform(0.5, 6)
        screen = []
        if rng.random() < 0.3:
            a = rng.uniform(0, duration - 4)
            screen.append((round(a, 2), round(a + 4, 2), rng.choice(SIGNS)))
        cut = round(duration * rng.uniform(0.3, 0.7), 2)
        hdr = rng.choice([None, None, None, "HLG", "HDR10"])
        out.append(make_record(
            f"/footage/archive/{i // 100:02d}/clip_{i:05d}.mp4", codec=rng.choice(CODECS), size=rng.choice(SIZES),
            fps=rng.choice([24.0, 25.0, 30.0, 50.0, 60.0]), duration_s=duration, camera=rng.choice(CAMERAS),
            description=f"Footage of {rng.choice(SUBJECTS)} {rng.choice(PLACES)}.",
            tags=rng.sample(["outdoor", "indoor", "people", "city", "work", "daylight", "night", "b-roll"], 2),
            segments=segments or None, screen=screen or None, shots=[(0, cut), (cut, duration)], hdr=hdr,
            captured=(start + timedelta(hours=7 * i)).isoformat(),
            faces=[(1.0, rng.randint(0, 3), rng.uniform(0.05, 0.5))], salt=str(seed),
        ))
    return out


class CachingEncoder:
    """Exact-text cache in front of the model: repeated synthetic texts are encoded once."""

    def __init__(self, encoder: TextEncoder) -> None:
        self.encoder = encoder
        self.cache: dict[str, np.ndarray] = {}
        self.model_texts = 0
        self.requested = 0
        self.model_s = 0.0

    @property
    def model_id(self) -> str:
        return self.encoder.model_id

    @property
    def dim(self) -> int:
        return self.encoder.dim

    def encode(self, texts: list[str]) -> np.ndarray:
        self.requested += len(texts)
        new = list(dict.fromkeys(t for t in texts if t not in self.cache))
        if new:
            t0 = time.perf_counter()
            for text, vector in zip(new, self.encoder.encode(new), strict=True):
                self.cache[text] = vector
            self.model_s += time.perf_counter() - t0
            self.model_texts += len(new)
        return np.stack([self.cache[t] for t in texts])


def encoder_throughput(encoder: TextEncoder, texts_short: list[str], texts_long: list[str]) -> list[dict[str, Any]]:
    rows = []
    original = encoder.batch_size
    for kind, texts in (("short", texts_short), ("long", texts_long)):
        for batch in (16, 64, 256):
            encoder.batch_size = batch
            t0 = time.perf_counter()
            encoder.encode(texts)
            seconds = time.perf_counter() - t0
            rows.append({"texts": kind, "n": len(texts), "batch_size": batch, "seconds": round(seconds, 3),
                         "texts_per_s": round(len(texts) / seconds, 1),
                         "mean_words": round(statistics.mean(len(t.split()) for t in texts), 1)})
            log.info("encode %s batch %d: %.1f texts/s", kind, batch, len(texts) / seconds)
    encoder.batch_size = original
    return rows


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def run_queries(catalog: Catalog, encoder: TextEncoder, queries: list[Labelled], ids: dict[str, str],
                repeats: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    latency_rows, accuracy_rows = [], []
    cases: list[tuple[str, str, str | None]] = [
        (mode, target, None) for mode in ("semantic", "keyword", "hybrid") for target in ("clips", "moments")]
    cases.append(("hybrid", "clips", "codec=hevc,duration>30"))
    for mode, target, where in cases:
        times: list[float] = []
        misses: list[str] = []
        clip_right = moment_right = moment_total = 0
        for rep in range(repeats):
            for q in queries:
                t0 = time.perf_counter()
                hits = search(catalog, q.query, encoder=encoder, mode=mode, target=target, where=where,  # type: ignore[arg-type]
                              limit=10)
                times.append((time.perf_counter() - t0) * 1000)
                if rep or target != "clips" or where:
                    continue
                top = hits[0] if hits else None
                ok = top is not None and top.clip_id == ids[q.clip]
                clip_right += ok
                if not ok:
                    misses.append(f"{q.query!r}: got {top.name if top else None}, want {q.clip}")
                if q.at_s is not None:
                    moment_total += 1
                    landed = bool(ok and top is not None and moment_ok(top.start_s, top.end_s, q.at_s))
                    moment_right += landed
                    if ok and not landed and top is not None:
                        misses.append(f"{q.query!r}: moment {top.start_s}-{top.end_s} s, want ~{q.at_s} s")
        latency_rows.append({"mode": mode, "target": target, "where": where, "queries": len(times),
                             "p50_ms": round(pct(times, 50), 1), "p95_ms": round(pct(times, 95), 1)})
        if target == "clips" and not where:
            accuracy_rows.append({"mode": mode, "top1_clip": round(clip_right / len(queries), 3),
                                  "moment_2s": round(moment_right / moment_total, 3), "queries": len(queries),
                                  "misses": misses})
    return latency_rows, accuracy_rows


def chart(doc: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    enc = doc["encoder_throughput"]
    for kind, marker in (("short", "o"), ("long", "s")):
        rows = [r for r in enc if r["texts"] == kind]
        axes[0].plot([r["batch_size"] for r in rows], [r["texts_per_s"] for r in rows], marker=marker,
                     label=f"{kind} (~{rows[0]['mean_words']:.0f} words)")
    axes[0].set(xscale="log", xlabel="batch size", ylabel="texts/s",
                title=f"MiniLM-L6 encode throughput (CPU, load {doc['machine']['load_avg_1m']})")
    axes[0].set_xticks([16, 64, 256], ["16", "64", "256"])
    axes[0].minorticks_off()
    axes[0].legend()
    lat = doc["latency"]
    labels = [f"{r['mode']}\n{r['target']}" + ("\n+where" if r["where"] else "") for r in lat]
    x = np.arange(len(lat))
    axes[1].bar(x - 0.2, [r["p50_ms"] for r in lat], 0.4, label="p50")
    axes[1].bar(x + 0.2, [r["p95_ms"] for r in lat], 0.4, label="p95")
    axes[1].set_xticks(x, labels, fontsize=7)
    axes[1].set(ylabel="ms per query (embedding included)",
                title=f"query latency, {doc['catalog']['clips']} clips / {doc['catalog']['moments']} moments")
    axes[1].legend()
    acc = doc["accuracy"]
    x = np.arange(len(acc))
    axes[2].bar(x - 0.2, [r["top1_clip"] for r in acc], 0.4, label="top-1 clip")
    axes[2].bar(x + 0.2, [r["moment_2s"] for r in acc], 0.4, label="right moment (+-2 s)")
    axes[2].axhline(0.9, color="grey", ls="--", lw=0.8)
    axes[2].axhline(0.8, color="grey", ls=":", lw=0.8)
    axes[2].set_xticks(x, [r["mode"] for r in acc])
    axes[2].set(ylim=(0, 1.05), title=f"accuracy, {acc[0]['queries']} labelled queries")
    axes[2].legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1000, help="synthetic distractor records")
    parser.add_argument("--repeats", type=int, default=1, help="passes over the 30 queries per mode")
    parser.add_argument("--relevance", action="store_true",
                        help="only the relevance model: calibrate on the synthetic corpus, then evaluate on "
                             "held-out ingested clips (see --heldout); writes search_relevance.json")
    parser.add_argument("--heldout", type=Path,
                        help="records folder of an ingest of tests/catalog/spoken.py's footage (default: ingest "
                             "it now into a temporary home, several minutes)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.relevance:
        relevance_main(args.heldout)
        return
    started = time.perf_counter()

    t0 = time.perf_counter()
    encoder = TextEncoder()
    encoder.setup("cpu")
    load_s = time.perf_counter() - t0

    labelled, queries = labelled_corpus()
    distractors = synthetic_records(args.records)
    records = [*distractors, *labelled]
    short = [m.text for r in labelled for m in build_moments(r)][:256]
    long = [c for r in labelled for c in clip_texts(r).transcript_chunks][:32]
    throughput = encoder_throughput(encoder, short, long)

    caching = CachingEncoder(encoder)
    t0 = time.perf_counter()
    vectors = []
    for start in range(0, len(records), 64):
        vectors.extend(embed_records(records[start:start + 64], caching))
    embed_s = time.perf_counter() - t0
    log.info("embedded %d records (%d texts, %d through the model) in %.1f s", len(records), caching.requested,
             caching.model_texts, embed_s)

    with tempfile.TemporaryDirectory() as tmp:
        catalog = Catalog.open(path=Path(tmp) / "catalog", url=None)
        try:
            t0 = time.perf_counter()
            for start in range(0, len(records), 64):
                catalog.upsert(records[start:start + 64], vectors[start:start + 64])
            upsert_s = time.perf_counter() - t0
            clips, moments = catalog.count(), catalog.count("moments")
            log.info("upserted %d clips + %d moments in %.1f s", clips, moments, upsert_s)
            ids = {r.file.name: r.clip_id for r in labelled}
            latency, accuracy = run_queries(catalog, encoder, queries, ids, args.repeats)
        finally:
            catalog.close()

    doc = {
        "benchmark": "search",
        "created": datetime.now().isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "device": "cpu",
                    "load_avg_1m": round(os.getloadavg()[0], 2)},
        "model": {"id": encoder.model_id, "dim": encoder.dim, "load_s": round(load_s, 2)},
        "catalog": {"mode": "local (embedded, on disk)", "records": len(records), "clips": clips,
                    "moments": moments, "labelled": len(labelled), "distractors": len(distractors)},
        "encoder_throughput": throughput,
        "embed": {"records": len(records), "texts_requested": caching.requested,
                  "texts_encoded": caching.model_texts, "seconds": round(embed_s, 2),
                  "model_texts_per_s": round(caching.model_texts / max(caching.model_s, 1e-9), 1),
                  "records_per_s": round(len(records) / embed_s, 1), "batch_records": 64},
        "upsert": {"seconds": round(upsert_s, 2), "records_per_s": round(len(records) / upsert_s, 1),
                   "points_per_s": round((clips + moments) / upsert_s, 1), "batch_records": 64},
        "latency": latency,
        "accuracy": accuracy,
        "runtime_s": round(time.perf_counter() - started, 1),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "search.json").write_text(json.dumps(doc, indent=2) + "\n")
    chart(doc, RESULTS / "search.png")

    print(f"\ncatalog: {clips} clips, {moments} moments ({len(labelled)} labelled + {len(distractors)} distractors)")
    print(f"model {encoder.model_id} ({encoder.dim}-d) loaded in {load_s:.1f} s")
    print("\nencoder throughput (texts/s)          batch 16   batch 64  batch 256")
    for kind in ("short", "long"):
        rows = {r["batch_size"]: r["texts_per_s"] for r in throughput if r["texts"] == kind}
        print(f"  {kind:5} texts ({throughput[0 if kind == 'short' else 3]['mean_words']:>5} words)"
              f"        {rows[16]:>8} {rows[64]:>10} {rows[256]:>10}")
    e, u = doc["embed"], doc["upsert"]
    print(f"\nembed stage: {e['records_per_s']} records/s ({e['texts_encoded']} new texts at "
          f"{e['model_texts_per_s']} texts/s; {e['texts_requested']} requested)")
    print(f"upsert: {u['records_per_s']} records/s, {u['points_per_s']} points/s")
    print("\nmode      target   where                      p50 ms   p95 ms")
    for r in latency:
        print(f"  {r['mode']:9}{r['target']:9}{(r['where'] or ''):26}{r['p50_ms']:>8}{r['p95_ms']:>9}")
    print("\nmode       top-1 clip   right moment (+-2 s)")
    for r in accuracy:
        print(f"  {r['mode']:10}{r['top1_clip']:>10}{r['moment_2s']:>16}")
    print(f"\nruntime {doc['runtime_s']} s -> {RESULTS / 'search.json'}, search.png")


def relevance_main(heldout_dir: Path | None) -> None:
    """Calibration fit (printed, for rayflow/catalog/relevance.py) and the held-out figures."""
    from benchmarks import relevance_eval

    encoder = TextEncoder()
    encoder.setup("cpu")
    calibration = relevance_eval.calibrate(encoder)
    print("calibration (paste into rayflow/catalog/relevance.py MODELS):")
    for mode, fit in calibration["models"].items():
        print(f"  {mode:9} {fit['weights']}  recall@0.5 {fit['recall_at_0_5']}  "
              f"precision@0.5 {fit['precision_at_0_5']}  ({fit['rows']} rows, {fit['positives']} positive)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = heldout_dir or relevance_eval.ingest_heldout(Path(tmp))
        records = relevance_eval.load_records(folder)
    evaluations = [relevance_eval.heldout(encoder, records, mode) for mode in ("hybrid", "semantic", "keyword")]
    for doc in evaluations:
        relevance_eval.print_heldout(doc)
    relevance_eval.dump({"benchmark": "search_relevance", "created": datetime.now().isoformat(timespec="seconds"),
                         "calibration": calibration, "heldout": evaluations},
                        RESULTS / "search_relevance.json")
    print(f"\n-> {RESULTS / 'search_relevance.json'}")


if __name__ == "__main__":
    main()
