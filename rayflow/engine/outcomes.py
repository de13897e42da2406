"""What the coarse tasks hand back to the scheduler: plain dataclasses, no Ray.

Errors are values here: a stage that failed on a file says so in ``error`` /
``errors``; only a transient failure (a timeout under load, a lost worker) raises
``TransientError`` so that Prefect's ``retries`` apply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rayflow.record import ExposureInfo, ProxyInfo, SampleInfo, StageName, StagePlacement, Thumbnail
from rayflow.stages.fingerprint import Fingerprint


class TransientError(RuntimeError):
    """A failure that may not repeat (timeout under load); Prefect retries these."""


def describe(exc: BaseException) -> str:
    """An exception as one short line for a record's ``errors`` (at most 500 characters)."""
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) < 500 else text[:497] + "..."


@dataclass
class FingerprintOutcome:
    path: str
    fingerprint: Fingerprint | None
    error: str | None
    seconds: float


@dataclass
class ProbeOutcome:
    result: Any | None  # rayflow.stages.probe.ProbeResult
    error: str | None
    seconds: float


@dataclass
class SampleOutcome:
    sample: SampleInfo | None = None
    thumbnails: list[Thumbnail] = field(default_factory=list)
    exposure: ExposureInfo | None = None
    frames_ref: Any | None = None
    """ObjectRef of the decoded frames for later stages (analysis); not stored."""
    errors: dict[StageName, str] = field(default_factory=dict)
    skipped: str | None = None
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class InspectOutcome:
    probe: ProbeOutcome | None
    sample: SampleOutcome | None
    transient: str | None = None
    """Set when this file hit a transient error inside a multi-file batch (re-run alone)."""
    node: StagePlacement | None = None
    """The Ray node that ran it."""


@dataclass
class ProxyOutcome:
    proxy: ProxyInfo | None
    error: str | None
    node: StagePlacement | None = None


def ray_ref(future: Any) -> Any:
    """The Ray ObjectRef behind a prefect-ray future (``PrefectRayFuture.wrapped_future``;
    Prefect's own ``PrefectFuture`` type, what ``task.submit`` is typed to return, has none)."""
    return future.wrapped_future
