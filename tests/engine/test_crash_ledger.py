"""Who was running when an analyzer died: only that file is a suspect (no Ray needed)."""

from __future__ import annotations

from rayflow.engine.analysis_queue import CrashLedger, crash_reason


def test_only_the_oldest_outstanding_call_is_the_suspect_whatever_order_failures_arrive() -> None:
    ledger = CrashLedger()
    for ref in ("a", "b", "c"):
        ledger.sent(0, ref)
    ledger.sent(1, "x")  # another actor's call is not part of this crash
    # the bystanders' failures are seen first, the running one's last
    assert ledger.crashed(0, "c") is False
    assert ledger.crashed(0, "b") is False
    assert ledger.crashed(0, "a") is True
    assert ledger.queues[0] == [] and ledger.crashes == {} and ledger.queues[1] == ["x"]


def test_a_later_crash_is_a_new_event_with_its_own_suspect() -> None:
    ledger = CrashLedger()
    for ref in ("a", "b"):
        ledger.sent(0, ref)
    assert ledger.crashed(0, "a") is True  # the running one first this time
    ledger.sent(0, "c")  # sent after the crash (to the restarted actor)
    assert ledger.crashed(0, "b") is False  # b was queued when the actor died
    ledger.finished(0, "c")
    ledger.sent(0, "d")
    ledger.sent(0, "b")  # requeued bystander
    assert ledger.crashed(0, "b") is False and ledger.crashed(0, "d") is True


def test_a_suspect_that_succeeded_on_a_retry_does_not_linger() -> None:
    ledger = CrashLedger()
    for ref in ("a", "b"):
        ledger.sent(0, ref)
    assert ledger.crashed(0, "b") is False  # Ray retried "a" (still outstanding)
    ledger.finished(0, "a")  # ...and it came back fine
    assert ledger.crashes == {}
    ledger.sent(0, "c")
    assert ledger.crashed(0, "c") is True


def test_crash_reasons_say_memory_only_when_ray_says_so() -> None:
    oom = RuntimeError("The actor died ... Task was killed due to the node running low on memory. Memory on the "
                       "node was 23 GB / 24 GB (0.96), which exceeds the memory usage threshold of 0.95")
    assert crash_reason(oom).startswith("out of memory (Ray's memory monitor")
    # Ray's text for a SIGKILLed worker (Ray 2.60): its list of *possible* causes is not a diagnosis
    killed = RuntimeError(
        "The actor died unexpectedly before finishing this task. Worker exit type: SYSTEM_ERROR Worker exit "
        "detail: Worker unexpectedly exits with a connection error code 2. End of file. Some common causes "
        "include: (1) the process was killed by the OOM killer due to high memory usage, (2) ray stop --force "
        "was called, or (3) the worker crashed unexpectedly due to SIGSEGV or another unexpected error.")
    reason = crash_reason(killed)
    assert reason.startswith("the process died (Worker unexpectedly exits with a connection error code 2.")
    assert "out of memory" not in reason
    assert crash_reason(RuntimeError("connection lost")) == "the process died: connection lost"
