"""Record assembly: stage outcomes in, a ``ClipRecord`` (and run counts) out.

Pure: no Ray, no Prefect, no I/O, so it is unit-tested on plain values. The
scheduler calls these as each part of a file comes back.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rayflow import __version__
from rayflow.engine.outcomes import ProbeOutcome, ProxyOutcome, SampleOutcome
from rayflow.record import ClipRecord, FileResult, StageName, StageTiming
from rayflow.stages.fingerprint import Fingerprint

STATUSES: tuple[str, ...] = ("ingested", "duplicate", "skipped", "failed")


def build_record(
    *,
    fp: Fingerprint,
    probed: ProbeOutcome | None,
    sampled: SampleOutcome | None,
    errors: dict[StageName, str],
    run_id: str,
    fingerprint_s: float,
) -> ClipRecord:
    """Assemble the record from stage outcomes; failed stages leave their part None."""
    errors = dict(errors)
    timings = [StageTiming(stage="fingerprint", seconds=round(fingerprint_s, 4))]
    record = ClipRecord(clip_id=fp.clip_id, file=fp.file, run_id=run_id,
                        ingested_at=datetime.now(UTC), rayflow_version=__version__)
    if probed is not None:
        timings.append(StageTiming(stage="probe", seconds=round(probed.seconds, 4)))
        if probed.error:
            errors["probe"] = probed.error
        elif probed.result is not None:
            r = probed.result
            record.kind = r.kind
            record.container = r.container
            record.video = r.video
            record.audio_tracks = list(r.audio_tracks)
            record.subtitle_tracks = list(r.subtitle_tracks)
            record.camera = r.camera
            record.capture = r.capture
            record.tools = dict(r.tools)
            record.warnings = list(r.warnings)
            if r.kind not in CATALOGUED_KINDS:
                errors["probe"] = not_media_message(r)
    if sampled is not None:
        record.sample = sampled.sample
        record.thumbnails = sampled.thumbnails
        record.exposure = sampled.exposure
        errors.update(sampled.errors)
        timings += [StageTiming(stage=k, seconds=round(v, 4)) for k, v in sampled.timings.items()]
    record.errors = errors
    record.timings = timings
    # An audio file needs only its probe; a video or a still also needs its decoded frame(s).
    required_failed = "probe" in errors or record.kind not in CATALOGUED_KINDS or (
        record.kind != "audio" and "sample" in errors)
    record.status = "failed" if (probed is not None and required_failed) else "ingested"
    return record


CATALOGUED_KINDS = ("video", "audio", "image")
"""Media kinds catalogued: clips, separately recorded sound, stills."""


def not_media_message(result: Any) -> str:
    """Why a probed file is not catalogued: no decodable video, audio or image stream."""
    container = result.container.format if result.container else None
    return f"not media: no decodable video, audio or image stream (container {container or 'unknown'})"


def apply_analysis(record: ClipRecord, result: Any | None, error: str | None) -> bool:
    """Fold an analyzer result (``AnalysisResult``) or its failure into ``record``.

    A failed analysis fails the file; model errors inside a result are recorded per
    role. Returns whether the analysis came back clean (for the progress counts)."""
    if result is None:
        record.errors["analyze"] = error or "analysis returned nothing"
        record.status = "failed"
        return False
    record.analysis = result.analysis
    record.errors.update(result.errors)
    record.timings += [StageTiming(stage=k, seconds=round(v, 4)) for k, v in result.timings.items()]
    return not result.errors


def apply_proxy(record: ClipRecord, outcome: ProxyOutcome | None, error: str | None) -> str | None:
    """Fold a proxy outcome into ``record``; the encoder used, or None when it failed."""
    if outcome is not None and outcome.node is not None:
        record.placement.append(outcome.node)
    if outcome is not None and outcome.proxy is not None:
        record.proxy = outcome.proxy
        if outcome.error:  # the review copy is made; the editor proxy (layout = editor) was not
            record.errors["editor_proxy"] = outcome.error
        record.timings.append(StageTiming(stage="proxy", seconds=round(outcome.proxy.encode_s or 0, 4)))
        return outcome.proxy.encoder
    record.errors["proxy"] = error or (outcome.error if outcome else None) or "proxy failed"
    return None


def file_result(record: ClipRecord, *, path: str, seconds: float) -> FileResult:
    """The run summary's line for a record about to be written."""
    return FileResult(path=path, clip_id=record.clip_id,
                      status="failed" if record.status == "failed" else "ingested",
                      errors=record.errors, seconds=round(seconds, 3))


def count_statuses(files: list[FileResult]) -> dict[str, int]:
    """Files per status, every status present (0 when none)."""
    counts = dict.fromkeys(STATUSES, 0)
    for res in files:
        counts[res.status] += 1
    return counts


def encoders_note(used: dict[str, int], note: str | None) -> str | None:
    """``proxies: libx264 x3 (encoder ...)`` for the summary, or None when no proxy was made."""
    if not used:
        return None
    listed = ", ".join(f"{name} x{n}" for name, n in sorted(used.items()))
    return f"proxies: {listed}" + (f" ({note})" if note else "")
