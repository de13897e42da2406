"""One ``rayflow ingest``'s analysis part on a cluster, with the stand-in analyzer
(``tests.cluster.standin``): the real AnalyzerPool and AnalysisQueue, driven by the same
loop as the scheduler (``watch`` every tick, ``collect`` what finished). Prints JSON lines
for the test: ``started``, ``grew`` (the pool's events changed), ``holding``, then ``end``
with each file's result, the pool's events, the largest autoscaler request seen and the
persistent analyzers alive after ``stop``.

    python -m tests.cluster.pool_driver ADDRESS HOME FOLDER FILES [--threads N]
        [--gpu-wait S] [--idle S] [--hold FILE] [--linger S]

``--threads`` stands for any analysis setting (it changes the persistent analyzers' key);
``--hold FILE``: after the files, keep the pool (and its leases) while FILE exists;
``--linger S``: after the files, keep watching up to S s until an added analyzer is released.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import ray

from rayflow.config import load_settings
from rayflow.engine.analysis_queue import AnalysisQueue
from rayflow.engine.fleet_rules import NAMESPACE, PREFIX, analyzer_name
from rayflow.engine.pools import AnalyzerPool
from rayflow.engine.progress import Progress
from rayflow.record import ClipRecord, FileInfo

HOLDER = "tests.cluster.standin:GatedAnalyzer"
STARTED = time.monotonic()


def say(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, "at": round(time.monotonic() - STARTED, 1), **fields}), flush=True)


def autoscaler_request() -> int | None:
    """Bundles in the standing autoscaler request (v1 autoscaler's channel; None when unreadable)."""
    from ray.experimental.internal_kv import _internal_kv_get

    raw = _internal_kv_get(b"autoscaler_resource_request")
    return None if raw is None else len(json.loads(raw))


def persistent_analyzers() -> list[str]:
    return sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                  if a["namespace"] == NAMESPACE and a["name"].startswith(PREFIX))


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("address", "home", "folder"):
        parser.add_argument(name)
    parser.add_argument("files", type=int)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--gpu-wait", type=float, default=600.0)
    parser.add_argument("--idle", type=float, default=120.0)
    parser.add_argument("--hold")
    parser.add_argument("--linger", type=float, default=0.0)
    args = parser.parse_args()
    ray.init(address=args.address, log_to_driver=False, logging_level="ERROR")
    say("connected")
    # No embed step: the analyzers then ask for a whole GPU each (no share kept for the embedder).
    settings = load_settings(env={}, home=Path(args.home), address=args.address, skip=("embed",),
                             analysis={"threads": args.threads},
                             timeouts={"gpu_wait_s": args.gpu_wait, "analyzer_idle_s": args.idle})
    pool = AnalyzerPool.start(settings, holder=HOLDER)
    queue = AnalysisQueue(pool, settings, Progress())
    for i in range(args.files):
        path = f"{args.folder}/f{i:02d}.mp4"
        record = ClipRecord(clip_id=f"id{i:02d}", file=FileInfo(path=path, name=Path(path).name, size_bytes=1,
                                                                 checksum="0"))
        queue.submit(path, record, None)
    say("started", actors=len(pool.live()), events=pool.events)
    results: dict[str, str] = {}
    most_requested = 0
    seen = len(pool.events)

    def tick() -> None:
        nonlocal most_requested, seen
        for done in queue.watch():
            results[done.key] = f"error: {done.error}"
        most_requested = max(most_requested, autoscaler_request() or 0)
        if len(pool.events) != seen:
            seen = len(pool.events)
            say("grew" if "grew" in pool.events[-1] else "changed", events=pool.events, actors=len(pool.live()))
        refs = queue.refs()
        if not refs:
            time.sleep(0.2)
            return
        ready, _ = ray.wait(refs, num_returns=1, timeout=0.5)
        for ref in ready:
            done = queue.collect(ref)
            if done is not None:
                results[done.key] = done.error and f"error: {done.error}" or done.result.analysis.description

    while queue.busy():
        tick()
    if args.hold:
        say("holding", results=results)
        while Path(args.hold).exists():
            tick()
    deadline = time.monotonic() + args.linger
    while time.monotonic() < deadline and not any("released" in e for e in pool.events):
        tick()
    pool.stop()
    # ray.kill returns before the GCS frees the name: wait (bounded) for the released ones to go.
    released = {analyzer_name(pool.key, i) for i in range(len(pool.actors)) if i not in pool.in_flight}
    deadline = time.monotonic() + 20
    while released & set(persistent_analyzers()) and time.monotonic() < deadline:
        time.sleep(0.2)
    say("end", results=results, events=pool.events, live=len(pool.live()), requested=most_requested,
        after_stop=autoscaler_request(), analyzers=persistent_analyzers())


if __name__ == "__main__":
    main()
