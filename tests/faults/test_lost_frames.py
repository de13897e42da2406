"""What counts as frames lost with their owner (re-decoded, uncharged) and what does not."""

from __future__ import annotations

import ray.exceptions as rex

from rayflow.engine.analysis_queue import lost_input

REF = "ab" * 14


def test_an_object_lost_with_its_owner_is_lost_input_directly_or_as_a_task_error_cause() -> None:
    owner_died = rex.OwnerDiedError(REF, None, "inspect")
    assert lost_input(owner_died)
    assert lost_input(rex.ObjectReconstructionFailedError(REF, None, "inspect"))
    assert lost_input(rex.RayTaskError("analyze", "tb", owner_died).as_instanceof_cause())


def test_a_failure_of_the_analysis_itself_is_not_lost_input() -> None:
    assert not lost_input(rex.RayTaskError("analyze", "tb", ValueError("bad frame")).as_instanceof_cause())
    assert not lost_input(RuntimeError("model failed"))
