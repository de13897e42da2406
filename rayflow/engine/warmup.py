"""The warm-up task of a run's Ray workers, in a module of its own: the driver sends it
the moment Ray is up, before it has imported Prefect itself (``rayflow.engine.tasks``
imports Prefect at the top; this module imports nothing until the task runs)."""

from __future__ import annotations

import time


def warm_worker() -> float:
    """Import what tasks need (prefect, stages, decord) in a Ray worker; seconds taken."""
    started = time.perf_counter()
    import prefect.task_engine  # noqa: F401

    import rayflow.engine.tasks  # noqa: F401
    import rayflow.media.encoders  # noqa: F401
    import rayflow.stages.exposure  # noqa: F401
    import rayflow.stages.frames  # noqa: F401
    import rayflow.stages.probe  # noqa: F401
    import rayflow.stages.thumbnails  # noqa: F401

    return time.perf_counter() - started
