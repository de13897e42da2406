"""How well each sampled frame matches a "good thumbnail" prompt, when an image-text
model (CLIP/SigLIP folder: ``Settings.embed.image_model``) is configured. The best
thumbnails role adds these scores to its ranking (``rayflow.stages.select``).

Example::

    stage = ThumbnailPromptStage("models/image_text/clip-vit-b32")
    stage.setup("cpu")
    stage.process(clip_input)      # array([0.31, 1.0, 0.0, ...]): 0..1 per frame
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rayflow.ml.text_encoder import ImageTextEncoder
from rayflow.record import RoleRun, StageName
from rayflow.stages.base import ClipInput, Device, Resources, Stage

THUMBNAIL_PROMPT = "a sharp, well-composed, beautiful photograph"


def prompt_match(encoder: Any, images: Any, prompt: str = THUMBNAIL_PROMPT) -> np.ndarray:
    """Per-frame similarity to ``prompt``, min-max scaled to 0..1 over the clip's frames
    (0.5 each when every frame scores the same)."""
    sims = encoder.encode_arrays(images) @ encoder.encode([prompt])[0]
    spread = float(sims.max() - sims.min()) if len(sims) else 0.0
    return (sims - sims.min()) / spread if spread > 1e-9 else np.full(len(sims), 0.5)


class ThumbnailPromptStage(Stage[ClipInput, Any]):
    """Per-frame prompt scores (numpy, 0..1); None without frames."""

    name: StageName = "thumbnail_prompt"
    resources = Resources(cpus=1, gpus=0.25)

    def __init__(self, model: str, prompt: str = THUMBNAIL_PROMPT, *, dirs: tuple[Path, ...] | None = None) -> None:
        self.encoder = ImageTextEncoder(model, dirs=dirs)
        self.prompt = prompt

    def setup(self, device: Device) -> None:
        self.encoder.setup(device=device)

    def observed(self) -> RoleRun:
        return RoleRun(device=str(self.encoder.device or "cpu"), model=f"{self.encoder.model_id} prompt score")

    def process(self, item: ClipInput) -> Any:
        if item.frames is None or not item.frames.count:
            return None
        return prompt_match(self.encoder, item.frames.images, self.prompt)


__all__ = ["THUMBNAIL_PROMPT", "ThumbnailPromptStage", "prompt_match"]
