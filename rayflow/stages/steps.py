"""The pipeline's steps, what each needs, and which run for a given --skip/--only.

Pure data and logic (no ray, no prefect) so ``rayflow steps`` and the flow agree.
"""

from __future__ import annotations

from dataclasses import dataclass

from rayflow.record import STEP_NAMES, StepName


@dataclass(frozen=True)
class Step:
    name: StepName
    needs: tuple[StepName, ...]
    default: bool
    required: bool
    """Required steps always run: without them there is no record."""
    summary: str


STEPS: tuple[Step, ...] = (
    Step("fingerprint", (), True, True, "streaming BLAKE3 checksum -> clip_id; catalogued content is skipped"),
    Step("probe", ("fingerprint",), True, False,
         "ffprobe + mediainfo + exiftool once each -> every technical fact"),
    Step("sample", ("probe",), True, False,
         "decode evenly spaced exact frames once (decord, ffmpeg fallback) into the object store"),
    Step("thumbnails", ("sample",), True, False, "JPEG/WebP thumbnails from the sampled frames"),
    Step("exposure", ("sample",), True, False, "clipped highlights, crushed shadows, luma, stop offset"),
    Step("analyze", ("sample",), True, False,
         "warm model actors: shots, speech, on-screen text, faces/shot scale, description, best thumbnails"),
    Step("proxy", ("probe",), True, False,
         "small review copy (proxy.mp4): NVENC where the GPU has it, libx264 otherwise"),
    Step("embed", ("probe",), True, False,
         "text vectors (summary, transcript, technical, moments) for search, batched across files"),
    Step("store", ("fingerprint",), True, True, "JSON sidecar + Qdrant point, written last and atomically"),
)
BY_NAME: dict[str, Step] = {s.name: s for s in STEPS}
if tuple(BY_NAME) != STEP_NAMES:  # one list of names: rayflow.record.StepName
    raise RuntimeError(f"STEPS {tuple(BY_NAME)} differ from rayflow.record.StepName {STEP_NAMES}")


@dataclass(frozen=True)
class StepPlan:
    enabled: frozenset[str]
    notes: tuple[str, ...]
    """Plain-language explanations of steps added or dropped because of dependencies."""


def _closure(name: str) -> set[str]:
    out = {name}
    for need in BY_NAME[name].needs:
        out |= _closure(need)
    return out


def plan_steps(*, skip: tuple[str, ...] = (), only: tuple[str, ...] = ()) -> StepPlan:
    """Resolve ``skip``/``only`` into the set of steps that run, respecting dependencies.

    ``only`` runs the named steps plus what they need; ``skip`` drops steps and
    everything that needs them. Required steps cannot be skipped.
    """
    unknown = [n for n in (*skip, *only) if n not in BY_NAME]
    if unknown:
        raise ValueError(f"unknown step {unknown[0]!r}; known steps: {', '.join(BY_NAME)}")
    notes: list[str] = []
    for name in skip:
        if BY_NAME[name].required:
            raise ValueError(f"step {name!r} is required and cannot be skipped")
    if only:
        enabled: set[str] = {s.name for s in STEPS if s.required}
        for name in only:
            extra = _closure(name) - set(only) - enabled
            if extra:
                notes.append(f"{name} needs {', '.join(sorted(extra))}: enabled too")
            enabled |= _closure(name)
    else:
        enabled = {s.name for s in STEPS if s.default}
    for name in skip:
        enabled.discard(name)
    changed = True
    while changed:
        changed = False
        for step in STEPS:
            if step.name in enabled and not set(step.needs) <= enabled:
                missing = sorted(set(step.needs) - enabled)
                notes.append(f"{step.name} needs {', '.join(missing)}, which is skipped: skipped too")
                enabled.discard(step.name)
                changed = True
    return StepPlan(frozenset(enabled), tuple(notes))
