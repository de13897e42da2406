"""What the catalog stores and searches with: a clip's vectors (``ClipVectors``) and the
encoder shapes (``Encoder``, ``ImageEncoder``) the embed stage and search share. Here, below
both, so that neither catalog/ nor stages/ imports the other's internals."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


class Encoder(Protocol):
    """What the embed stage needs from a text encoder (``ml.text_encoder.TextEncoder``)."""

    @property
    def model_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def encode(self, texts: list[str]) -> np.ndarray: ...


class ImageEncoder(Encoder, Protocol):
    """An image–text encoder (``ml.text_encoder.ImageTextEncoder``)."""

    def encode_images(self, paths: list[str]) -> list[np.ndarray | None]: ...


@dataclass
class ClipVectors:
    """The vectors of one clip and its moments (float32, L2-normalised)."""

    clip_id: str
    model_id: str
    dim: int
    summary: np.ndarray
    technical: np.ndarray
    transcript: np.ndarray | None = None
    """Mean of the transcript chunks' vectors, re-normalised; None without speech."""
    moments: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    """``(n_moments, dim)`` in ``build_moments(record)`` order."""
    image_model_id: str | None = None
    image: np.ndarray | None = None
    """The clip's primary frame in the image–text space."""
    moment_images: list[np.ndarray | None] = field(default_factory=list)
    """One per moment (None where the moment has no readable frame); empty without an image model."""

    def __repr__(self) -> str:
        return (f"ClipVectors(clip_id={self.clip_id!r}, model_id={self.model_id!r}, dim={self.dim}, "
                f"moments={self.moments.shape}, transcript={self.transcript is not None}, "
                f"image={self.image is not None})")


__all__ = ["ClipVectors", "Encoder", "ImageEncoder"]
