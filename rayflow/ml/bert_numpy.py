"""A BERT sentence encoder in plain NumPy, for answering queries at once.

``rayflow search`` embeds one short query per call. Loading the same model through
sentence-transformers imports torch and transformers first (seconds, 10-20 s on a
loaded 2-core box); this reads the packaged weights (``model.safetensors``) and the
fast tokenizer (``tokenizer.json``, via ``tokenizers``) directly and runs the
forward pass in NumPy: no torch, no export step, no cache to keep fresh. It computes
exactly what the sentence-transformers pipeline of all-MiniLM-L6-v2 computes (BERT ->
mean pooling over the attention mask -> L2 normalisation); ``tests/ml`` checks
cosine > 0.999 against the torch encoder.

Only folders of that shape qualify (:func:`supported`): a ``BertModel`` with absolute
positions, mean pooling and a Normalize module. Anything else goes through
:class:`rayflow.ml.text_encoder.TextEncoder`. Float32 on CPU; for embedding many
texts at ingest the torch encoder (batched, GPU) is the right tool.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MAX_SEQ_LENGTH = 256
"""Word pieces read per text (sentence-transformers' ``max_seq_length`` for MiniLM)."""

BATCH_SIZE = 8
"""Texts per forward pass, grouped by length. On 60 texts of a real catalog (moments, chunks
of up to 256 word pieces) one padded batch took 6.9 s of CPU, batches of 8 1.6 s, of 32 3.0 s."""


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def supported(folder: Path) -> bool:
    """True when ``folder`` is a sentence-transformers BERT model this module computes exactly."""
    config = _read_json(folder / "config.json") or {}
    modules = _read_json(folder / "modules.json") or []
    pooling = _read_json(folder / "1_Pooling" / "config.json") or {}
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    return (config.get("model_type") == "bert" and config.get("hidden_act") == "gelu"
            and config.get("position_embedding_type", "absolute") == "absolute"
            and kinds == ["Transformer", "Pooling", "Normalize"]
            and pooling.get("pooling_mode_mean_tokens") is True
            and not any(v for k, v in pooling.items()
                        if k.startswith("pooling_mode_") and k != "pooling_mode_mean_tokens")
            and (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file())


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to ~1e-7 (Abramowitz & Stegun 7.1.26); NumPy has none and scipy is not needed for it."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


@dataclass
class NumpyBertEncoder:
    """all-MiniLM-L6-v2 (or any :func:`supported` folder) as NumPy: ``setup()`` once (~0.1-0.3 s),
    ``encode()`` many times. Same interface as ``TextEncoder`` for search."""

    folder: Path
    model_id: str
    _w: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False)
    _tokenizer: Any = field(default=None, init=False, repr=False)
    _config: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    device: str = field(default="cpu", init=False)

    @property
    def dim(self) -> int:
        return int(self._config.get("hidden_size", 384))

    @property
    def ready(self) -> bool:
        return self._tokenizer is not None

    def setup(self, device: str | None = None) -> None:
        """Read weights and tokenizer (idempotent). ``device`` is ignored: NumPy runs on the CPU."""
        if self._tokenizer is not None:
            return
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self._config = _read_json(self.folder / "config.json")
        raw = load_file(str(self.folder / "model.safetensors"))
        w = {k.removeprefix("bert."): v.astype(np.float32, copy=False) for k, v in raw.items()}
        # Dense weights as (in, out), contiguous, and the three attention projections as one
        # matrix: one GEMM instead of three, none on a transposed view.
        for i in range(int(self._config["num_hidden_layers"])):
            p = f"encoder.layer.{i}."
            names = [p + f"attention.self.{n}" for n in ("query", "key", "value")]
            w[p + "qkv.weight"] = np.ascontiguousarray(np.concatenate([w.pop(n + ".weight") for n in names]).T)
            w[p + "qkv.bias"] = np.concatenate([w.pop(n + ".bias") for n in names])
            for name in ("attention.output.dense", "intermediate.dense", "output.dense"):
                w[p + name + ".weight"] = np.ascontiguousarray(w[p + name + ".weight"].T)
        self._w = w
        st_config = _read_json(self.folder / "sentence_bert_config.json") or {}
        max_len = int(st_config.get("max_seq_length", MAX_SEQ_LENGTH))
        tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        tokenizer.enable_truncation(max_length=max_len)
        tokenizer.enable_padding(pad_id=int(self._config.get("pad_token_id", 0)))
        self._tokenizer = tokenizer

    def _layer(self, h: np.ndarray, mask_add: np.ndarray, i: int) -> np.ndarray:
        w, eps = self._w, float(self._config.get("layer_norm_eps", 1e-12))
        p = f"encoder.layer.{i}."
        heads = int(self._config["num_attention_heads"])
        n, t, d = h.shape
        hd = d // heads
        qkv = (h @ w[p + "qkv.weight"] + w[p + "qkv.bias"]).reshape(n, t, 3, heads, hd).transpose(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        scores = q @ k.transpose(0, 1, 3, 2) * np.float32(1.0 / math.sqrt(hd)) + mask_add
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        attn = scores / scores.sum(-1, keepdims=True)
        ctx = (attn @ v).transpose(0, 2, 1, 3).reshape(n, t, d)
        ctx = ctx @ w[p + "attention.output.dense.weight"] + w[p + "attention.output.dense.bias"]
        h = _layer_norm(ctx + h, w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"],
                        eps)
        mid = _gelu(h @ w[p + "intermediate.dense.weight"] + w[p + "intermediate.dense.bias"])
        out = mid @ w[p + "output.dense.weight"] + w[p + "output.dense.bias"]
        return _layer_norm(out + h, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps)

    def encode(self, texts: list[str]) -> np.ndarray:
        """float32 ``(len(texts), dim)``, L2-normalised, like ``TextEncoder.encode``."""
        if self._tokenizer is None:
            raise RuntimeError("NumpyBertEncoder.setup() must be called before encode()")
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        from threadpoolctl import threadpool_limits

        # One BLAS thread: a query is a few small matrices, and a BLAS thread pool spinning
        # on a busy box costs 10-20x the work itself (0.3 s of CPU instead of 0.02 s).
        with threadpool_limits(limits=1, user_api="blas"):
            return self._encode(texts)

    def _encode(self, texts: list[str]) -> np.ndarray:
        """Tokenise all texts once, then run them in batches of similar length (as
        sentence-transformers does): each batch is cut to its longest text, so a short
        moment text is not padded to the length of a transcript chunk."""
        batch = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in batch], dtype=np.int64)
        types = np.array([e.type_ids for e in batch], dtype=np.int64)
        mask = np.array([e.attention_mask for e in batch], dtype=np.float32)
        lengths = mask.sum(1).astype(np.int64)
        order = np.argsort(lengths, kind="stable")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), BATCH_SIZE):
            rows = order[start:start + BATCH_SIZE]
            width = max(1, int(lengths[rows].max()))  # padding is on the right: cut it
            out[rows] = self._forward(ids[rows, :width], types[rows, :width], mask[rows, :width])
        return out

    def _forward(self, ids: np.ndarray, types: np.ndarray, mask: np.ndarray) -> np.ndarray:
        w, eps = self._w, float(self._config.get("layer_norm_eps", 1e-12))
        positions = np.arange(ids.shape[1])
        h = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][positions]
             + w["embeddings.token_type_embeddings.weight"][types])
        h = _layer_norm(h, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
        mask_add = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :]
        for i in range(int(self._config["num_hidden_layers"])):
            h = self._layer(h, mask_add, i)
        pooled = (h * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
