"""A VLM caption of the clip (``Analysis.caption``), when a captioning model is configured.

Nothing ships for this role offline: ``Settings.analysis.caption_model`` (or
``RAYFLOW_CAPTION_MODEL``) names a transformers folder; the analyze table leaves the
role out when it is unset. The model lives in ``rayflow.ml.captioner``.

Example::

    stage = CaptionStage("models/captioning/blip-base")
    stage.setup("cpu")
    stage.process(clip_input)      # 'a man walking down a street'
"""

from __future__ import annotations

from pathlib import Path

from rayflow.ml.captioner import Captioner
from rayflow.record import RoleRun, StageName
from rayflow.stages.base import ClipInput, Device, Resources, Stage


class CaptionStage(Stage[ClipInput, str | None]):
    """One caption from a few of the clip's sampled frames; None without frames or text."""

    name: StageName = "caption"
    resources = Resources(cpus=1, gpus=0.25)

    def __init__(self, model: str, *, dirs: tuple[Path, ...] | None = None) -> None:
        self.captioner = Captioner(model, dirs=dirs)
        self.requested: Device = "cpu"

    def setup(self, device: Device) -> None:
        self.requested = device
        self.captioner.setup(device)

    def observed(self) -> RoleRun:
        return RoleRun(device=str(self.captioner.device or "cpu"), model=self.captioner.model_id)

    def process(self, item: ClipInput) -> str | None:
        if item.frames is None or not item.frames.count:
            return None
        return self.captioner.caption(item.frames.images) or None

    def teardown(self) -> None:
        self.captioner = Captioner(self.captioner.model, dirs=self.captioner.dirs)  # drops the weights


__all__ = ["CaptionStage"]
