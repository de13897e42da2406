"""The AnalyzerPool's decisions on a shared, changing cluster, without Ray (fleet_rules)."""

from __future__ import annotations

from rayflow.engine.fleet_rules import (
    PlacementWatch,
    analyzer_name,
    autoscale_bundles,
    backlog,
    grow_by,
    idle_to_release,
    parse_name,
    to_retire,
)


def test_names_round_trip_and_other_names_are_not_analyzers() -> None:
    assert parse_name(analyzer_name("ab12cd34", 3)) == ("ab12cd34", 3)
    assert parse_name("rayflow-leases") is None
    assert parse_name("rayflow-analyzer-x") is None  # no index
    assert parse_name("someone-elses-actor-0") is None


def test_other_settings_are_retired_unless_another_run_uses_them() -> None:
    names = [analyzer_name("new", 0), analyzer_name("old", 0), analyzer_name("old", 1),
             analyzer_name("new", 1), analyzer_name("new", 2), "rayflow-leases"]
    holders = {analyzer_name("old", 1): ["run on b pid 7"], analyzer_name("new", 2): ["run on c pid 9"]}
    retire = to_retire(names, "new", 1, holders)
    # old-0: other settings, idle; new-1: this key but beyond what this run keeps (grown earlier).
    assert retire.kill == (analyzer_name("new", 1), analyzer_name("old", 0))
    # Leased by another run: left alone (the same key grown by a run beside this one too).
    assert retire.in_use == {analyzer_name("new", 2): ("run on c pid 9",), analyzer_name("old", 1): ("run on b pid 7",)}
    assert to_retire([analyzer_name("new", 0)], "new", 1, {}).kill == ()  # its own: reused


def test_growth_is_bounded_by_the_plan_the_free_gpus_and_the_backlog() -> None:
    assert backlog(queued=5, actors=2) == 3 and backlog(queued=1, actors=2) == 0
    assert grow_by(current=1, fit=2, waiting=4, free_gpus=1.0, per_gpu=1.0) == 1  # a 1-GPU node joined
    assert grow_by(current=1, fit=4, waiting=4, free_gpus=3.0, per_gpu=1.0) == 3
    assert grow_by(current=1, fit=4, waiting=2, free_gpus=3.0, per_gpu=1.0) == 2  # no more than the backlog
    assert grow_by(current=2, fit=2, waiting=4, free_gpus=1.0, per_gpu=1.0) == 0  # the plan allows no more
    assert grow_by(current=1, fit=4, waiting=4, free_gpus=0.0, per_gpu=1.0) == 0  # it would only pend
    assert grow_by(current=1, fit=8, waiting=9, free_gpus=1.0, per_gpu=0.25) == 4  # shares of one GPU
    assert grow_by(current=1, fit=4, waiting=4, free_gpus=2.0, per_gpu=0.0) == 0  # CPU pools stay
    assert grow_by(current=1, fit=4, waiting=0, free_gpus=2.0, per_gpu=1.0) == 0


def test_the_autoscaler_is_asked_for_the_backlog_and_the_request_withdrawn_after() -> None:
    bundles = autoscale_bundles(current=2, waiting=3, per_gpu=1.0, cpus=1.0)
    assert bundles == [{"GPU": 1.0, "CPU": 1.0}] * 5  # the whole target: request_resources counts what runs
    assert autoscale_bundles(current=2, waiting=3, per_gpu=0.5, cpus=0.0, cap=4) == [{"GPU": 0.5}] * 4
    assert autoscale_bundles(current=2, waiting=0, per_gpu=1.0, cpus=1.0) == []
    assert autoscale_bundles(current=1, waiting=3, per_gpu=0.0, cpus=1.0) == []


def test_only_added_analyzers_idle_long_enough_are_released_newest_first() -> None:
    idle = {0: 0.0, 1: 0.0, 2: 50.0, 3: None, 4: 10.0}
    assert idle_to_release(idle, keep=2, now=100.0, idle_s=60.0) == [4]  # 2 idle 50 s, 3 busy
    assert idle_to_release(idle, keep=2, now=200.0, idle_s=60.0) == [4, 2]
    assert idle_to_release(idle, keep=5, now=200.0, idle_s=60.0) == []
    assert idle_to_release({0: 0.0, 5: 0.0}, keep=1, now=100.0, idle_s=60.0) == [5]  # indexes need not be dense


def test_an_analyzer_waiting_to_be_placed_is_stuck_only_after_the_bound() -> None:
    watch = PlacementWatch(bound_s=30.0)
    watch.update([0, 1], now=0.0)
    watch.update([0, 1], now=20.0)
    assert watch.stuck(20.0) == []
    watch.update([1], now=25.0)  # 0 was placed
    watch.update([1, 2], now=31.0)
    assert watch.stuck(31.0) == [1]  # waiting since 0.0; 2 only since 31.0
    watch.update([2], now=40.0)
    assert watch.stuck(70.0) == [2] and 1 not in watch.since
