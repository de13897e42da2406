"""The analyze step: one stage composing the analysis roles from a TABLE (``ROLES``).

Each role is a stage of its own (``rayflow.stages.base``); the table says, per role,
when it is on (from ``Settings``), how it is built, whether it needs pictures, and
where its output goes. Adding a role is one entry. Roles run in table order, so a
role reads what the roles before it found (``ClipInput.analysis``); with
``AnalysisSettings.overlap`` (by default on a GPU) they run side by side instead, each
once the roles it names in ``Role.after`` are done.

Per clip, a role that fails is recorded in ``errors[role]`` and the others still
run; a role whose model could not load is reported as unavailable on every clip,
never replaced by a made-up result; a role that needs frames is skipped (no error)
for a file without pictures (an audio-only file, sent here for speech). Each model
call has a deadline (``rayflow.ml.deadline``): past it the role is recorded as timed
out and ``stuck`` tells the host to restart this process.

A role set up for the GPU that fails there is set up again on the CPU; each role's
observed device, model and fallback go into ``Analysis.roles``.

Example (no Ray; the AnalyzerPool hosts the same stage in each actor)::

    stage = AnalyzeStage(settings)
    stage.setup("cpu")
    result = stage.process(ClipInput.from_record(path, frames, record, out_dir=..., timeout_s=900))
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rayflow.config import Settings
from rayflow.ml.deadline import ModelTimeout, call_with_deadline
from rayflow.ml.device import torch_device
from rayflow.record import ROLE_NAMES, Analysis, RoleName, RoleRun, StageName
from rayflow.stages.base import ClipInput, Device, Resources, Stage
from rayflow.stages.caption import CaptionStage
from rayflow.stages.describe import DescribeStage
from rayflow.stages.faces import FaceSettings, FaceStage
from rayflow.stages.focal import FocalStage
from rayflow.stages.screen_text import ScreenTextStage
from rayflow.stages.select import ThumbnailSelector
from rayflow.stages.shots import ShotSettings, ShotStage
from rayflow.stages.speech import SpeechStage
from rayflow.stages.thumbnail_prompt import ThumbnailPromptStage

log = logging.getLogger(__name__)


@dataclass
class AnalyzeResult:
    """What the analyze stage returns for one clip."""

    analysis: Analysis
    errors: dict[StageName, str] = field(default_factory=dict)
    timings: dict[StageName, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Role:
    """One row of the analyze table."""

    name: RoleName
    kind: type[Stage[ClipInput, Any]]
    """The stage class (its ``resources`` are read without building it)."""
    enabled: Callable[[Settings], bool]
    build: Callable[[Settings], Stage[ClipInput, Any]]
    needs_frames: bool
    """Skipped (not failed) for a file without pictures."""
    keep: Callable[[ClipInput, Any], None]
    """Puts the role's output where the record and the later roles read it."""
    applies: Callable[[ClipInput], bool] = lambda item: True
    """False for a file the role has nothing to look at (no audio for speech, a still for shots):
    the role is skipped, so the record does not list it among the roles that ran."""
    after: tuple[RoleName, ...] = ()
    """The roles whose output this one reads: with roles overlapped it starts once they are
    done (or skipped); the others run side by side."""


def _set(attribute: str, empty: Any = None) -> Callable[[ClipInput, Any], None]:
    def keep(item: ClipInput, output: Any) -> None:
        setattr(item.analysis, attribute, empty if output is None and empty is not None else output)
    return keep


def _keep_prompt(item: ClipInput, output: Any) -> None:
    item.prompt_scores = output


def _keep_description(item: ClipInput, output: tuple[str, list[str]] | None) -> None:
    if output is not None:
        item.analysis.description, item.analysis.tags = output


ROLES: tuple[Role, ...] = (
    Role("shots", ShotStage, lambda s: s.analysis.shots,
         lambda s: ShotStage(ShotSettings(detector=s.analysis.shot_detector, threads=s.analysis.threads)),
         needs_frames=True, keep=_set("shots"), applies=lambda item: not item.still),
    Role("speech", SpeechStage, lambda s: s.analysis.speech,
         lambda s: SpeechStage(s.analysis.speech_model, threads=s.analysis.threads),
         needs_frames=False, keep=_set("speech"), applies=lambda item: item.audio_track is not None),
    Role("screen_text", ScreenTextStage, lambda s: s.analysis.screen_text,
         lambda s: ScreenTextStage(threads=s.analysis.threads), needs_frames=True, keep=_set("screen_text", [])),
    Role("faces", FaceStage, lambda s: s.analysis.faces, lambda s: FaceStage(FaceSettings(threads=s.analysis.threads)),
         needs_frames=True, keep=_set("faces")),
    Role("focal", FocalStage, lambda s: True, lambda s: FocalStage(), needs_frames=True, keep=_set("focal")),
    Role("thumbnail_prompt", ThumbnailPromptStage,  # optional: no image-text model ships offline
         lambda s: s.analysis.thumbnails and s.embed.image_model is not None,
         lambda s: ThumbnailPromptStage(str(s.embed.image_model), dirs=s.model_dirs()), needs_frames=True,
         keep=_keep_prompt),
    Role("best_thumbnails", ThumbnailSelector, lambda s: s.analysis.thumbnails, lambda s: ThumbnailSelector(),
         needs_frames=True, keep=_set("best_thumbnails", []), after=("shots", "faces", "thumbnail_prompt")),
    Role("caption", CaptionStage, lambda s: s.analysis.caption_model is not None,  # optional, as above
         lambda s: CaptionStage(str(s.analysis.caption_model), dirs=s.model_dirs()), needs_frames=True,
         keep=_set("caption")),
    Role("describe", DescribeStage, lambda s: True, lambda s: DescribeStage(), needs_frames=False,
         keep=_keep_description, after=("shots", "speech", "screen_text", "faces", "focal")),
)
if tuple(r.name for r in ROLES) != ROLE_NAMES:  # one list of names: rayflow.record.RoleName
    raise RuntimeError(f"ROLES {[r.name for r in ROLES]} differ from rayflow.record.RoleName {ROLE_NAMES}")
if any(dep not in ROLE_NAMES[:ROLE_NAMES.index(r.name)] for r in ROLES for dep in r.after):
    raise RuntimeError("a role's `after` must name roles earlier in ROLES")  # table order stays a valid order


def analyze_resources(settings: Settings, roles: Sequence[Role] = ROLES) -> Resources:
    """What one analyzer needs: it holds every enabled role's model and runs them in turn,
    so the largest CPU share of any role, and one whole GPU when any role can use one
    (``--gpus-per-worker`` overrides the share)."""
    chosen = [r.kind.resources for r in roles if r.enabled(settings)]
    gpu = any(r.gpus > 0 for r in chosen)
    return Resources(cpus=max((r.cpus for r in chosen), default=0.0), gpus=1.0 if gpu else 0.0,
                     gpu_memory_gb=sum(r.gpu_memory_gb for r in chosen))


class AnalyzeStage(Stage[ClipInput, AnalyzeResult]):
    """Every enabled role of the table, set up once per process and run per clip."""

    name: StageName = "analyze"

    def __init__(self, settings: Settings, roles: Sequence[Role] = ROLES) -> None:
        self.settings = settings
        self.table = tuple(roles)
        self.resources = analyze_resources(settings, self.table)
        self.loads = 0
        """How many times models were loaded (one per actor: the pool's tests count it)."""
        self.device = "cpu"
        """Where the roles were asked to run (the observed device is per role, in ``runs``)."""
        self.stages: dict[RoleName, Stage[ClipInput, Any]] = {}
        self.runs: dict[RoleName, RoleRun] = {}
        self.unavailable: dict[StageName, str] = {}
        self.stuck = False
        """A model call timed out and its thread is still running: the host must restart this
        process (the AnalyzerActor exits so Ray restarts it with fresh models)."""

    @staticmethod
    def resources_for(settings: Settings) -> Resources:
        """What an analyzer built from ``settings`` declares (read by the engine before it starts one)."""
        return analyze_resources(settings)

    @property
    def models(self) -> dict[str, str]:
        """Role -> model actually loaded (for the pool's stats and ``Analysis.models``)."""
        return {name: run.model for name, run in self.runs.items() if run.model}

    def setup(self, device: Device | None = None) -> None:
        """Build and set up every enabled role once (None = CUDA when torch sees it). A role
        that fails on CUDA is set up again on the CPU, and that is recorded."""
        if self.loads:
            return
        self.device = device or ("cuda" if torch_device() == "cuda" else "cpu")
        for role in self.table:
            if role.enabled(self.settings):
                self._setup_role(role)
        self.loads += 1

    def _setup_role(self, role: Role) -> None:
        started = time.perf_counter()
        fallback: str | None = None
        try:
            stage = role.build(self.settings)
            try:
                stage.setup(self.device)  # type: ignore[arg-type]
            except Exception as exc:
                if self.device != "cuda":
                    raise
                fallback = f"failed on CUDA ({type(exc).__name__}: {exc})"[:300]
                log.warning("analysis role %s %s; using the CPU", role.name, fallback)
                stage = role.build(self.settings)
                stage.setup("cpu")
        except Exception as exc:  # missing weights or a broken runtime: say so per clip
            self.unavailable[role.name] = f"model unavailable: {exc}"
            log.error("analysis role %s unavailable: %s", role.name, exc)
            return
        self.stages[role.name] = stage
        run = stage.observed()
        if fallback:
            run = run.model_copy(update={"fell_back": True, "reason": fallback})
        self.runs[role.name] = run
        log.info("loaded %s (%s) on %s in %.2f s%s", role.name, run.model, run.device,
                 time.perf_counter() - started, f" (fell back: {run.reason})" if run.fell_back else "")

    def process(self, item: ClipInput) -> AnalyzeResult:
        """Every role on one clip; failures recorded per role. With ``AnalysisSettings.overlap``
        (by default: on a GPU) the roles run side by side, each once the roles it reads
        (``Role.after``) are done; else one after another in table order."""
        if not self.loads:
            self.setup()
        result = AnalyzeResult(item.analysis)
        result.errors.update(self.unavailable)
        chosen = [role for role in self.table if role.name in self.stages and role.applies(item)
                  and not (role.needs_frames and item.frames is None)]
        overlap = self.settings.analysis.overlap
        if overlap is None:
            overlap = self.device.startswith("cuda")
        if overlap and len(chosen) > 1:
            self._overlapped(chosen, item, result)
        else:
            for role in chosen:
                role.keep(item, self._run(role.name, self.stages[role.name], item, result))
        ran = {name: run for name, run in self.runs.items() if name in result.timings}
        item.analysis.roles = ran
        item.analysis.models = {name: run.model for name, run in ran.items() if run.model}
        gpus = sorted({run.device for run in ran.values() if run.device.startswith("cuda")})
        item.analysis.device = gpus[0] if gpus else "cpu"
        return result

    def _overlapped(self, chosen: list[Role], item: ClipInput, result: AnalyzeResult) -> None:
        """Run ``chosen`` on threads, each once the chosen roles it reads have finished. The
        models are native code that lets go of the GIL (onnxruntime, CTranslate2, OpenCV,
        ffmpeg), so one role fills the cores another leaves idle (a 1-thread net, an ffmpeg
        extraction, Python glue between model calls)."""
        finished = {role.name: threading.Event() for role in chosen}

        def work(role: Role) -> None:
            try:
                for name in role.after:
                    if name in finished:
                        finished[name].wait()
                role.keep(item, self._run(role.name, self.stages[role.name], item, result))
            finally:
                finished[role.name].set()

        threads = [threading.Thread(target=work, args=(role,), name=f"role:{role.name}", daemon=True)
                   for role in chosen]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _run(self, name: RoleName, stage: Stage[ClipInput, Any], item: ClipInput, result: AnalyzeResult) -> Any:
        started = time.perf_counter()
        try:
            return call_with_deadline(lambda: stage.process(item), self.settings.timeouts.model_call_s, what=name)
        except ModelTimeout as exc:
            self.stuck = True
            result.errors[name] = str(exc)
            log.error("%s hung on %s: %s", name, item.path, exc)
        except Exception as exc:  # one model failing on one clip never stops the others
            result.errors[name] = f"{type(exc).__name__}: {exc}"[:500]
            log.warning("%s failed on %s: %s", name, item.path, exc)
        finally:
            result.timings[name] = time.perf_counter() - started
        return None

    def teardown(self) -> None:
        for stage in self.stages.values():
            stage.teardown()
        self.stages.clear()


__all__ = ["ROLES", "AnalyzeResult", "AnalyzeStage", "Role", "analyze_resources"]
