"""Where does an ingest's cold start go? Times each part before the first file runs.

Runs one in-process ingest of a single short generated clip into a fresh home, the way
`rayflow ingest` does (Ray embedded, Prefect server started for the run, the default
steps unless --skip), and reports:

  import_s        importing the session module (the flow and Prefect are imported by the run,
                  once PREFECT_API_URL is set: imported earlier, Prefect would start its own server)
  encoders_s      detecting proxy encoders (ffmpeg -encoders + a one-frame trial)
  ray_s           ray.init of the embedded cluster
  writer_s        starting the catalog writer actor (call only; it opens in the background)
  prefect_wait_s  waiting for the Prefect server after everything above (0 = it was ready)
  warm_s          writer ready + warm workers + embedder model answered
  first_stage_s   command start -> first stage running (what the user waits for)
  first_file_s    command start -> first file finished
  total_s         the whole ingest, shutdown included

    .venv/bin/python benchmarks/startup.py [--skip analyze --skip proxy --skip embed] [--no-preload]

Writes benchmarks/results/startup.json. Numbers are wall seconds on this machine as
loaded at the time; compare runs made side by side.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"


def make_clip(folder: Path) -> Path:
    out = folder / "startup_clip.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=2",
         "-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-c:v", "libx264", "-preset", "ultrafast",
         "-c:a", "aac", "-shortest", str(out)], check=True, timeout=120)
    return out


def watch_first(progress, started: float, marks: dict[str, float]) -> threading.Event:  # type: ignore[no-untyped-def]
    """Polls the run's progress every 20 ms; records when a stage first runs and a file finishes."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(0.02):
            snap = progress.snapshot()
            if "first_stage_s" not in marks and any(c.running or c.done for c in snap.stages.values()):
                marks["first_stage_s"] = time.monotonic() - started
            if "first_file_s" not in marks and snap.finished:
                marks["first_file_s"] = time.monotonic() - started

    threading.Thread(target=loop, daemon=True).start()
    return stop


def one_run(clip: Path, skip: list[str]) -> dict[str, float]:
    started = time.monotonic()
    t = time.monotonic()
    from rayflow.config import load_settings
    from rayflow.engine import session
    from rayflow.engine.progress import Progress
    from rayflow.media.encoders import detect_encoders

    import_s = time.monotonic() - t
    with tempfile.TemporaryDirectory(prefix="rfstart-") as tmp:
        settings = load_settings(env={}, home=Path(tmp), skip=tuple(skip) or None)
        t = time.monotonic()
        if "proxy" not in skip:
            detect_encoders(settings.proxy.encoders, timeout_s=60)
        encoders_s = time.monotonic() - t  # the run detects them again: this is what it pays
        progress = Progress()
        marks: dict[str, float] = {}
        stop = watch_first(progress, started, marks)
        timings = session.RunTimings()
        summary = session.ingest([str(clip)], settings, progress=progress, timings=timings)
        stop.set()
        total = time.monotonic() - started
    assert summary.counts.get("ingested") == 1, summary.model_dump_json(indent=2)
    return {"import_s": import_s, "encoders_s": encoders_s, "ray_s": timings.ray_s,
            "writer_s": timings.writer_s, "prefect_wait_s": timings.prefect_s,
            "warm_s": timings.extra.get("warm_s", 0.0),
            "analyzer_load_s": timings.extra.get("analyzer_load_s", 0.0),
            "first_stage_s": marks.get("first_stage_s", float("nan")),
            "first_file_s": marks.get("first_file_s", float("nan")),
            "flow_s": timings.flow_s, "total_s": total}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skip", action="append", default=[], help="Step to skip (repeatable), as ingest --skip.")
    ap.add_argument("--no-preload", action="store_true",
                    help="Import Prefect after Ray starts, as before runtime.preload_prefect (for an A/B).")
    args = ap.parse_args()
    if args.no_preload:
        from rayflow.engine import runtime

        runtime.preload_prefect = lambda prefect_api_url: None  # type: ignore[assignment]
    with tempfile.TemporaryDirectory(prefix="rfclip-") as tmp:
        clip = make_clip(Path(tmp))
        result = one_run(clip, args.skip)
    doc = {"when": datetime.now(UTC).isoformat(), "skip": args.skip, "preload": not args.no_preload, **result}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "startup.json").write_text(json.dumps(doc, indent=2))
    for key, value in result.items():
        print(f"{key:<16} {value:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
