"""Optional clip captions from a captioning VLM (a transformers image-text-to-text model), offline.

Nothing ships for this role: set ``Settings.analysis.caption_model`` (env
``RAYFLOW_CAPTION_MODEL``, read by ``rayflow.config``) to a folder written by
``save_pretrained`` (model + processor), or to a name under ``<models dir>/captioning/``
(resolved by :func:`rayflow.ml.text_encoder.locate`). Unset (the default) = no
captioning, and ``Analysis.caption`` stays None. Nothing is downloaded, ever.

Two kinds of model work:

- captioning models (BLIP, GIT): captioned unconditionally from the image alone,
  or continuing ``prompt`` (e.g. ``"a picture of"``) when one is set;
- chat VLMs whose processor has a chat template (LLaVA, Qwen-VL, SmolVLM, ...): asked
  ``prompt`` (default :data:`DEFAULT_INSTRUCTION`) about each image.

Example (what an analyser actor does, once per actor)::

    cap = Captioner("models/captioning/blip-base")   # or Captioner(settings.analysis.caption_model)
    cap.setup("cuda")                                # loads processor + model once
    cap.caption(frames.images)                       # 'A man walking down a street'
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rayflow.ml.text_encoder import ModelNotFound, locate, model_id_for

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_INSTRUCTION", "Captioner", "ModelNotFound"]

ROLE = "captioning"
DEFAULT_INSTRUCTION = "Describe this image in one short sentence."
"""What a chat VLM is asked when ``Captioner.prompt`` is None."""

_WHITESPACE = re.compile(r"\s+")


def representative_indices(count: int, frames: int) -> list[int]:
    """Up to ``frames`` indices spread evenly over ``count`` frames, each at the centre of its
    share (1 -> the middle frame; 3 of 10 -> 1, 5, 8)."""
    take = max(1, min(frames, count))
    return sorted({int((i + 0.5) * count / take) for i in range(take)}) if count else []


def _load_model(path: Path, dtype: Any) -> Any:
    """AutoModelForImageTextToText, else the older Vision2Seq auto class, else the class the
    folder's ``config.json`` names (e.g. ``BlipForConditionalGeneration``)."""
    import transformers
    from transformers import AutoConfig, AutoModelForImageTextToText

    kwargs = {"local_files_only": True, "dtype": dtype}
    try:
        return AutoModelForImageTextToText.from_pretrained(str(path), **kwargs)
    except ValueError as exc:  # "Unrecognized configuration class" for this auto class
        first = exc
    config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    for name in ("AutoModelForVision2Seq", *(config.architectures or [])):
        cls = getattr(transformers, name, None)
        if cls is None:
            continue
        try:
            return cls.from_pretrained(str(path), **kwargs)
        except ValueError:
            continue
    raise ValueError(
        f"{path} holds a {config.model_type!r} model that no image-to-text class of transformers "
        f"{transformers.__version__} loads (architectures: {config.architectures})"
    ) from first


def _to_pil(image: Any) -> Any:
    from PIL import Image

    if isinstance(image, Image.Image):
        return image.convert("RGB")
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 frame (H, W, 3), got {array.dtype} {array.shape}")
    return Image.fromarray(np.ascontiguousarray(array))


@dataclass
class Captioner:
    """A warm captioning model; ``setup()`` once, ``caption()`` many times.

    ``frames`` representative frames are captioned in one batch: 1 (the middle frame,
    the default) is cheapest; 3 describe a clip that changes, at about 3x the cost.
    Generation is greedy, so the same frames give the same caption."""

    model: str
    """A folder, or a name under ``<models dir>/captioning/`` (see ``text_encoder.locate``)."""
    frames: int = 1
    """How many frames of a clip to caption (spread evenly, the middle one first in line)."""
    prompt: str | None = None
    """Chat VLMs: the instruction (None = :data:`DEFAULT_INSTRUCTION`). Captioning models:
    a caption prefix to continue (None = unconditional); the prefix is removed from the result."""
    dirs: tuple[Path, ...] | None = None
    """Folders searched for a named model (``Settings.model_dirs()``); None = the default folders."""
    _model: Any = field(default=None, init=False, repr=False)
    _processor: Any = field(default=None, init=False, repr=False)
    _chat: bool = field(default=False, init=False, repr=False)
    device: str | None = field(default=None, init=False)

    @property
    def model_id(self) -> str:
        """The name stored with a caption: the folder's name."""
        return model_id_for(self.model)

    @property
    def ready(self) -> bool:
        return self._model is not None

    def setup(self, device: str | None = None) -> None:
        """Load processor + model once (idempotent). ``device``: ``cpu``, ``cuda``, ``cuda:N``; None = cpu.

        On a GPU the weights load in bfloat16 (float16 where bf16 is unsupported), on the
        CPU in float32. Raises :class:`ModelNotFound` when the folder is missing or holds
        no ``config.json``; hub access is off for this process, so nothing is fetched."""
        if self._model is not None:
            return
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        path = locate(self.model, role=ROLE, dirs=self.dirs)
        if not (path / "config.json").is_file():
            raise ModelNotFound(
                f"captioning model {self.model!r}: {path} has no config.json; save the model and its "
                "processor there with save_pretrained (nothing is downloaded at run time)"
            )
        import torch
        from transformers import AutoProcessor

        self.device = device or "cpu"
        if self.device.startswith("cuda"):
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            dtype = torch.float32
        processor = AutoProcessor.from_pretrained(str(path), local_files_only=True)
        model = _load_model(path, dtype).to(self.device).eval()
        self._chat = getattr(processor, "chat_template", None) is not None
        tokenizer = getattr(processor, "tokenizer", None)
        if self._chat and tokenizer is not None:
            tokenizer.padding_side = "left"  # decoder-only models continue the prompt's last token
        self._processor, self._model = processor, model
        log.info("captioner %s (%s, %s) loaded from %s on %s", self.model_id, type(model).__name__,
                 "chat" if self._chat else "captioning", path, self.device)

    def _inputs(self, images: list[Any]) -> Any:
        if self._chat:
            messages = [{"role": "user", "content": [
                {"type": "image"}, {"type": "text", "text": self.prompt or DEFAULT_INSTRUCTION}]}]
            text = self._processor.apply_chat_template(messages, add_generation_prompt=True)
            return self._processor(images=images, text=[text] * len(images), return_tensors="pt", padding=True)
        if self.prompt:
            return self._processor(images=images, text=[self.prompt] * len(images), return_tensors="pt")
        return self._processor(images=images, return_tensors="pt")

    def _move(self, value: Any) -> Any:
        """A tensor to the model's device; floating ones (pixels) also to its dtype."""
        if not hasattr(value, "is_floating_point"):
            return value
        return value.to(self.device, self._model.dtype) if value.is_floating_point() else value.to(self.device)

    def _clean(self, text: str) -> str:
        text = _WHITESPACE.sub(" ", text).strip()
        if not self._chat and self.prompt and text.lower().startswith(self.prompt.lower()):
            text = text[len(self.prompt):].strip()
        text = text.strip(" \"'")
        return text[:1].upper() + text[1:]

    def caption(self, images: Sequence[Any] | np.ndarray, *, max_new_tokens: int = 30) -> str:
        """One caption for a clip from its frames (RGB uint8 ``(H, W, 3)`` arrays, an
        ``(N, H, W, 3)`` array, or PIL images), at most ``max_new_tokens`` tokens per frame.

        The ``frames`` representative frames are captioned in one batch; their distinct
        captions are joined with ``"; "`` in time order. Returns ``""`` when the model wrote
        nothing (store None then, not an empty caption). Raises ValueError on no frames."""
        import torch

        if self._model is None:
            raise RuntimeError("Captioner.setup() must be called before caption()")
        if len(images) == 0:
            raise ValueError("caption() needs at least one frame")
        picked = [_to_pil(images[i]) for i in representative_indices(len(images), self.frames)]
        inputs = {key: self._move(value) for key, value in self._inputs(picked).items()}
        with torch.inference_mode():
            out = self._model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1)
        prompt_ids = inputs.get("input_ids")
        if prompt_ids is not None and out.shape[1] >= prompt_ids.shape[1] \
                and torch.equal(out[:, :prompt_ids.shape[1]], prompt_ids):
            out = out[:, prompt_ids.shape[1]:]  # decoder-only models echo the prompt
        captions: list[str] = []
        for text in self._processor.batch_decode(out, skip_special_tokens=True):
            cleaned = self._clean(text)
            if cleaned and cleaned not in captions:
                captions.append(cleaned)
        return "; ".join(captions)

    def describe(self) -> dict[str, Any]:
        """One row for a models list (``rayflow doctor`` / ``models``)."""
        try:
            path: str | None = str(locate(self.model, role=ROLE, dirs=self.dirs))
        except ModelNotFound:
            path = None
        return {"role": ROLE, "model": self.model_id, "dim": None, "path": path, "source": "local folder",
                "found": path is not None, "loaded": self._model is not None, "device": self.device}

    def __repr__(self) -> str:
        return f"Captioner(model={self.model_id!r}, frames={self.frames}, device={self.device!r})"
