"""The ingest flow for real: Prefect on Ray, ffprobe/mediainfo/exiftool, decord, Qdrant."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from rayflow.catalog.store import Catalog
from rayflow.config import Settings, Timeouts, load_settings
from rayflow.engine.session import ingest
from rayflow.record import ClipRecord, RunSummary
from tests.media import make_corpus

pytestmark = pytest.mark.slow

GOOD = ["h264_aac.mp4", "rotate90.mp4", "hdr10.mp4", "multi_audio.mkv", "one_frame.mp4",
        "camera.mov"]
BAD_IN_FOLDER = ["empty.mp4", "text.mp4", "truncated.mp4", "x.mov"]
ODD = ["with space.mp4", "-leading-dash.mp4", "new\nline.mp4", "quote's \"double\".mp4",
       "ünïcødé 日本.mp4"]


def _settings(engine, home: Path, **flags) -> Settings:  # type: ignore[no-untyped-def]
    # The models have their own integration test (test_analysis_flow.py); here they would
    # only multiply the runtime, so the analyze step is skipped.
    flags.setdefault("skip", ("analyze",))
    return load_settings(env={}, home=home, prefect_api_url=engine.prefect_url, **flags)


def _by_name(summary: RunSummary) -> dict[str, object]:
    return {Path(f.path).name: f for f in summary.files}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    src = make_corpus(tmp_path_factory.mktemp("corpus-src"),
                      [*GOOD, *BAD_IN_FOLDER, *ODD, "audio_only.m4a", "still.jpg"])
    folder = tmp_path_factory.mktemp("footage")
    for name in [*GOOD, *BAD_IN_FOLDER, *ODD]:
        if src[name].is_dir():
            shutil.copytree(src[name], folder / name)
        else:
            shutil.copy2(src[name], folder / name)
    # Same content twice in one batch, in a subfolder: processed once.
    (folder / "sub").mkdir()
    shutil.copy2(src["h264_aac.mp4"], folder / "sub" / "zz_copy_of_h264.mp4")
    os.symlink(folder / "gone.mp4", folder / "broken_link.mp4")
    (folder / "clip.THM").write_bytes(b"\xff\xd8 camera thumbnail")  # sidecars: reported, not catalogued
    (folder / "readme.xyz").write_text("shoot notes")
    return {"folder": folder, "audio_only": src["audio_only.m4a"], "still": src["still.jpg"]}


@pytest.fixture(scope="module")
def first_run(engine, corpus, tmp_path_factory):  # type: ignore[no-untyped-def]
    home = tmp_path_factory.mktemp("home")
    settings = _settings(engine, home)
    paths = [str(corpus["folder"]), str(corpus["audio_only"]), str(corpus["still"]),
             str(corpus["folder"] / "does-not-exist.mp4")]
    return home, paths, ingest(paths, settings)


def test_every_file_gets_a_status_and_bad_ones_a_specific_reason(first_run) -> None:  # type: ignore[no-untyped-def]
    _, _, summary = first_run
    files = _by_name(summary)
    for name in [*GOOD, *ODD]:
        assert files[name].status == "ingested", (name, files[name].errors)
        assert files[name].errors == {}
    expect = {
        "empty.mp4": ("fingerprint", "empty file (0 bytes)"),
        "broken_link.mp4": ("fingerprint", "broken symlink"),
        "does-not-exist.mp4": ("discover", "does not exist"),
        "text.mp4": ("probe", "ffprobe"),
        "truncated.mp4": ("probe", "truncated"),
    }
    # Audio files and stills are catalogued (issue #13); sidecars and unknown types are listed.
    assert (files["audio_only.m4a"].status, files["still.jpg"].status) == ("ingested", "ingested")
    assert "sidecar (camera thumbnail" in files["clip.THM"].errors["discover"]
    assert "unknown type .xyz" in files["readme.xyz"].errors["discover"]
    assert "sidecar (notes, .txt)" in files["inside.txt"].errors["discover"]  # inside the folder x.mov
    assert summary.counts["skipped"] == 3
    for name, (stage, phrase) in expect.items():
        assert files[name].status == "failed", name
        assert phrase in files[name].errors[stage], (name, files[name].errors)
    assert "x.mov" not in files  # a folder named like a video is walked, not read
    dup = files["zz_copy_of_h264.mp4"]
    assert dup.status == "duplicate"
    assert dup.duplicate_of is not None and dup.duplicate_of.endswith("h264_aac.mp4")
    assert summary.counts["failed"] == len(expect)
    assert any(n.startswith("proxies: libx264") and "not used" in n for n in summary.notes)
    assert summary.counts["duplicate"] == 1


def test_records_are_in_catalog_and_sidecars_with_real_facts(first_run) -> None:  # type: ignore[no-untyped-def]
    home, _, summary = first_run
    files = _by_name(summary)
    catalog = Catalog.open(path=home / "catalog", url=None)
    try:
        rec = catalog.get(files["rotate90.mp4"].clip_id)
        assert rec is not None and rec.status == "ingested" and rec.kind == "video"
        assert rec.video is not None and rec.video.codec == "h264"
        assert rec.video.rotation in (90, 270)
        assert rec.video.display_height > rec.video.display_width  # portrait as displayed
        assert rec.sample is not None and rec.sample.count >= 1
        assert rec.sample.height > rec.sample.width  # frames decoded in display orientation
        assert len(rec.thumbnails) >= 1
        for thumb in rec.thumbnails:
            assert Path(thumb.path).is_file()
            assert Path(thumb.path).parent == home / "output" / "clips" / rec.clip_id
        assert rec.exposure is not None and 0 <= rec.exposure.mean_luma <= 255
        assert rec.proxy is not None and rec.proxy.encoder == "libx264" and not rec.proxy.hardware
        assert Path(rec.proxy.path) == home / "output" / "clips" / rec.clip_id / "proxy.mp4"
        assert Path(rec.proxy.path).is_file()
        assert (rec.proxy.height, rec.proxy.width) == (rec.video.display_height, rec.video.display_width)
        hdr = catalog.get(files["hdr10.mp4"].clip_id)
        assert hdr is not None and hdr.video is not None
        assert hdr.video.hdr.is_hdr and hdr.video.hdr.format == "HDR10"
        assert hdr.proxy is not None and "tone-mapped" in (hdr.proxy.hdr_handling or "")
        audio = catalog.get(files["audio_only.m4a"].clip_id)
        assert audio is not None and audio.kind == "audio" and audio.audio_tracks and audio.proxy is None
        still = catalog.get(files["still.jpg"].clip_id)
        assert still is not None and still.kind == "image" and still.thumbnails and still.proxy is None
        multi = catalog.get(files["multi_audio.mkv"].clip_id)
        assert multi is not None and len(multi.audio_tracks) >= 2
        # Failed files with content still get a record saying why.
        text = catalog.get(files["text.mp4"].clip_id)
        assert text is not None and text.status == "failed" and "probe" in text.errors
        ingested = [f for f in summary.files if f.status in ("ingested", "failed") and f.clip_id]
        assert catalog.count() == len(ingested)
    finally:
        catalog.close()
    sidecar = home / "output" / "records" / f"{files['camera.mov'].clip_id}.json"
    on_disk = ClipRecord.model_validate(json.loads(sidecar.read_text()))
    assert on_disk.file.name == "camera.mov"
    assert not list((home / "output" / "records").glob(".*.tmp"))


def test_flow_and_task_runs_are_in_the_one_prefect_api(engine, first_run) -> None:  # type: ignore[no-untyped-def]
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    _, _, summary = first_run
    assert summary.prefect_api_url == engine.prefect_url
    assert summary.flow_run_id
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(summary.flow_run_id)
        assert run.state is not None and run.state.is_completed()
        # The server records task runs from events in batches (every few seconds).
        deadline = time.monotonic() + 30
        while True:
            tasks = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])), limit=200)
            if len(tasks) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(1)
    names = {t.name.split("-")[0] for t in tasks}
    assert names == {"fingerprint", "inspect", "proxy"}
    ingested = [f for f in summary.files if f.status == "ingested"]
    inspect_runs = [t for t in tasks if t.name.startswith("inspect")]
    assert 0 < len(inspect_runs) < len(ingested)  # small files share inspect tasks
    assert all(t.state is not None and t.state.is_completed() for t in tasks)


def test_rerun_is_idempotent_and_force_reprocesses(engine, first_run) -> None:  # type: ignore[no-untyped-def]
    home, paths, first = first_run
    before = Catalog.open(path=home / "catalog", url=None)
    count_before = before.count()
    before.close()
    again = ingest(paths, _settings(engine, home))
    files = _by_name(again)
    for name in [*GOOD, *ODD]:
        assert files[name].status == "duplicate", name
        assert files[name].clip_id == _by_name(first)[name].clip_id
    assert files["text.mp4"].status == "failed"  # failed content is retried, and fails the same way
    forced = ingest([str(Path(paths[0]) / "h264_aac.mp4")], _settings(engine, home, force=True))
    assert forced.files[0].status == "ingested"
    after = Catalog.open(path=home / "catalog", url=None)
    try:
        assert after.count() == count_before
    finally:
        after.close()


def test_transient_timeouts_are_retried_then_reported(engine, corpus, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    settings = _settings(engine, tmp_path / "home", retries=1)
    settings = Settings(**{**settings.__dict__, "timeouts": Timeouts(probe_s=0.001)})
    summary = ingest([str(corpus["folder"] / "h264_aac.mp4")], settings)
    (res,) = summary.files
    assert res.status == "failed"
    assert "timed out" in res.errors["probe"]
    with get_client(sync_client=True) as client:
        deadline = time.monotonic() + 30
        while True:
            tasks = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[summary.flow_run_id])))
            probe_runs = [t for t in tasks if t.name.startswith("inspect") and t.state
                          and t.state.is_final()]
            if probe_runs or time.monotonic() > deadline:
                break
            time.sleep(1)
    assert probe_runs and probe_runs[0].run_count == 2  # first try + one Prefect retry


def test_transient_errors_inside_a_shared_task_are_rerun_alone(engine, corpus, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = _settings(engine, tmp_path / "home", retries=1)
    settings = Settings(**{**settings.__dict__, "timeouts": Timeouts(probe_s=0.001)})
    names = [*GOOD, *ODD]
    summary = ingest([str(corpus["folder"] / n) for n in names], settings)
    files = _by_name(summary)
    for name in names:
        assert files[name].status == "failed"
        assert "timed out" in files[name].errors["probe"], files[name].errors


def test_skip_and_limit(engine, corpus, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = _settings(engine, tmp_path / "home", skip=("sample", "analyze"), limit=2)
    summary = ingest([str(corpus["folder"])], settings)
    assert len(summary.files) == 2
    catalog = Catalog.open(path=tmp_path / "home" / "catalog", url=None)
    try:
        for res in summary.files:
            if res.status == "ingested":
                rec = catalog.get(res.clip_id)
                assert rec is not None and rec.sample is None and rec.thumbnails == []
    finally:
        catalog.close()


def test_old_prefect_runs_are_pruned(engine, first_run) -> None:  # type: ignore[no-untyped-def]
    from prefect.client.orchestration import get_client

    from rayflow.engine.session import prune_prefect_runs

    _, _, summary = first_run
    assert prune_prefect_runs(30) == 0  # everything here is recent
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(summary.flow_run_id) is not None
    assert prune_prefect_runs(-1) >= 1  # a cutoff in the future removes this session's runs
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client, pytest.raises(ObjectNotFound):
        client.read_flow_run(summary.flow_run_id)
