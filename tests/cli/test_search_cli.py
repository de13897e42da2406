"""``rayflow search | similar | rm | reindex`` as a user runs them: real processes, real exit codes.

The catalog is filled in-process with records only (no model here), then
``rayflow reindex`` embeds them: the way a catalog gets vectors after a model change."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from rayflow.catalog import schema
from rayflow.catalog.store import Catalog
from rayflow.record import ClipRecord
from tests.catalog.corpus import labelled_corpus, near_copy
from tests.ml.test_text_encoder import make_tiny_text_model

RAYFLOW = [sys.executable, "-m", "rayflow.cli.main"]
EVIL_NAME = "evil[bold red]x[/bold red]\x1b[31m.mp4"


def _run(args: list[str], home: Path, timeout: float = 300, **env_extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PREFECT_API_URL", "RAY_ADDRESS", "RAYFLOW_TEXT_MODEL", "RAYFLOW_IMAGE_MODEL")}
    env.update(RAYFLOW_HOME=str(home), **env_extra)
    return subprocess.run([*RAYFLOW, *args], capture_output=True, text=True, timeout=timeout, env=env,
                          stdin=subprocess.DEVNULL, check=False)


def _fill(home: Path, records: list[ClipRecord]) -> None:
    """Store records without vectors (keyword search and filters work; reindex embeds them)."""
    catalog = Catalog.open(path=home / "catalog", url=None)
    try:
        catalog.upsert(records)
    finally:
        catalog.close()


@pytest.fixture(scope="module")
def records() -> list[ClipRecord]:
    corpus, _ = labelled_corpus()
    chosen = [r for r in corpus if r.file.name in (
        "city_council_interview.mov", "pasta_cooking.mp4", "DJI_0042.mp4", "league_final.mp4",
        "wetlands_dawn.mov", "IMG_2231.MOV", "ev_test_drive.mp4")]
    evil = chosen[3].model_copy(deep=True)
    evil.file.path = f"/footage/untrusted/{EVIL_NAME}"
    evil.file.name = EVIL_NAME
    evil.file.checksum = "e" * 64
    evil.clip_id = "0" * 8 + evil.clip_id[8:]
    return [*chosen, near_copy(chosen[0]), evil]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, records: list[ClipRecord]) -> Path:
    path = tmp_path_factory.mktemp("search-home")
    _fill(path, records)
    proc = _run(["reindex", "--json"], path, timeout=600)  # embeds with the packaged MiniLM (slow on a busy box)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout) == {"clips": len(records), "text_model": "all-MiniLM-L6-v2", "text_dim": 384,
                                       "image_model": None, "skipped": False}
    return path


def test_search_json_lands_on_the_moment(home: Path) -> None:
    proc = _run(["search", "why is the harbor bridge closed", "--json", "--limit", "3"], home)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)  # stdout is JSON and nothing else
    assert doc["mode"] == "hybrid" and doc["in"] == "clips"
    top = doc["results"][0]
    assert top["name"] in ("city_council_interview.mov", "city_council_interview_proxy_hevc.mp4")
    assert top["start_s"] <= 10 <= top["end_s"] and "cracks" in top["text"]
    assert top["thumbnail"].endswith(".jpg") and top["rank"] == 1


def test_keyword_where_filters_and_moments(home: Path) -> None:
    proc = _run(["search", "the", "--mode", "keyword", "--where", "codec=hevc,duration>30", "--json",
                 "--limit", "50"], home)
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = {r["name"] for r in json.loads(proc.stdout)["results"]}
    assert names and names <= {"pasta_cooking.mp4", "DJI_0042.mp4", "IMG_2231.MOV", "ev_test_drive.mp4",
                               "city_council_interview_proxy_hevc.mp4"}
    proc = _run(["search", "ferry commuters", "--mode", "keyword", "--in", "moments", "--json"], home)
    first = json.loads(proc.stdout)["results"][0]
    assert first["moment_kind"] == "speech" and first["start_s"] == 22


def test_bad_where_and_mode_exit_2_with_a_clear_message(home: Path) -> None:
    proc = _run(["search", "x", "--mode", "keyword", "--where", "codex=hevc"], home)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "unknown field 'codex'" in proc.stderr and "did you mean 'codec'" in proc.stderr
    proc = _run(["search", "x", "--mode", "fuzzy"], home)
    assert proc.returncode == 2 and "--mode" in proc.stderr


def test_rich_output_escapes_untrusted_names(home: Path) -> None:
    proc = _run(["search", "Okafor", "--mode", "keyword"], home)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "evil[bold red]x[/bold red]" in proc.stdout  # shown literally, never parsed as markup
    assert "\x1b[31m" not in proc.stdout and "\\x1b" in proc.stdout
    assert "Okafor" in proc.stdout


def test_similar_puts_the_near_copy_first(home: Path, records: list[ClipRecord]) -> None:
    original = records[0]
    proc = _run(["similar", original.clip_id[:8], "--json"], home)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout)["results"]
    assert results[0]["name"] == "city_council_interview_proxy_hevc.mp4"
    assert original.clip_id not in {r["clip_id"] for r in results}
    proc = _run(["similar", original.clip_id, "--by", "image"], home)
    assert proc.returncode == 1 and "image" in proc.stderr


def test_busy_catalog_says_why(home: Path) -> None:
    holder = Catalog.open(path=home / "catalog", url=None)
    try:
        proc = _run(["search", "bridge", "--mode", "keyword"], home)
    finally:
        holder.close()
    assert proc.returncode == 3
    said = " ".join(proc.stderr.split())  # the console wraps the message at its width
    assert "another rayflow process" in said and "Qdrant server" in said


def test_rm_removes_points_moments_and_files(tmp_path: Path, records: list[ClipRecord]) -> None:
    home = tmp_path / "h"
    victim, keep = records[2], records[1]
    _fill(home, [victim, keep])
    clip_dir = home / "output" / "clips" / victim.clip_id
    clip_dir.mkdir(parents=True)
    (clip_dir / "thumb_0.jpg").write_bytes(b"jpeg")
    sidecar = home / "output" / "records" / f"{victim.clip_id}.json"
    sidecar.parent.mkdir(parents=True)
    sidecar.write_text("{}")
    kept_sidecar = sidecar.with_name(f"{keep.clip_id}.json")
    kept_sidecar.write_text("{}")

    proc = _run(["rm", victim.file.path, "--json"], home)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)[0]["clip_id"] == victim.clip_id
    assert not clip_dir.exists() and not sidecar.exists() and kept_sidecar.exists()
    catalog = Catalog.open(path=home / "catalog", url=None)
    try:
        assert catalog.get(victim.clip_id) is None and catalog.moments(victim.clip_id) == []
        assert catalog.count() == 1 and catalog.count(schema.MOMENTS) == len(catalog.moments(keep.clip_id))
    finally:
        catalog.close()
    again = _run(["rm", victim.clip_id], home)
    assert again.returncode == 1 and "not catalogued" in again.stdout


def test_reindex_switches_model_and_search_follows(tmp_path: Path, records: list[ClipRecord]) -> None:
    home = tmp_path / "h"
    _fill(home, records[:3])  # a catalog made for the default model
    tiny = make_tiny_text_model(tmp_path / "tiny-text")
    # Configured model differs from the catalog's: search refuses and says what to do.
    proc = _run(["search", "bridge"], home, RAYFLOW_TEXT_MODEL=str(tiny))
    assert proc.returncode == 3 and "rayflow reindex" in proc.stderr
    proc = _run(["reindex", "--json"], home, RAYFLOW_TEXT_MODEL=str(tiny))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout) == {"clips": 3, "text_model": "tiny-text", "text_dim": 32, "image_model": None,
                                       "skipped": False}
    proc = _run(["reindex", "--if-needed", "--json"], home, RAYFLOW_TEXT_MODEL=str(tiny))
    assert json.loads(proc.stdout)["skipped"] is True
    proc = _run(["search", "harbor bridge", "--json"], home, RAYFLOW_TEXT_MODEL=str(tiny))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["results"][0]["name"] == "city_council_interview.mov"


def test_filters_alone_browse_in_search_and_list(home: Path, records: list[ClipRecord]) -> None:
    hdr = {r.file.name for r in records if r.video is not None and r.video.hdr.is_hdr}
    assert hdr
    proc = _run(["search", "*", "--where", "hdr=true", "--json"], home)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout)["results"]
    assert {r["name"] for r in results} == hdr and all(r["why"] == "filters" for r in results)
    proc = _run(["list", "--where", "hdr=true", "--json"], home)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert {r["file"]["name"] for r in json.loads(proc.stdout)} == hdr
    proc = _run(["list", "--where", "hdr=maybe"], home)
    assert proc.returncode == 2 and "hdr" in proc.stderr


def test_relevance_why_and_no_good_match(home: Path) -> None:
    proc = _run(["search", "why is the harbor bridge closed", "--json"], home)
    top = json.loads(proc.stdout)["results"][0]
    assert 0.5 <= top["score"] <= 1.0 and top["why"] == "speech" and "bridge" in top["matched"]
    proc = _run(["search", "rocket launch into space"], home)
    assert proc.returncode == 1 and "no good match" in proc.stdout
    proc = _run(["search", "why is the harbor bridge closed"], home)
    assert "relevance" in proc.stdout and "%" in proc.stdout and "speech" in proc.stdout


def test_similar_says_when_nothing_is_similar(home: Path, records: list[ClipRecord]) -> None:
    lonely = next(r for r in records if r.file.name == "wetlands_dawn.mov")
    proc = _run(["similar", lonely.clip_id], home)
    assert proc.returncode == 1 and "no similar clips" in proc.stdout, proc.stdout
    proc = _run(["similar", lonely.clip_id, "--threshold", "0", "--json"], home)
    assert proc.returncode == 0 and json.loads(proc.stdout)["threshold"] == 0


def test_the_services_searcher_answers_as_this_process_would(home: Path, records: list[ClipRecord]) -> None:
    from rayflow.config import load_settings
    from rayflow.engine import searcher

    asks = [["search", "why is the harbor bridge closed", "--json", "--limit", "3"],
            ["search", "ferry commuters", "--mode", "keyword", "--in", "moments", "--json"],
            ["search", "*", "--where", "hdr=true", "--json"],
            ["list", "--where", "hdr=true", "--json"]]
    here = [json.loads(_run(args, home).stdout) for args in asks]
    pid = searcher.start(home, load_settings(home=home))
    assert pid is not None, (home / searcher.LOG_NAME).read_text()
    try:
        there = [json.loads(_run(args, home).stdout) for args in asks]
        for mine, served in zip(here[:3], there[:3], strict=True):
            assert (mine.pop("answered_by"), served.pop("answered_by")) == ("here", "service")
            assert served == mine and served["results"]
        assert there[3] == here[3] and len(there[3]) == sum(1 for r in records if r.video and r.video.hdr.is_hdr)
        proc = _run(["search", "bridge", "--where", "hdr=maybe"], home)  # its errors are this process's errors
        assert proc.returncode == 2 and "--where" in proc.stderr
        word = ["search", "zanzibarquokka", "--mode", "keyword", "--json"]
        assert _run(word, home).returncode == 1
        new = records[1].model_copy(deep=True)
        new.clip_id, new.file.name = str(uuid.uuid4()), "zanzibarquokka.mp4"
        new.file.path, new.file.checksum = f"/footage/{new.file.name}", "f" * 64
        writer = Catalog.open(path=home / "catalog", url=None)  # the searcher keeps no lock
        try:
            writer.upsert([new])
        finally:
            writer.close()
        proc = _run(word, home)  # and it sees what others wrote
        assert proc.returncode == 0 and json.loads(proc.stdout)["results"][0]["clip_id"] == new.clip_id
        writer = Catalog.open(path=home / "catalog", url=None)
        try:
            writer.delete(new.clip_id)
        finally:
            writer.close()
        assert _run(word, home).returncode == 1
    finally:
        assert searcher.stop(home)
    assert searcher.running(home) is None and not searcher.socket_path(home).exists()
    assert _run(["search", "bridge", "--mode", "keyword", "--json"], home).returncode == 0  # back to searching here
