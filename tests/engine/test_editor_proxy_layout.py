"""``[proxy] layout = "editor"``: ingest's proxy step also writes ``Proxy/<same name>.mov`` beside the
source (the code ``rayflow proxies`` runs), with the source's start timecode and channel count (ffprobe);
the same ingested file exported as EDL and OTIO reads back in OpenTimelineIO with its name, reel and
source timecode (what the probe found in the real file, not a made-up record)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import opentimelineio as otio
import pytest
from typer.testing import CliRunner

from rayflow.catalog.store import Catalog
from rayflow.cli.main import app
from rayflow.config import ProxySettings, load_settings
from rayflow.engine.session import ingest
from tests.stages.test_editor_proxy import TC_SOURCE_ARGV, _facts


def test_layout_and_codec_from_config_flags_and_bad_values(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[proxy]\nlayout = "editor"\neditor_codec = "dnxhr_lb"\n')
    settings = load_settings(config_file=config, env={}, home=tmp_path / "home")
    assert (settings.proxy.layout, settings.proxy.editor_codec) == ("editor", "dnxhr_lb")
    assert ProxySettings().layout == "review"  # the default makes no file beside the footage
    with pytest.raises(ValueError, match="layout must be one of review, editor"):
        ProxySettings(layout="resolve")  # type: ignore[arg-type]
    config.write_text('[proxy]\neditor_codec = "xvid"\n')
    with pytest.raises(ValueError, match="editor_codec"):
        load_settings(config_file=config, env={}, home=tmp_path / "home")
    bad = CliRunner().invoke(app, ["ingest", str(tmp_path), "--home", str(tmp_path / "h"),
                                   "--proxy-layout", "resolve"])
    assert bad.exit_code == 2 and "layout must be one of" in bad.output


@pytest.mark.slow
def test_ingest_with_editor_layout_writes_a_relinkable_proxy_and_exports_a_timeline(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "A001"
    folder.mkdir()
    src = folder / "A001C001.mov"  # 23.976 fps, 5.1 PCM, timecode 01:02:03:04, reel A001
    subprocess.run([*TC_SOURCE_ARGV, str(src)], check=True, timeout=120)
    home = tmp_path / "home"
    settings = load_settings(env={}, home=home, prefect_api_url=engine.prefect_url, only=("proxy",),
                             proxy={"layout": "editor", "editor_codec": "h264", "editor_max_side": 320})
    summary = ingest([str(folder)], settings)
    [result] = summary.files
    assert result.status == "ingested", result.errors
    catalog = Catalog.open(path=home / "catalog", url=None)
    try:
        record = catalog.get(result.clip_id or "")
    finally:
        catalog.close()
    assert record is not None and record.proxy is not None and record.proxy.editor is not None
    editor = record.proxy.editor
    proxy = folder / "Proxy" / "A001C001.mov"
    assert Path(editor.path) == proxy and Path(record.proxy.path).is_file()  # the review copy too
    made, orig = _facts(proxy), _facts(src)
    assert made["codec"] == "h264" and made["size"] == (320, 180)
    for key in ("rate", "timecode", "reel", "audio"):
        assert made[key] == orig[key], key
    assert (editor.timecode, editor.audio_channels, editor.codec) == ("01:02:03:04", [6], "h264")
    assert "editor_proxy" not in record.errors

    # The same real file as a timeline: one whole-clip event at its probed start timecode.
    for fmt, name in (("edl", "clip.edl"), ("otio", "clip.otio")):
        out = tmp_path / name
        done = CliRunner().invoke(app, ["export", "--ids", record.clip_id, "--format", fmt, "--out", str(out),
                                        "--home", str(home)])
        assert done.exit_code == 0, done.output
        extra = {"adapter_name": "cmx_3600", "rate": 24000 / 1001} if fmt == "edl" else {}
        [clip] = list(otio.adapters.read_from_file(str(out), **extra).find_clips())
        assert clip.name == "A001C001.mov"
        start = clip.source_range.start_time
        assert otio.opentime.to_timecode(start, start.rate) == "01:02:03:04"
        assert abs(otio.opentime.to_seconds(clip.source_range.duration) - 1.0) <= 0.05
        if fmt == "edl":
            assert clip.metadata["cmx_3600"]["reel"] == "A001"
