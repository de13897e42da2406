"""Device choice for the models, and where local model folders live. One place for both,
so every actor, command and loader agrees."""

from __future__ import annotations

from rayflow.config import REPO_MODELS_DIR

__all__ = ["REPO_MODELS_DIR", "cuda_visible", "torch_device"]


def cuda_visible() -> bool:
    """True when torch sees a CUDA device (imports torch: ~1 s the first time)."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def torch_device() -> str:
    """``cuda`` when torch sees a GPU, else ``cpu``; chosen inside the process that runs the model."""
    return "cuda" if cuda_visible() else "cpu"
