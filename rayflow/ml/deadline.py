"""Deadlines for model calls that cannot be interrupted (native code): run on a daemon
thread, wait at most ``timeout_s``, and abandon the call when it is late."""

from __future__ import annotations

import threading
from typing import Any


class ModelTimeout(Exception):
    """A model call ran past ``Timeouts.model_call_s``; its thread was abandoned."""


def call_with_deadline(call: Any, timeout_s: float, *, what: str) -> Any:
    """Run ``call()`` on a daemon thread and return its result, or raise ``ModelTimeout``.

    A model call in native code (onnxruntime, CTranslate2, torch, OpenCV) cannot be
    interrupted from Python, so a hung one is abandoned, not stopped: it keeps its thread
    (and maybe a core) until the process ends. The host must restart the process after a
    timeout (``AnalyzeStage.stuck``). Cost: one thread start per call (~0.1 ms)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:  # handed to the caller's thread below
            box["error"] = exc

    worker = threading.Thread(target=target, name=f"model:{what}", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise ModelTimeout(f"timed out after {timeout_s:g} s (model call abandoned; the analyzer restarts)")
    if "error" in box:
        raise box["error"]
    return box.get("value")


__all__ = ["ModelTimeout", "call_with_deadline"]
