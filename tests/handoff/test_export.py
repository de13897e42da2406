"""``rayflow export``: search hits as EDL / OTIO / FCP XML / CSV that OpenTimelineIO reads back."""

from __future__ import annotations

import csv
from pathlib import Path

import opentimelineio as otio
import pytest
from typer.testing import CliRunner

from rayflow.catalog.store import Catalog
from rayflow.cli.main import app
from rayflow.handoff.export import event_for, record_timecode
from rayflow.record import ClipRecord, TimecodeInfo
from tests.catalog.corpus import make_record


def _records() -> list[ClipRecord]:
    council = make_record("/footage/A001/A001C003_council.mov", codec="prores", size=(1920, 1080), fps=25.0,
                          duration_s=60.0, camera=("ARRI", "ALEXA Mini"), description="a council meeting",
                          tags=["interview"], segments=[(0.0, 8.0, "good evening and welcome"),
                                                        (10.0, 14.5, "the harbor bridge is closed for repairs")])
    council.container.tags["timecode"] = "01:02:03:04"  # as ffprobe reports a MOV tmcd track
    council.video.r_frame_rate = "25/1"
    drone = make_record("/footage/DJI/DJI_0042.mp4", codec="h264", size=(3840, 2160), fps=25.0, duration_s=20.0,
                        camera=("DJI", "Mavic 3"), description="aerial shot of the harbor bridge at dawn",
                        tags=["drone"], segments=[(2.0, 6.0, "wind noise over the bridge")])
    return [council, drone]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("export-home")
    catalog = Catalog.open(path=path / "catalog", url=None)
    try:
        catalog.upsert(_records())
    finally:
        catalog.close()
    return path


def _export(home: Path, *args: str) -> None:
    result = CliRunner().invoke(app, ["export", *args, "--home", str(home)])
    assert result.exit_code == 0, result.output


def test_edl_reads_back_with_names_reels_timecodes_and_matched_words(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "hits.edl"
    _export(home, "harbor bridge", "--mode", "keyword", "--in", "moments", "--format", "edl", "--out", str(out))
    text = out.read_text()
    timeline = otio.adapters.read_from_file(str(out), adapter_name="cmx_3600", rate=25)
    clips = list(timeline.find_clips())
    by_name = {c.name: c for c in clips}
    council = by_name["A001C003_council.mov"]
    # Source in/out: the file's start timecode 01:02:03:04 plus the moment found at 10.0-14.5 s.
    assert otio.opentime.to_timecode(council.source_range.start_time, 25) == "01:02:13:04"
    assert otio.opentime.to_timecode(council.source_range.end_time_exclusive(), 25) == "01:02:17:16"
    assert council.metadata["cmx_3600"]["reel"] == "A001C003"
    assert "* MATCHED: harbor bridge" in text
    drone = by_name["DJI_0042.mp4"]  # no timecode in the file: 00:00:00:00 + 2 s
    assert otio.opentime.to_timecode(drone.source_range.start_time, 25) == "00:00:02:00"
    drone_event = next(event for event in text.split("\n\n") if "DJI_0042" in event)
    assert "* MATCHED: harbor bridge" in drone_event


def test_otio_and_fcp_xml_read_back(home: Path, tmp_path: Path) -> None:
    for fmt, name in (("otio", "hits.otio"), ("fcpxml", "hits.xml")):
        out = tmp_path / name
        _export(home, "harbor bridge", "--mode", "keyword", "--format", fmt, "--out", str(out))
        timeline = otio.adapters.read_from_file(str(out))
        clips = {c.name: c for c in timeline.find_clips()}
        council = clips["A001C003_council.mov"]
        assert otio.opentime.to_timecode(council.source_range.start_time, 25) == "01:02:13:04"
        assert council.media_reference.target_url.endswith("/footage/A001/A001C003_council.mov")
        assert otio.opentime.to_timecode(clips["DJI_0042.mp4"].source_range.start_time, 25) == "00:00:02:00"


def test_ids_export_whole_clips_as_csv(home: Path, tmp_path: Path) -> None:
    council, drone = _records()
    out = tmp_path / "clips.csv"
    _export(home, "--ids", drone.clip_id[:12], "--ids", council.file.path, "--format", "csv", "--out", str(out))
    rows = list(csv.DictReader(out.open()))
    assert [r["name"] for r in rows] == ["DJI_0042.mp4", "A001C003_council.mov"]
    assert (rows[1]["source_in"], rows[1]["source_out"]) == ("01:02:03:04", "01:03:03:04")
    assert (rows[0]["source_in"], rows[0]["source_out"]) == ("00:00:00:00", "00:00:20:00")


def test_timecode_read_defensively_from_a_record_field(tmp_path: Path) -> None:
    council, _ = _records()
    council.container.tags.pop("timecode")
    assert record_timecode(council) is None
    with_field = council.model_copy()
    object.__setattr__(with_field, "timecode", "10:00:00:00")  # the shape the probe engineer may add
    assert record_timecode(with_field) == "10:00:00:00"
    ev = event_for(with_field, 1.0, 2.0)
    assert otio.opentime.to_timecode(ev.source_range().start_time, 25) == "10:00:01:00"
    probed = council.model_copy(deep=True)  # where the probe stage puts it (issue 13), the tag gone
    probed.container.timecode = TimecodeInfo(start="09:59:58:10", rate=25.0, source="ffprobe:tmcd")
    probed.container.reel = "A007"
    assert record_timecode(probed) == "09:59:58:10" and event_for(probed, 0.0, 1.0).reel == "A007"


def test_usage_errors(home: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["export", "x", "--format", "aaf", "--out", str(tmp_path / "a")]).exit_code == 2
    assert runner.invoke(app, ["export", "--format", "edl", "--out", str(tmp_path / "a")]).exit_code == 2
    nothing = runner.invoke(app, ["export", "zebra", "--mode", "keyword", "--out", str(tmp_path / "z.edl"),
                                  "--home", str(home)])
    assert nothing.exit_code == 1 and not (tmp_path / "z.edl").exists()
    for bad in (["--mode", "fuzzy"], ["--in", "frames"]):
        result = runner.invoke(app, ["export", "zebra", *bad, "--out", str(tmp_path / "b.edl"), "--home", str(home)])
        assert result.exit_code == 2 and not (tmp_path / "b.edl").exists(), result.output


def test_web_page_exports_the_current_results(home: Path) -> None:
    """GET /api/export with the search's own parameters (what the page's links carry)."""
    from starlette.testclient import TestClient

    from rayflow.config import load_settings
    from rayflow.web.app import create_app

    app_ = create_app(load_settings(home=home, env={}))
    with TestClient(app_) as client:
        params = {"q": "harbor bridge", "mode": "keyword", "in": "moments", "format": "edl"}
        res = client.get("/api/export", params=params)
        assert res.status_code == 200, res.text
        assert res.headers["content-disposition"] == 'attachment; filename="rayflow_harbor_bridge.edl"'
        timeline = otio.adapters.read_from_string(res.text, adapter_name="cmx_3600", rate=25)
        names = [c.name for c in timeline.find_clips()]
        assert sorted(names) == ["A001C003_council.mov", "DJI_0042.mp4"]
        assert client.get("/api/export", params={**params, "format": "aaf"}).status_code == 400
        assert client.get("/api/export", params={**params, "q": "zebra"}).status_code == 404
        search = client.get("/api/search", params={k: v for k, v in params.items() if k != "format"})
        assert search.status_code == 200 and len(search.json()["results"]) == 2  # the refactor kept search
