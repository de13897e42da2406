"""On-screen text reading with PP-OCRv4 through ``rapidocr-onnxruntime``.

The weights (PP-OCRv4 detection and recognition, PP-OCR mobile v2 angle
classifier, ONNX, about 15 MB, Apache-2.0) ship inside the PyPI package at
``rapidocr_onnxruntime/models/``; nothing is downloaded. The recognition model is
PaddleOCR's Chinese+English one: it reads Latin text well but often drops the
spaces in small Latin text ("Subtitlelinefor"), so callers should compare texts
without whitespace.

``OcrModel.read`` runs detection frame by frame (frames of one clip share a size,
but batching detection on a CPU gains nothing; a cheap low-resolution pass first
skips frames with no text at all, and is all that large text needs) and recognition only on the boxes
the detector found that can be lines of text (not taller than ``max_box_height``),
once over the crops of *all* frames, in batches. A frame nearly identical to the last one read
(slides, title cards, static shots) reuses that frame's result, and a line held in place with
the same pixels (a caption over moving pictures) reuses its reading.

Example::

    ocr = OcrModel(threads=2)
    ocr.setup()
    lines = ocr.read(frames.images)     # one list of TextLine per frame
    lines[0][0].text, lines[0][0].box   # 'RAYFLOW TEST 42', TextBox(x0=0.1, ...)
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rayflow.ml.boxes import iou
from rayflow.ml.speech import ModelLocation, ModelMissing
from rayflow.record import TextBox

log = logging.getLogger(__name__)

PACKAGE = "rapidocr-onnxruntime"
MODEL_NAME = "PP-OCRv4"
MODEL_FILES: tuple[str, ...] = (
    "ch_PP-OCRv4_det_infer.onnx",
    "ch_PP-OCRv4_rec_infer.onnx",
    "ch_ppocr_mobile_v2.0_cls_infer.onnx",
)
"""The files rapidocr-onnxruntime 1.4.x loads from its ``models/`` folder."""


@dataclass(frozen=True)
class TextLine:
    """One line of text read on one frame."""

    text: str
    confidence: float
    """Recognition score, 0..1."""
    box: TextBox
    """Axis-aligned bounds of the detected quadrilateral, normalised 0..1 of the frame."""


def locate_ocr_model() -> ModelLocation:
    """Where the PP-OCR weights are and whether all of them are there (imports nothing heavy)."""
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or spec.origin is None:
        return ModelLocation("screen_text", MODEL_NAME, None, f"pypi: {PACKAGE}", False,
                             f"install it with `pip install {PACKAGE} -c constraints.txt`")
    folder = Path(spec.origin).parent / "models"
    missing = [f for f in MODEL_FILES if not (folder / f).is_file()]
    if missing:
        return ModelLocation("screen_text", MODEL_NAME, folder, f"pypi: {PACKAGE}", False,
                             f"{folder} lacks {', '.join(missing)}; reinstall {PACKAGE} "
                             "(1.4.x, as pinned in constraints.txt)")
    size_mb = sum((folder / f).stat().st_size for f in MODEL_FILES) / 1e6
    return ModelLocation("screen_text", MODEL_NAME, folder, f"pypi: {PACKAGE}", True, f"{size_mb:.0f} MB")


def describe_model() -> ModelLocation:
    """Alias of ``locate_ocr_model`` under the name every role module offers."""
    return locate_ocr_model()


class OcrModel:
    """A warm RapidOCR engine: build it, ``setup()`` once, ``read()`` many times.

    Defaults and trade-offs:

    - ``threads=2``: onnxruntime intra-op threads per session (inter-op 1). Many
      actors on one box should each use few; onnxruntime would otherwise take
      every core.
    - ``det_min_side_px=512``: the detector's input is scaled so its short side is
      at least this (RapidOCR's default is 736). On 512x288 frames 512 still finds
      14 px subtitles, at ~60 % of the time of 736 and with fewer spurious boxes
      on busy backgrounds; raise it for tiny text.
    - ``max_side_px=1280``: larger images are shrunk first (boxes are normalised,
      so nothing downstream changes).
    - ``use_angle_cls=False``: frames come in display orientation, so the
      upside-down-text classifier is skipped.
    - ``rec_batch_size=16``: text crops recognised together (across frames).
    - ``gate_min_side_px=288``: each frame is first detected at this short side (no
      upscaling for the pipeline's 512x288 frames, ~1/3 of the cost of 512). A frame where
      that pass finds nothing is done (on 72 frames of shared media and generated captions
      this cut OCR CPU time from 34.4 s to 25.5 s with the same texts read); one whose boxes
      are all at least ``small_text_px`` high is read from that pass's boxes; only a frame
      with a smaller box is detected again at ``det_min_side_px``'s scale, in bands (see
      ``band_margin``). None disables the gate.
    - ``small_text_px=20``: the detector's box (about twice the letters' height) below which
      text is read from the enlarged frame. Lines of 6-10 px letters (a 1080p subtitle at
      288p) read at 288 came out garbled on a busy background ("Keet me st the") and right
      at 512; from ~12 px letters (boxes of 22 px) on, 288 reads them as well. Over the 36
      videos of ../shared/media and the real-file corpus the texts read were the same as
      with the 512 pass on every text frame.
    - ``band_margin=1.5``: the enlarged pass reads full-width bands around the small boxes
      (each box's height times this above and below; overlapping bands merged), not the whole
      frame; the gate's large boxes are kept, and a band's box centred inside one of them (a
      piece of that line, cut by the band) is dropped. Over the sampled frames of the 3
      generated clips, ../shared/media and the real-file corpus (38 videos) this cut OCR CPU
      time by a third (two runs: 35.2 -> 22.4 s, 32.8 -> 20.8 s); 28 read the same texts. Of
      the 10 others: the generated clips' captions kept their spaces ("RAYFLOW CLIP 1", not
      "RAYFLOWCLIP1") and lost the stray glyphs read from testsrc2's pattern; three files
      lost small text the gate had not boxed at all, elsewhere on the frame (a keyboard's
      "F11"/"F12", a colour chart's garbled "Coxrite", unreadable UI lines of a screen
      recording, read as "mecieg sieectery)"); the rest read a letter or a space differently.
      The quality benchmark's on-screen text figures are unchanged. 0 detects the whole
      frame again.
    - ``max_box_height=0.3``: detected boxes taller than this share of the frame are
      not recognised. On the Sintel trailer and Big Buck Bunny every such box was a
      texture (fog, fur, sky) read as one stray glyph ("场", "#", "S") at 0.04-0.33;
      titles there are 0.03-0.05 of the frame, a large logo ~0.2.
    - ``reuse_below_diff=1.0``: a frame whose mean absolute difference from the
      last frame read is below this (0..255 levels) reuses that frame's lines.
      0 disables it.
    - ``reuse_line_below_diff=6.0``: a detected line at the place of one on the last frame
      read (boxes overlapping >= 0.8) where the two frames' pixels differ by less than this
      (0..255) in every glyph-wide block reuses that line's reading instead of being
      recognised again (text held on screen over moving pictures). 0 disables it.
    """

    def __init__(
        self,
        *,
        threads: int = 2,
        det_min_side_px: int = 512,
        max_side_px: int = 1280,
        use_angle_cls: bool = False,
        rec_batch_size: int = 16,
        reuse_below_diff: float = 1.0,
        max_box_height: float = 0.3,
        gate_min_side_px: int | None = 288,
        reuse_line_below_diff: float = 6.0,
        small_text_px: float = 20.0,
        band_margin: float = 1.5,
    ) -> None:
        self.band_margin = band_margin
        self.reuse_line_below_diff = reuse_line_below_diff
        self.small_text_px = small_text_px
        self.max_box_height = max_box_height
        self.gate_min_side_px = gate_min_side_px
        self.location = locate_ocr_model()
        self.threads = max(1, min(threads, os.cpu_count() or 1))
        self.det_min_side_px = det_min_side_px
        self.max_side_px = max_side_px
        self.use_angle_cls = use_angle_cls
        self.rec_batch_size = rec_batch_size
        self.reuse_below_diff = reuse_below_diff
        self.device: str | None = None
        self.load_s: float | None = None
        self._engine: Any = None

    @property
    def name(self) -> str:
        """Model id for ``Analysis.models``, e.g. 'PP-OCRv4 (rapidocr-onnxruntime)'."""
        return self.location.label

    def setup(self, device: str = "cpu") -> None:
        """Load the three ONNX sessions once (a second call is a no-op).

        ``device`` 'cuda[:N]' uses onnxruntime's CUDA provider when the installed
        onnxruntime has it (onnxruntime-gpu); otherwise it warns and runs on CPU.
        Raises ``ModelMissing`` when the package or its weights are absent."""
        if self._engine is not None:
            return
        if not self.location.present:
            raise ModelMissing(f"OCR model {MODEL_NAME} not found: {self.location.detail}")
        import onnxruntime
        from rapidocr_onnxruntime import RapidOCR

        cuda = device.startswith("cuda") and "CUDAExecutionProvider" in onnxruntime.get_available_providers()
        if device.startswith("cuda") and not cuda:
            log.warning("onnxruntime has no CUDA provider here (needs onnxruntime-gpu); OCR runs on CPU")
        start = time.perf_counter()
        # intra_op_num_threads outside 1..cpu_count makes RapidOCR use every core: clamped above.
        with _session_options():
            self._engine = RapidOCR(intra_op_num_threads=self.threads, inter_op_num_threads=1,
                                    det_use_cuda=cuda, cls_use_cuda=cuda, rec_use_cuda=cuda)
        self._engine.text_det.limit_type = "min"
        self._engine.text_det.limit_side_len = self.det_min_side_px
        self._engine.text_rec.rec_batch_num = self.rec_batch_size
        self.device = "cuda:0" if cuda else "cpu"
        self.load_s = time.perf_counter() - start
        log.info("OCR model %s loaded from %s on %s (%d threads) in %.2f s", self.name, self.location.path,
                 self.device, self.threads, self.load_s)

    def read(self, images: np.ndarray) -> list[list[TextLine]]:
        """Read every line of text on each image of ``images`` ((N, H, W, 3) uint8 RGB).

        Returns one list per image, lines top to bottom then left to right, with every
        score the recogniser gives (filtering is the caller's policy)."""
        if self._engine is None:
            raise RuntimeError("OcrModel.setup() must be called before read()")
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
        start = time.perf_counter()
        source = list(range(len(images)))  # image i takes its lines from image source[i]
        crops: list[np.ndarray] = []
        owners: list[tuple[int, TextBox, int]] = []  # (image, box, index of the crop read for it)
        last_read: int | None = None
        previous: list[tuple[TextBox, int]] = []  # the lines of the last image read: box, crop index
        for i, image in enumerate(images):
            if last_read is not None and self.reuse_below_diff > 0 and \
                    _mean_abs_diff(image, images[last_read]) < self.reuse_below_diff:
                source[i] = last_read
                continue
            before = None if last_read is None else images[last_read]
            last_read = i
            current = []
            for crop, box in self._detect(image):
                index = self._same_line(image, box, before, previous)
                if index is None:
                    crops.append(crop)
                    index = len(crops) - 1
                owners.append((i, box, index))
                current.append((box, index))
            previous = current
        recognised = self._recognise(crops)
        lines: list[list[TextLine]] = [[] for _ in images]
        for i, box, index in owners:
            text, score = recognised[index]
            text = text.strip()
            if text:
                lines[i].append(TextLine(text, round(score, 4), box))
        out = [list(lines[source[i]]) for i in range(len(images))]
        log.debug("OCR read %d images (%d distinct, %d boxes, %d recognised) in %.2f s", len(images),
                  len(set(source)), len(owners), len(crops), time.perf_counter() - start)
        return out

    def _detect(self, rgb: np.ndarray) -> list[tuple[np.ndarray, TextBox]]:
        """Text boxes on one image, each with its crop (BGR, as RapidOCR's recogniser wants)."""
        import cv2

        height, width = rgb.shape[:2]
        scale = self.max_side_px / max(height, width)
        if scale < 1:
            width, height = max(1, round(width * scale)), max(1, round(height * scale))
            rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
        bgr = np.ascontiguousarray(rgb[..., ::-1])  # RapidOCR takes arrays in OpenCV's BGR order
        gated = bool(self.gate_min_side_px) and (self.gate_min_side_px or 0) < self.det_min_side_px
        boxes = self._boxes(bgr, self.gate_min_side_px if gated else self.det_min_side_px)
        if gated and boxes is not None and len(boxes) and self._small_text(boxes, height, width):
            # small text: read it at full detail, around the small boxes (or the whole frame again)
            boxes = (self._enlarged_bands(bgr, boxes) if self.band_margin > 0
                     else self._boxes(bgr, self.det_min_side_px))
        if boxes is None or len(boxes) == 0:
            return []
        boxes = self._engine.sorted_boxes(boxes)
        crops = self._engine.get_crop_img_list(bgr, boxes)
        found: list[tuple[np.ndarray, TextBox]] = []
        for crop, quad in zip(crops, boxes, strict=True):
            if crop.size == 0:
                continue
            xs, ys = quad[:, 0], quad[:, 1]
            if (ys.max() - ys.min()) / height > self.max_box_height:
                continue  # a texture, not a line of text: not worth recognising
            found.append((crop, TextBox(
                x0=_unit(xs.min() / width), y0=_unit(ys.min() / height),
                x1=_unit(xs.max() / width), y1=_unit(ys.max() / height),
            )))
        return found

    def _boxes(self, bgr: np.ndarray, min_side_px: int | None) -> Any:
        """The detector's quadrilaterals on ``bgr``, its short side scaled to ``min_side_px``."""
        det = self._engine.text_det
        det.limit_side_len = min_side_px
        try:
            boxes, _ = det(bgr)
        finally:
            det.limit_side_len = self.det_min_side_px
        return boxes

    def _enlarged_bands(self, bgr: np.ndarray, boxes: Any) -> Any:
        """The gate's boxes with its small ones detected again at ``det_min_side_px``'s scale,
        in full-width bands around them only."""
        height, width = bgr.shape[:2]
        scale = self.det_min_side_px / min(height, width)
        small = self._small_boxes(boxes, height, width)
        kept = [q for q, tiny in zip(boxes, small, strict=True) if not tiny]
        spans = []
        for q, tiny in zip(boxes, small, strict=True):
            if tiny:
                y0, y1 = float(q[:, 1].min()), float(q[:, 1].max())
                pad = (y1 - y0) * self.band_margin
                spans.append((max(0, int(y0 - pad)), min(height, int(np.ceil(y1 + pad)))))
        bands: list[list[int]] = []
        for y0, y1 in sorted(spans):
            if bands and y0 <= bands[-1][1]:
                bands[-1][1] = max(bands[-1][1], y1)
            else:
                bands.append([y0, y1])
        found = list(kept)
        for y0, y1 in bands:
            crop = np.ascontiguousarray(bgr[y0:y1])
            sub = self._boxes(crop, max(32, round(min(y1 - y0, width) * scale)))
            for q in (sub if sub is not None else []):
                q = q + np.array([0, y0], dtype=q.dtype)
                cx, cy = float(q[:, 0].mean()), float(q[:, 1].mean())
                if any(k[:, 0].min() <= cx <= k[:, 0].max() and k[:, 1].min() <= cy <= k[:, 1].max() for k in kept):
                    continue  # a piece of a large line the band cut through: that line is read whole
                found.append(q)
        return np.array(found) if found else None

    def _small_text(self, boxes: Any, height: int, width: int) -> bool:
        """Whether a box is lower than ``small_text_px`` at the gate's scale: text that the
        detector reads better from an enlarged frame."""
        return any(self._small_boxes(boxes, height, width))

    def _small_boxes(self, boxes: Any, height: int, width: int) -> list[bool]:
        """For each box, whether it is lower than ``small_text_px`` at the gate's scale."""
        scale = (self.gate_min_side_px or 0) / min(height, width)
        return [bool((quad[:, 1].max() - quad[:, 1].min()) * scale < self.small_text_px) for quad in boxes]

    def _same_line(self, image: np.ndarray, box: TextBox, before: np.ndarray | None,
                   previous: list[tuple[TextBox, int]]) -> int | None:
        """The crop index of a line of the last image read (``before``) that this one repeats:
        at the same place, with the same pixels there (a caption, a title, a logo held on
        screen), else None. The pixels of both images are compared over both boxes (the
        detector's box may move by a few pixels), glyph by glyph (blocks as wide as the line is
        tall), so one changed digit of a running clock is a new reading, not a repeat."""
        if self.reuse_line_below_diff <= 0 or before is None:
            return None
        height, width = image.shape[:2]
        for old_box, index in previous:
            if iou(_corners(box), _corners(old_box)) < 0.8:
                continue
            y0, y1 = int(min(box.y0, old_box.y0) * height), int(np.ceil(max(box.y1, old_box.y1) * height))
            x0, x1 = int(min(box.x0, old_box.x0) * width), int(np.ceil(max(box.x1, old_box.x1) * width))
            if y1 > y0 and x1 > x0 and _worst_block_diff(image[y0:y1, x0:x1],
                                                         before[y0:y1, x0:x1]) < self.reuse_line_below_diff:
                return index
        return None

    def _recognise(self, crops: list[np.ndarray]) -> list[tuple[str, float]]:
        if not crops:
            return []
        if self.use_angle_cls:
            crops, _, _ = self._engine.text_cls(crops)
        results, _ = self._engine.text_rec(crops, False)
        return [(str(r[0]), float(r[1])) for r in results]


@contextlib.contextmanager
def _session_options() -> Iterator[None]:
    """Build RapidOCR's onnxruntime sessions with two options it has no setting for (its
    session-options builder is wrapped while the engine is built):

    - idle threads sleep instead of spinning (``session.intra_op.allow_spinning=0``).
      onnxruntime's workers spin between calls by default: on 2 cores shared with ffmpeg, OCR
      of 36 frames took 29.1 s of CPU and 31.0 s of wall time spinning, 20.2 s and 24.7 s
      sleeping (17.9 / 10.4 s against 19.5 / 9.9 s alone).
    - the CPU memory arena is on (RapidOCR turns it off, so every call allocated its buffers
      afresh): OCR of the sampled frames of 3 generated clips and ../shared/media took 11.3
      and 11.7 s of CPU with it, 12.4 and 12.4 s without, with the same texts read."""
    from rapidocr_onnxruntime.utils import infer_engine

    build = infer_engine.OrtInferSession._init_sess_opts

    def tuned(config: dict[str, Any]) -> Any:
        options = build(config)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.enable_cpu_mem_arena = True
        return options

    infer_engine.OrtInferSession._init_sess_opts = staticmethod(tuned)
    try:
        yield
    finally:
        infer_engine.OrtInferSession._init_sess_opts = staticmethod(build)


def _mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two uint8 images, in 0..255 levels (every 4th pixel: enough, 16x cheaper)."""
    return float(np.mean(np.abs(a[::4, ::4].astype(np.int16) - b[::4, ::4].astype(np.int16))))


def _worst_block_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Largest mean absolute difference (0..255) over blocks as wide as the crops are tall."""
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).mean(axis=(0, 2))  # per column
    width = max(1, a.shape[0])
    return max(float(diff[x:x + width].mean()) for x in range(0, len(diff), width))


def _corners(box: TextBox) -> tuple[float, float, float, float]:
    return box.x0, box.y0, box.x1, box.y1


def _unit(value: float) -> float:
    return round(min(1.0, max(0.0, float(value))), 4)
