"""The embed stage: every text (and, optionally, frame) of a record -> vectors, batched.

All texts of all records given are encoded in ONE ``encoder.encode`` call, so an
EmbedderPool actor that receives 32 finished records fills its GPU batches across
files instead of running 32 tiny batches. The moment vectors line up with
``catalog.moments.build_moments(record)`` (pure and deterministic), which is how the
catalog pairs them again at upsert.

Example::

    enc = TextEncoder(); enc.setup("cpu")
    vectors = embed_records(records, enc)     # list[ClipVectors], same order as records
    catalog.upsert(records, vectors)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rayflow.catalog.moments import build_moments, clip_texts
from rayflow.catalog.vectors import ClipVectors, Encoder, ImageEncoder
from rayflow.config import EmbedSettings
from rayflow.record import ClipRecord, RoleRun, StageName
from rayflow.stages.base import Device, Resources, Stage

log = logging.getLogger(__name__)


def _normalise(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return (vector / norm).astype(np.float32) if norm > 0 else vector.astype(np.float32)


def _primary_frame(record: ClipRecord) -> str | None:
    ranked = record.analysis.best_thumbnails if record.analysis else []
    for thumb in ranked:
        if thumb.primary:
            return thumb.path
    if ranked:
        return max(ranked, key=lambda t: t.score).path
    return record.thumbnails[0].path if record.thumbnails else None


def embed_records(records: Sequence[ClipRecord], encoder: Encoder,
                  image_encoder: ImageEncoder | None = None) -> list[ClipVectors]:
    """Embed many records with one text batch (and one image batch when an image model is given).

    Per record: summary, technical, transcript chunks, moment texts. A record whose
    summary would be empty still gets one (its file name always contributes)."""
    texts: list[str] = []
    layout: list[tuple[int, int, int]] = []  # (first text, transcript chunks, moments) per record
    moment_lists = []
    for record in records:
        ct = clip_texts(record)
        moments = build_moments(record)
        moment_lists.append(moments)
        start = len(texts)
        texts.append(ct.summary or record.file.name)
        texts.append(ct.technical or record.file.name)
        texts.extend(ct.transcript_chunks)
        texts.extend(m.text for m in moments)
        layout.append((start, len(ct.transcript_chunks), len(moments)))
    matrix = encoder.encode(texts) if texts else np.zeros((0, encoder.dim), dtype=np.float32)
    dim = int(matrix.shape[1]) if matrix.size else encoder.dim
    log.debug("embedded %d texts for %d records", len(texts), len(records))

    out: list[ClipVectors] = []
    for record, (start, n_chunks, n_moments) in zip(records, layout, strict=True):
        chunk_vectors = matrix[start + 2:start + 2 + n_chunks]
        out.append(ClipVectors(
            clip_id=record.clip_id, model_id=encoder.model_id, dim=dim,
            summary=matrix[start], technical=matrix[start + 1],
            transcript=_normalise(chunk_vectors.mean(axis=0)) if n_chunks else None,
            moments=matrix[start + 2 + n_chunks:start + 2 + n_chunks + n_moments],
        ))

    if image_encoder is not None:
        paths: list[str] = []
        slots: list[tuple[int, int]] = []  # (record index, moment index or -1 for the clip)
        for i, (record, moments) in enumerate(zip(records, moment_lists, strict=True)):
            primary = _primary_frame(record)
            if primary:
                paths.append(primary)
                slots.append((i, -1))
            for m in moments:
                if m.thumbnail_path:
                    paths.append(m.thumbnail_path)
                    slots.append((i, m.index))
        images = image_encoder.encode_images(paths) if paths else []
        for i, vectors in enumerate(out):
            vectors.image_model_id = image_encoder.model_id
            vectors.moment_images = [None] * len(moment_lists[i])
        for (i, moment_index), vector in zip(slots, images, strict=True):
            if moment_index < 0:
                out[i].image = vector
            else:
                out[i].moment_images[moment_index] = vector
    return out


def embed_record(record: ClipRecord, encoder: Encoder,
                 image_encoder: ImageEncoder | None = None) -> ClipVectors:
    """All vectors of one record, from one batched ``encode`` call."""
    return embed_records([record], encoder, image_encoder)[0]


class EmbedStage(Stage[Sequence[ClipRecord], list[ClipVectors]]):
    """The embedder as a stage: the text encoder (and the image-text one when configured)
    loaded once, records embedded in batches. ``resources``: a quarter of a GPU where the
    cluster has GPUs (the engine asks Ray for it, so the share is counted beside the
    analyzers'); it is mostly idle between batches, so it reserves no CPU."""

    name: StageName = "embed"
    resources = Resources(cpus=0, gpus=0.25)

    def __init__(self, settings: EmbedSettings, *, model_dirs: tuple[Path, ...] | None = None) -> None:
        from rayflow.ml.text_encoder import ImageTextEncoder, TextEncoder

        self.settings, self.model_dirs = settings, model_dirs
        self.encoder: Any = TextEncoder(model_path=settings.text_model, dirs=model_dirs)  # or its NumPy twin
        # Image vectors only when a CLIP/SigLIP folder is configured (none ships offline).
        self.image_encoder = (ImageTextEncoder(settings.image_model, dirs=model_dirs)
                              if settings.image_model else None)

    def setup(self, device: Device) -> None:
        """Load the models on ``device``. On a CPU the text model runs as NumPy where it
        computes the same vectors (the packaged MiniLM does; see ``query_encoder``): the same
        CPU time per text as torch, without importing torch or sentence-transformers (~4.7 s
        of CPU and ~0.5 GB less for the embedder's process)."""
        if not str(device).startswith("cuda"):
            from rayflow.ml.text_encoder import query_encoder

            self.encoder = query_encoder(self.settings.text_model, dirs=self.model_dirs)
        self.encoder.setup(device=device)
        if self.image_encoder is not None:
            self.image_encoder.setup(device=device)

    def observed(self) -> RoleRun:
        return RoleRun(device=str(self.encoder.device or "cpu"), model=self.encoder.model_id)

    def process(self, item: Sequence[ClipRecord]) -> list[ClipVectors]:
        return embed_records(item, self.encoder, self.image_encoder)
