"""AnalyzerPool fault handling with real Ray actors: a crash kills one attempt, never the pool."""

from __future__ import annotations

import pytest
import ray

from rayflow.config import load_settings
from rayflow.engine.pools import AnalyzerPool

pytestmark = pytest.mark.slow


def test_a_crashing_file_is_retried_boundedly_and_the_actor_serves_the_next(engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings(env={}, home=tmp_path / "home", analysis={"workers": 1, "max_attempts": 2})
    pool = AnalyzerPool.start(settings, holder="tests.engine.crashy:CrashyAnalyzer")
    try:
        ok_ref, idx = pool.submit("/x/fine.mp4", "id", None, None)
        first_pid = ray.get(ok_ref).analysis.description
        pool.done(idx)
        bad_ref, idx = pool.submit("/x/crash.mp4", "id", None, None)
        with pytest.raises(ray.exceptions.RayActorError):
            ray.get(bad_ref, timeout=120)
        pool.done(idx)
        again_ref, idx = pool.submit("/x/fine2.mp4", "id", None, None)
        second_pid = ray.get(again_ref, timeout=120).analysis.description
        pool.done(idx)
        assert second_pid != first_pid  # Ray restarted the actor (and reloaded its models once)
        (stats,) = pool.stats()
        assert stats["loads"] == 1 and stats["files"] == 1
    finally:
        pool.stop()


def test_on_a_long_lived_cluster_actors_stay_warm_across_runs(engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # `address` set = a cluster that outlives the run (here the session's cluster stands in).
    settings = load_settings(env={}, home=tmp_path / "home", address="auto", analysis={"workers": 1})
    first = AnalyzerPool.start(settings, holder="tests.engine.crashy:CrashyAnalyzer")
    assert first.persistent
    ref, idx = first.submit("/x/a.mp4", "id", None, None)
    pid = ray.get(ref).analysis.description
    first.done(idx)
    first.stop()  # end of run 1: persistent actors are left running
    second = AnalyzerPool.start(settings, holder="tests.engine.crashy:CrashyAnalyzer")
    try:
        ref, idx = second.submit("/x/b.mp4", "id", None, None)
        assert ray.get(ref).analysis.description == pid  # same warm process
        (stats,) = second.stats()
        assert stats["loads"] == 1 and stats["files"] == 2  # models loaded once across both runs
    finally:
        for actor in second.actors:
            ray.kill(actor, no_restart=True)


def test_a_hung_model_call_fails_that_file_and_the_actor_restarts_fresh(engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings(env={}, home=tmp_path / "home", timeouts={"model_call_s": 1.0},
                             analysis={"workers": 1, "max_attempts": 2})
    pool = AnalyzerPool.start(settings, holder="tests.engine.crashy:HangyAnalyzer")
    try:
        ref, idx = pool.submit("/x/hang.mp4", "id", None, None)
        hung = ray.get(ref, timeout=120)
        pool.done(idx)
        assert "timed out after 1 s" in hung.errors["faces"]  # answered, with the reason
        ref, idx = pool.submit("/x/fine.mp4", "id", None, None)
        after = ray.get(ref, timeout=120)
        pool.done(idx)
        assert after.errors == {}
        assert after.analysis.description != hung.analysis.description  # a new process: the hung thread is gone
        (stats,) = pool.stats()
        assert stats["loads"] == 1 and stats["files"] == 1
    finally:
        pool.stop()


def test_a_hung_embed_call_raises_with_the_reason_and_asks_for_a_restart(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import threading

    from rayflow.config import EmbedSettings
    from rayflow.engine import pools
    from rayflow.ml.deadline import ModelTimeout

    release = threading.Event()
    restarts: list[bool] = []
    monkeypatch.setattr("rayflow.stages.embed.embed_records", lambda *a, **k: release.wait(60))
    monkeypatch.setattr(pools, "_exit_soon", lambda: restarts.append(True))  # not this pytest process
    actor = pools.EmbedderActor(EmbedSettings(), timeout_s=1.0)  # the real text model, loaded once
    try:
        with pytest.raises(ModelTimeout, match="timed out after 1 s"):
            actor.embed([])
    finally:
        release.set()
    assert restarts == [True]
