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
  catalog_wait_s  the catalog open and the text model checked against it (asked by the flow
                  after the first fingerprints: the writer opens it meanwhile), 0 if not reached
  first_stage_s   command start -> first stage running (what the user waits for)
  first_file_s    command start -> first file finished
  total_s         the whole ingest, shutdown included

    .venv/bin/python benchmarks/startup.py [--skip analyze --skip proxy --skip embed] [--no-preload]
    .venv/bin/python benchmarks/startup.py --service [--skip ...]

--service compares, side by side, each run in a fresh Python process as `rayflow ingest` is
(times from when it was started, interpreter start included): ``cold`` (a fresh home, no
service: private Ray, Prefect started for the run, models loaded), then on another home after
`rayflow server start` (timed as service_start_s): ``service 1st`` (attaches; the persistent
actors load their models) and ``service warm`` (a second clip: the models are already loaded).
The service is stopped at the end (`rayflow server stop`).

Writes benchmarks/results/startup.json (startup_service.json with --service). Numbers are wall
seconds on this machine as loaded at the time; compare runs made side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"


def make_clip(folder: Path, name: str = "startup_clip.mp4") -> Path:
    """A 2 s 320x240 clip; each ``name`` gets different pixels (so another clip_id)."""
    out = folder / name
    seed = 0 if name == "startup_clip.mp4" else sum(map(ord, name)) % 7 + 1
    seconds = 2 + seed / 10  # the audio as long as the video: -shortest cut every clip to 2 s (one content)
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
         f"testsrc2=size=320x240:rate=25:duration={seconds:g}",
         "-f", "lavfi", "-i", f"sine=frequency={440 + 20 * seed}:duration={seconds:g}",
         "-c:v", "libx264", "-preset", "ultrafast",
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


def one_run(clip: Path, skip: list[str], home: Path | None = None,
            spawned_at: float | None = None) -> dict[str, Any]:
    """One ingest of ``clip`` in this process (into a temporary home unless ``home``). With
    ``spawned_at`` (the parent's ``time.time()`` just before it started this process) times
    count from then, interpreter start included, and encoders are not detected separately
    first (what a `rayflow ingest` command waits for). Not from psutil's ``create_time``: it
    adds the boot time, which Linux gives in whole seconds (0.78 s off on the dev VM)."""
    started = time.monotonic()
    if spawned_at is not None:
        started -= time.time() - spawned_at
    t = time.monotonic()
    from rayflow.config import load_settings
    from rayflow.engine import session
    from rayflow.engine.progress import Progress
    from rayflow.media.encoders import detect_encoders

    import_s = time.monotonic() - t
    with tempfile.TemporaryDirectory(prefix="rfstart-") as tmp:
        settings = load_settings(env={}, home=home or Path(tmp), skip=tuple(skip) or None)
        t = time.monotonic()
        if "proxy" not in skip and spawned_at is None:
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
    attached = any(n.startswith("attached to the rayflow service") for n in summary.notes)
    loads = [n for n in summary.notes if n.startswith("analysis:")]
    return {"attached": float(attached), "note": loads[0] if loads else "",
            "import_s": import_s, "encoders_s": encoders_s, "ray_s": timings.ray_s,
            "writer_s": timings.writer_s, "prefect_wait_s": timings.prefect_s,
            "catalog_wait_s": timings.extra.get("catalog_wait_s", 0.0),
            "analyzer_load_s": timings.extra.get("analyzer_load_s", 0.0),
            "first_stage_s": marks.get("first_stage_s", float("nan")),
            "first_file_s": marks.get("first_file_s", float("nan")),
            "flow_s": timings.flow_s, "total_s": total}


def rayflow_cli(args: list[str], home: Path) -> float:
    """Run `rayflow <args>` for ``home``; its wall seconds (raises when it fails)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "RAY_ADDRESS")}
    env["RAYFLOW_HOME"] = str(home)
    t = time.monotonic()
    subprocess.run([sys.executable, "-m", "rayflow.cli.main", *args], env=env, check=True, timeout=600,
                   stdin=subprocess.DEVNULL, capture_output=True)
    return time.monotonic() - t


def fresh_process_run(clip: Path, skip: list[str], home: Path) -> dict[str, Any]:
    """:func:`one_run` in a new Python process (nothing imported yet, as a CLI command)."""
    argv = [sys.executable, str(Path(__file__)), "--one", str(clip), "--home", str(home)]
    argv += [f"--skip={step}" for step in skip]
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "RAY_ADDRESS")}
    env[SPAWNED_AT] = repr(time.time())
    proc = subprocess.run(argv, env=env, check=True, timeout=900, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True)
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


SPAWNED_AT = "RAYFLOW_BENCH_SPAWNED_AT"
"""Set by :func:`fresh_process_run` for the child: when it was started (``time.time()``)."""


def compare_service(skip: list[str]) -> dict[str, object]:
    """Cold vs attached to a running service, each in a fresh process (see module doc)."""
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="rfsvc-") as tmp:
        root = Path(tmp)
        clips = [make_clip(root, name) for name in ("a.mp4", "b.mp4", "c.mp4")]
        rows["cold"] = fresh_process_run(clips[0], skip, root / "cold")
        service_start_s = rayflow_cli(["server", "start"], root / "svc")
        try:
            rows["service 1st"] = fresh_process_run(clips[1], skip, root / "svc")
            rows["service warm"] = fresh_process_run(clips[2], skip, root / "svc")
        finally:
            service_stop_s = rayflow_cli(["server", "stop"], root / "svc")
    return {"rows": rows, "service_start_s": service_start_s, "service_stop_s": service_stop_s}


def print_table(rows: dict[str, dict[str, Any]]) -> None:
    keys = [k for k, v in next(iter(rows.values())).items() if isinstance(v, float) and k != "attached"]
    print(f"{'':<16}" + "".join(f"{name:>14}" for name in rows))
    for key in ["attached", *keys]:
        print(f"{key:<16}" + "".join(f"{float(row.get(key, float('nan'))):>14.2f}" for row in rows.values()))
    for name, row in rows.items():
        print(f"{name}: {row.get('note', '')}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skip", action="append", default=[], help="Step to skip (repeatable), as ingest --skip.")
    ap.add_argument("--no-preload", action="store_true",
                    help="Import Prefect after Ray starts, as before runtime.preload_prefect (for an A/B).")
    ap.add_argument("--service", action="store_true",
                    help="Cold vs attached to `rayflow server start` (1st and warm), fresh processes.")
    ap.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # internal: one run, JSON out
    ap.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one_run(args.one, args.skip, args.home, spawned_at=float(os.environ[SPAWNED_AT]))))
        return 0
    if args.service:
        load = os.getloadavg()[0]
        compared = compare_service(args.skip)
        doc = {"when": datetime.now(UTC).isoformat(), "skip": args.skip, "cpus": os.cpu_count(),
               "load_avg_1m_before": load, "load_avg_1m_after": os.getloadavg()[0], **compared}
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "startup_service.json").write_text(json.dumps(doc, indent=2))
        print_table(compared["rows"])  # type: ignore[arg-type]
        print(f"service_start_s {compared['service_start_s']:.2f}  service_stop_s {compared['service_stop_s']:.2f}  "
              f"load avg 1m {load:.1f} -> {doc['load_avg_1m_after']:.1f} on {os.cpu_count()} CPUs")
        return 0
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
        print(f"{key:<16} {value:6.2f}" if isinstance(value, float) else f"{key:<16} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
