"""The one stage contract: every unit of work has a name, declared resources, and
``setup(device)`` / ``process(item)`` / ``teardown()``.

A stage never imports ray or prefect. The engine reads ``resources`` to place it:
as a plain Ray task when it holds nothing, or as a warm actor pool when its
``setup()`` loads a model (``rayflow.engine.pools``). Tests run the same stages
in-process with ``run_sequential`` (no Ray).

A stage reports what it OBSERVED, not what it was asked for: ``observed()`` gives
the device it actually runs on after any fallback, its model, and whether (and why)
it fell back from the GPU to the CPU. That goes into the record per role
(``Analysis.roles``), so a record never claims CUDA for work the CPU did.

Example::

    @dataclass
    class OcrStage(Stage[ClipInput, list[ScreenText]]):
        name: StageName = "screen_text"
        resources: Resources = Resources(cpus=1, gpus=0.25)
        def setup(self, device: Device) -> None: ...      # load models once
        def process(self, item: ClipInput) -> list[ScreenText]: ...
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from rayflow.media.decode import Frames
from rayflow.record import (
    Analysis,
    CameraInfo,
    ClipRecord,
    ExposureInfo,
    RoleRun,
    SampleInfo,
    StageName,
    Thumbnail,
    VideoInfo,
)

if TYPE_CHECKING:  # annotation only: the probe package imports this module
    from rayflow.stages.probe.run import ProbeResult

Device = Literal["cpu", "cuda"]
"""What a stage is set up for. ``cuda`` means "the GPU Ray gave this process"; the
stage may still end on the CPU (and says so in ``observed()``)."""

In = TypeVar("In")
Out = TypeVar("Out")


@dataclass(frozen=True)
class Resources:
    """What one instance of a stage needs; plain data the engine turns into Ray options.

    ``gpus`` may be a share of one GPU (0.25 = four instances per GPU). ``nvdec`` and
    ``nvenc`` are hardware decode/encode sessions (custom Ray resources on GPU nodes).
    ``gpu_memory_gb`` is what the model needs on the GPU, for planning (0 = unknown or none).
    """

    cpus: float = 1.0
    gpus: float = 0.0
    gpu_memory_gb: float = 0.0
    nvdec: int = 0
    nvenc: int = 0
    needs_gpu: bool = field(init=False, default=False)
    """True when any GPU share, GPU memory or hardware codec session is declared (derived)."""

    def __post_init__(self) -> None:
        for name in ("cpus", "gpus", "gpu_memory_gb", "nvdec", "nvenc"):
            if getattr(self, name) < 0:
                raise ValueError(f"Resources.{name} must be >= 0, got {getattr(self, name)}")
        if self.gpus > 1 and self.gpus != int(self.gpus):
            raise ValueError(f"Resources.gpus above 1 must be whole GPUs, got {self.gpus}")
        object.__setattr__(self, "needs_gpu",
                           self.gpus > 0 or self.gpu_memory_gb > 0 or self.nvdec > 0 or self.nvenc > 0)

    def plus(self, other: Resources) -> Resources:
        """What two stages hosted in ONE process need together: CPUs and GPU memory add up,
        the GPU share is the larger (they take turns on it), codec sessions add up."""
        return Resources(cpus=self.cpus + other.cpus, gpus=max(self.gpus, other.gpus),
                         gpu_memory_gb=self.gpu_memory_gb + other.gpu_memory_gb,
                         nvdec=self.nvdec + other.nvdec, nvenc=self.nvenc + other.nvenc)

    def then(self, other: Resources) -> Resources:
        """What two stages run ONE AFTER THE OTHER in one task need (probe, then sample, ...):
        the larger of each, since only one runs at a time; GPU memory adds up (a worker keeps
        what each stage's ``setup`` loaded)."""
        return Resources(cpus=max(self.cpus, other.cpus), gpus=max(self.gpus, other.gpus),
                         gpu_memory_gb=self.gpu_memory_gb + other.gpu_memory_gb,
                         nvdec=max(self.nvdec, other.nvdec), nvenc=max(self.nvenc, other.nvenc))


class Stage(Generic[In, Out]):
    """Base of every stage. Subclasses set ``name`` and ``resources`` (class attributes or
    dataclass fields) and override ``setup``/``process``; ``teardown`` frees what setup took."""

    name: StageName
    resources: Resources = Resources()

    def setup(self, device: Device) -> None:
        """Load models once per process, for ``device``. Stages that hold nothing keep this."""

    def process(self, item: In) -> Out:
        raise NotImplementedError(f"{type(self).__name__}.process")

    def teardown(self) -> None:
        """Release what ``setup`` took (models, GPU memory). Default: nothing to release."""

    def observed(self) -> RoleRun:
        """Device and model this stage actually runs with (after setup). Stages with a model
        override it; the default is a CPU stage without a model."""
        return RoleRun(device="cpu")


@dataclass
class ClipInput:
    """The one payload every analysis role reads: the file, its sampled frames, the facts
    the record already holds, and what the roles before this one found (``analysis``).

    ``frames`` is None for a file without pictures (an audio-only file sent for speech):
    roles that need frames are then skipped, not failed."""

    path: str
    """The file on this node (the actor maps shared paths before building the input)."""
    clip_id: str
    frames: Frames | None
    out_dir: Path
    """The clip's output folder (best thumbnails are written there)."""
    timeout_s: float
    """Bound on the external tools a role runs for this clip (ffmpeg decodes/extracts)."""
    video: VideoInfo | None = None
    duration_s: float | None = None
    audio_track: int | None = None
    """Stream index of the default audio track (else the first); None when there is no audio."""
    still: bool = False
    """A still image (one picture: no cuts, no motion)."""
    camera: CameraInfo = field(default_factory=CameraInfo)
    exposure: ExposureInfo | None = None
    analysis: Analysis = field(default_factory=Analysis)
    """Results of the roles run so far on this clip (the table is in dependency order)."""
    prompt_scores: Any = None
    """Per-frame 0..1 match to the "good thumbnail" prompt (numpy), when an image-text model ran."""

    @classmethod
    def from_record(cls, path: str, frames: Frames | None, record: ClipRecord | None, *, clip_id: str,
                    out_dir: Path, timeout_s: float) -> ClipInput:
        """The input for ``path`` from the facts its record holds so far (probe, exposure);
        without a record, only the file and its frames."""
        if record is None:
            return cls(path=path, clip_id=clip_id, frames=frames, out_dir=out_dir, timeout_s=timeout_s)
        video = record.video
        duration_s = (video.duration_s if video else None) or (
            record.container.duration_s if record.container else None)
        return cls(path=path, clip_id=clip_id, frames=frames, out_dir=out_dir, timeout_s=timeout_s,
                   video=video, duration_s=duration_s, audio_track=default_audio(record),
                   still=record.kind == "image", camera=record.camera, exposure=record.exposure)


@dataclass
class FileItem:
    """The payload the per-file stages pass along, in order: probe -> sample -> thumbnails,
    exposure. Each stage reads what the ones before it wrote and writes its own field (and
    returns it), so ``run_sequential`` chains them; the engine's inspect task does the same
    with one stage instance per worker (``rayflow.engine.tasks``)."""

    path: str
    """The file on this node."""
    clip_id: str
    out_dir: Path
    """The clip's output folder (thumbnails are written there)."""
    probe: ProbeResult | None = None
    """Written by ``ProbeStage``."""
    frames: Frames | None = None
    """Written by ``SampleStage``: the decoded frames (the engine puts them in the object store)."""
    sample: SampleInfo | None = None
    """Written by ``SampleStage``: what was decoded, for the record."""
    thumbnails: list[Thumbnail] = field(default_factory=list)
    """Written by ``ThumbnailStage``."""
    exposure: ExposureInfo | None = None
    """Written by ``ExposureStage``."""


def default_audio(record: ClipRecord) -> int | None:
    """Stream index of the default audio track, else the first; None without audio."""
    if not record.audio_tracks:
        return None
    for track in record.audio_tracks:
        if track.default:
            return track.index
    return record.audio_tracks[0].index


def run_sequential(stages: Iterable[Stage[Any, Any]], items: Iterable[Any], *,
                   device: Device = "cpu") -> list[list[Any]]:
    """Run ``stages`` in one process, no Ray: ``setup(device)`` each, then per item every
    stage's ``process`` in order, then ``teardown``. Returns each item's outputs, by stage.
    For tests and plain-Python use (a GPU machine without Ray)."""
    chosen = list(stages)
    for stage in chosen:
        stage.setup(device)
    try:
        return [[stage.process(item) for stage in chosen] for item in items]
    finally:
        for stage in chosen:
            stage.teardown()


__all__ = ["ClipInput", "Device", "FileItem", "Resources", "Stage", "default_audio", "run_sequential"]
