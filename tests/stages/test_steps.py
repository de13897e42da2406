from __future__ import annotations

import pytest

from rayflow.stages.steps import STEPS, plan_steps


def test_default_runs_every_default_step() -> None:
    assert plan_steps().enabled == {s.name for s in STEPS if s.default}


def test_skip_drops_dependents_and_explains() -> None:
    plan = plan_steps(skip=("sample",))
    assert "sample" not in plan.enabled
    assert "thumbnails" not in plan.enabled and "exposure" not in plan.enabled
    assert any("thumbnails needs sample" in n for n in plan.notes)


def test_only_adds_prerequisites_and_required_steps() -> None:
    plan = plan_steps(only=("exposure",))
    assert plan.enabled == {"fingerprint", "probe", "sample", "exposure", "store"}
    assert any("exposure needs" in n for n in plan.notes)


def test_required_and_unknown_steps_are_usage_errors() -> None:
    with pytest.raises(ValueError, match="required"):
        plan_steps(skip=("store",))
    with pytest.raises(ValueError, match="unknown step 'nope'"):
        plan_steps(only=("nope",))
