"""The optional captioner, on random-weight miniatures written with save_pretrained:
a BLIP (captioning model) and a LLaVA (chat VLM, prompted through its chat template).

Nothing is downloaded: the models (32x32 images, 32-d, one layer each side), their
PIL image processors and word-level tokenizers are all built here from configs and
vocabularies written by hand. Random weights caption with arbitrary
words from that vocabulary, so the tests check that generation ran, not what it said.
"""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest

from rayflow.config import load_settings
from rayflow.ml.captioner import (
    Captioner,
    ModelNotFound,
    representative_indices,
)

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]
WORDS = ["a", "an", "the", "of", "on", "in", "with", "man", "woman", "dog", "cat", "car", "street", "sky", "tree",
         "water", "people", "standing", "walking", "red", "blue"]


def make_tiny_blip(folder: Path) -> Path:
    """A random-weight BlipForConditionalGeneration + BlipProcessor saved to ``folder`` (~1 s)."""
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessorPil,
        BlipProcessor,
    )

    vocab = {token: i for i, token in enumerate(SPECIAL + WORDS)}
    # transformers 5: BertTokenizer takes the vocabulary itself (`vocab=`); `vocab_file=` is ignored.
    tokenizer = BertTokenizer(vocab=vocab, model_max_length=32, bos_token="[DEC]")
    images = BlipImageProcessorPil(size={"height": 32, "width": 32})  # PIL backend: no torchvision
    config = BlipConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "max_position_embeddings": 64, "encoder_hidden_size": 32,
                     "bos_token_id": vocab["[DEC]"], "eos_token_id": vocab["[SEP]"], "sep_token_id": vocab["[SEP]"],
                     "pad_token_id": vocab["[PAD]"]},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )
    BlipForConditionalGeneration(config).save_pretrained(folder)
    BlipProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def make_tiny_llava(folder: Path) -> Path:
    """A random-weight LlavaForConditionalGeneration (CLIP vision, Llama text) + LlavaProcessor with
    a WordLevel tokenizer and a minimal chat template, saved to ``folder`` (~1 s)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        CLIPImageProcessorPil,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    prompt_words = ["user", "assistant", ":", "describe", "this", "image", "one", "short", "sentence", "."]
    vocab = {token: i for i, token in enumerate(["<pad>", "<unk>", "<s>", "</s>", "<image>", *WORDS, *prompt_words])}
    word_level = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    word_level.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=word_level, bos_token="<s>", eos_token="</s>",
                                        pad_token="<pad>", unk_token="<unk>",
                                        extra_special_tokens={"image_token": "<image>"})
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    template = ("{% for m in messages %}{{ m['role'] }} : {% for c in m['content'] %}"
                "{% if c['type'] == 'image' %}<image> {% else %}{{ c['text'] }} {% endif %}{% endfor %}{% endfor %}"
                "{% if add_generation_prompt %}assistant : {% endif %}")
    images = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    config = LlavaConfig(
        vision_config={"model_type": "clip_vision_model", "hidden_size": 32, "intermediate_size": 64,
                       "num_hidden_layers": 1, "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
        text_config={"model_type": "llama", "vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64,
                     "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2,
                     "max_position_embeddings": 128, "bos_token_id": vocab["<s>"], "eos_token_id": vocab["</s>"],
                     "pad_token_id": vocab["<pad>"]},
        image_token_id=vocab["<image>"], vision_feature_layer=-1, vision_feature_select_strategy="default",
    )
    LlavaForConditionalGeneration(config).save_pretrained(folder)
    LlavaProcessor(image_processor=images, tokenizer=tokenizer, chat_template=template, patch_size=8,
                   vision_feature_select_strategy="default", num_additional_image_tokens=1).save_pretrained(folder)
    return folder


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hub off, and any attempt to open a network connection fails the test."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")

    def refuse(self: socket.socket, address: object) -> None:
        raise AssertionError(f"network access attempted: {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture(scope="module")
def blip_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        return make_tiny_blip(tmp_path_factory.mktemp("captioning") / "tiny-blip")


def frames(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(count, 48, 64, 3), dtype=np.uint8)


def spy_generate(cap: Captioner, monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Record the keyword arguments of every ``generate()`` call of the captioner's model."""
    calls: list[dict] = []
    generate = cap._model.generate

    def spy(**kwargs: object) -> object:
        calls.append(kwargs)
        return generate(**kwargs)

    monkeypatch.setattr(cap._model, "generate", spy)
    return calls


def test_captions_frames_with_a_tiny_blip(blip_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cap = Captioner(str(blip_folder), frames=2)
    cap.setup("cpu")
    assert type(cap._model).__name__ == "BlipForConditionalGeneration"

    calls = spy_generate(cap, monkeypatch)
    text = cap.caption(list(frames(2)), max_new_tokens=5)

    assert isinstance(text, str)
    assert len(calls) == 1, "both frames go through one generate() call"
    assert calls[0]["pixel_values"].shape == (2, 3, 32, 32)
    assert calls[0]["max_new_tokens"] == 5
    for part in text.split("; "):
        words = part.lower().split()
        assert len(words) <= 5
        assert set(words) <= set(WORDS)
    # Greedy decoding: the same frames give the same caption.
    assert cap.caption(list(frames(2)), max_new_tokens=5) == text


def test_captions_with_a_chat_vlm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cap = Captioner(str(make_tiny_llava(tmp_path / "tiny-llava")), frames=2)
    cap.setup("cpu")
    assert cap._chat and type(cap._model).__name__ == "LlavaForConditionalGeneration"

    calls = spy_generate(cap, monkeypatch)
    text = cap.caption(frames(5), max_new_tokens=4)
    assert isinstance(text, str)
    assert len(calls) == 1 and calls[0]["pixel_values"].shape[0] == 2
    # The prompt ("user : <image> Describe this image ...") is longer than 4 words: only new tokens are kept.
    assert all(len(part.split()) <= 4 for part in text.split("; "))


def test_accepts_pil_images_and_one_frame(blip_folder: Path) -> None:
    from PIL import Image

    cap = Captioner(str(blip_folder))
    cap.setup("cpu")
    assert isinstance(cap.caption([Image.fromarray(frames(1)[0])], max_new_tokens=3), str)
    with pytest.raises(ValueError):
        cap.caption([])
    with pytest.raises(ValueError, match="RGB uint8"):
        cap.caption([np.zeros((8, 8), dtype=np.float32)])


def test_loads_once(blip_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import transformers

    loads: list[str] = []
    original = transformers.AutoModelForImageTextToText.from_pretrained.__func__

    def counting(cls: type, *args: object, **kwargs: object) -> object:
        loads.append(str(args[0]))
        assert kwargs.get("local_files_only") is True
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForImageTextToText, "from_pretrained", classmethod(counting))
    cap = Captioner(str(blip_folder))
    cap.setup("cpu")
    model = cap._model
    cap.setup("cpu")
    assert loads == [str(blip_folder)]
    assert cap._model is model and cap.ready


def test_resolves_a_name_under_the_models_dir(blip_folder: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "captioning").mkdir()
    (tmp_path / "captioning" / "tiny-blip").symlink_to(blip_folder)
    settings = load_settings(env={"RAYFLOW_MODELS_DIR": str(tmp_path)}, home=tmp_path / "home")
    cap = Captioner("tiny-blip", dirs=settings.model_dirs())
    assert cap.describe()["found"] is True
    cap.setup("cpu")
    assert cap.model_id == "tiny-blip"


def test_missing_folder_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAYFLOW_MODELS_DIR", str(tmp_path))
    cap = Captioner(str(tmp_path / "no-such-model"))
    assert cap.describe()["found"] is False
    with pytest.raises(ModelNotFound, match="captioning"):
        cap.setup("cpu")
    assert not cap.ready

    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFound, match="config.json"):
        Captioner(str(tmp_path / "empty")).setup("cpu")


def test_caption_before_setup_raises(blip_folder: Path) -> None:
    with pytest.raises(RuntimeError, match="setup"):
        Captioner(str(blip_folder)).caption(list(frames(1)))


def test_configured_from_env_by_the_settings(tmp_path: Path) -> None:
    assert load_settings(env={}, home=tmp_path).analysis.caption_model is None
    assert load_settings(env={"RAYFLOW_CAPTION_MODEL": ""}, home=tmp_path).analysis.caption_model is None
    configured = load_settings(env={"RAYFLOW_CAPTION_MODEL": "blip-base"}, home=tmp_path)
    assert configured.analysis.caption_model == "blip-base"


def test_representative_indices() -> None:
    assert representative_indices(9, 1) == [4]
    assert representative_indices(10, 3) == [1, 5, 8]
    assert representative_indices(2, 3) == [0, 1]
    assert representative_indices(0, 1) == []


def test_falls_back_to_the_architecture_class(blip_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder the image-text-to-text auto class does not map still loads through config.architectures."""
    import transformers

    def unrecognised(cls: type, *args: object, **kwargs: object) -> object:
        raise ValueError("Unrecognized configuration class for this kind of AutoModel")

    monkeypatch.setattr(transformers.AutoModelForImageTextToText, "from_pretrained", classmethod(unrecognised))
    cap = Captioner(str(blip_folder))
    cap.setup("cpu")
    assert type(cap._model).__name__ == "BlipForConditionalGeneration"
    assert isinstance(cap.caption(list(frames(1)), max_new_tokens=3), str)
