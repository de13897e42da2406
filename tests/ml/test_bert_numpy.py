"""The NumPy query encoder computes what the torch sentence-transformers encoder computes."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from rayflow.ml.bert_numpy import NumpyBertEncoder, supported
from rayflow.ml.text_encoder import TextEncoder, locate, query_encoder

TEXTS = ["ferry leaving the harbour", "my fellow Americans", "", "HDR10 4K GoPro HERO12 60 fps",
         "the votes will be counted tonight in the city hall, " * 30]  # the last one is truncated at 256 pieces


def test_parity_with_the_torch_encoder() -> None:
    fast = query_encoder()
    assert isinstance(fast, NumpyBertEncoder) and fast.model_id == "all-MiniLM-L6-v2"
    fast.setup()
    reference = TextEncoder()
    reference.setup("cpu")
    # more texts than one batch, long and short interleaved: batched by length, returned in order
    texts = [text for i, long in enumerate(TEXTS * 3) for text in (long, f"shot {i} of the quay at dawn")]
    a, b = fast.encode(texts), reference.encode(texts)
    assert a.shape == b.shape == (len(texts), 384) and a.dtype == np.float32
    cosines = (a * b).sum(axis=1)
    assert cosines.min() > 0.999, cosines
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)


def test_other_model_shapes_fall_back_to_torch(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert supported(locate("all-MiniLM-L6-v2"))
    assert not supported(tmp_path)  # no config, no weights: not this module's job
    with pytest.raises(RuntimeError, match="setup"):
        NumpyBertEncoder(folder=tmp_path, model_id="x").encode(["a"])


def test_loads_without_torch_and_fast() -> None:
    code = ("import sys, time; t = time.process_time(); from rayflow.ml.text_encoder import query_encoder; "
            "e = query_encoder(); e.setup(); e.encode(['ferry leaving the harbour']); "
            "print(time.process_time() - t, 'torch' in sys.modules)")
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    cpu_s, torch_loaded = out.stdout.split()
    assert torch_loaded == "False"
    assert float(cpu_s) < 1.0, (cpu_s, time.perf_counter() - t0)  # CPU time: wall time depends on the box's load


def test_ingest_on_a_cpu_embeds_with_numpy_without_importing_torch() -> None:
    code = ("import sys; from rayflow.config import EmbedSettings; from rayflow.stages.embed import EmbedStage; "
            "s = EmbedStage(EmbedSettings()); s.setup('cpu'); print(type(s.encoder).__name__, "
            "s.encoder.model_id, s.observed().device, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["NumpyBertEncoder", "all-MiniLM-L6-v2", "cpu", "False"]
