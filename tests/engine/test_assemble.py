"""Record assembly is pure: stage outcomes in, a ClipRecord out; no Ray, no Prefect."""

from __future__ import annotations

from types import SimpleNamespace

from rayflow.engine.assemble import apply_analysis, apply_proxy, build_record, count_statuses, file_result
from rayflow.engine.outcomes import ProbeOutcome, ProxyOutcome, SampleOutcome
from rayflow.record import AudioTrack, ContainerInfo, FileInfo, FileResult, ProxyInfo, SampleInfo, VideoInfo
from rayflow.stages.fingerprint import Fingerprint
from rayflow.stages.probe import ProbeResult

FP = Fingerprint(clip_id="c" * 32, file=FileInfo(path="/f/a.mp4", name="a.mp4", size_bytes=10, checksum="x"))


def _probed(kind: str, *, video: bool) -> ProbeOutcome:
    result = ProbeResult(kind=kind, container=ContainerInfo(format="mov,mp4", duration_s=2.0),  # type: ignore[arg-type]
                         video=VideoInfo(codec="h264", width=160, height=120) if video else None,
                         audio_tracks=[AudioTrack(index=1, codec="aac")])
    return ProbeOutcome(result, None, 0.25)


def test_a_probed_and_sampled_video_is_ingested_with_every_part_and_timing() -> None:
    info = SampleInfo(decoder="ffmpeg", count=4, timestamps_s=[0, 0.5, 1, 1.5], width=160, height=120)
    sampled = SampleOutcome(sample=info, timings={"sample": 0.5, "exposure": 0.1}, errors={"exposure": "dark"})
    record = build_record(fp=FP, probed=_probed("video", video=True), sampled=sampled, errors={},
                          run_id="r1", fingerprint_s=0.01)
    assert (record.status, record.kind, record.run_id) == ("ingested", "video", "r1")
    assert record.video is not None and record.video.codec == "h264"
    assert record.audio_tracks[0].codec == "aac" and record.sample == sampled.sample
    assert record.errors == {"exposure": "dark"}  # an optional stage's failure does not fail the file
    assert [t.stage for t in record.timings] == ["fingerprint", "probe", "sample", "exposure"]


def test_the_tools_doubts_are_kept_as_warnings_not_errors() -> None:
    probed = _probed("video", video=True)
    probed.result.warnings.append("possibly truncated (mediainfo: IsTruncated); ffprobe read every packet")
    record = build_record(fp=FP, probed=probed, sampled=None, errors={}, run_id="r", fingerprint_s=0)
    assert record.status == "ingested" and record.errors == {}
    assert record.warnings == ["possibly truncated (mediainfo: IsTruncated); ffprobe read every packet"]


def test_a_failed_probe_or_sample_fails_the_file_and_says_why() -> None:
    failed = build_record(fp=FP, probed=ProbeOutcome(None, "ffprobe: invalid data", 0.1), sampled=None,
                          errors={}, run_id="r", fingerprint_s=0)
    assert failed.status == "failed" and failed.errors == {"probe": "ffprobe: invalid data"}
    undecodable = build_record(fp=FP, probed=_probed("video", video=True),
                               sampled=SampleOutcome(errors={"sample": "decoder died"}), errors={},
                               run_id="r", fingerprint_s=0)
    assert undecodable.status == "failed" and undecodable.errors["sample"] == "decoder died"
    # fingerprint only (probe step off): catalogued from the file facts alone
    assert build_record(fp=FP, probed=None, sampled=None, errors={}, run_id="r", fingerprint_s=0).status == "ingested"


def test_analysis_and_proxy_parts_fold_into_the_record() -> None:
    record = build_record(fp=FP, probed=_probed("video", video=True), sampled=None, errors={}, run_id="r",
                          fingerprint_s=0)
    result = SimpleNamespace(analysis=None, errors={"speech": "model unavailable"}, timings={"speech": 1.5})
    assert apply_analysis(record, result, None) is False and record.errors["speech"] == "model unavailable"
    assert record.timings[-1].stage == "speech" and record.status == "ingested"
    proxy = ProxyInfo.model_construct(path="/o/p.mp4", encoder="libx264", encode_s=2.0)  # only what is read
    assert apply_proxy(record, ProxyOutcome(proxy, None), None) == "libx264" and record.proxy == proxy
    assert apply_proxy(record, None, "worker crashed") is None and record.errors["proxy"] == "worker crashed"
    assert apply_analysis(record, None, "analyzer crashed twice") is False
    assert record.status == "failed" and record.errors["analyze"] == "analyzer crashed twice"
    line = file_result(record, path="/f/a.mp4", seconds=1.23456)
    assert (line.status, line.seconds) == ("failed", 1.235)


def test_counts_have_every_status() -> None:
    files = [FileResult(path="a", status="ingested"), FileResult(path="b", status="failed"),
             FileResult(path="c", status="ingested")]
    assert count_statuses(files) == {"ingested": 2, "duplicate": 0, "skipped": 0, "failed": 1}
