"""The JSON API and file serving of ``rayflow serve`` over a catalog the real pipeline built."""

from __future__ import annotations

import os
import re
import time
import uuid
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from rayflow.catalog.store import Catalog
from rayflow.engine.session import home_lock
from rayflow.web.app import STATIC_DIR
from tests.engine.test_search_e2e import CLIPS
from tests.web.conftest import BROKEN_NAME, XSS_NAME, WebHome, clip_id_of

pytestmark = pytest.mark.slow  # the session fixture ingests five files with the real pipeline


# ----------------------------------------------------------------------------- serve beside ingest

def test_ingest_ran_while_the_server_polled_and_the_page_fell_back_to_records(web_home: WebHome) -> None:
    summary = web_home.summary
    assert summary["counts"].get("ingested") == len(CLIPS) + 1, summary["counts"]
    assert summary["counts"].get("failed") == 1 and web_home.ingest_rc == 1
    observed = web_home.observed
    busy = [notice for source, notice in observed.clip_sources if source == "records" and notice
            and "ingest is running" in notice]
    assert busy, observed.clip_sources
    assert not [s for s in observed.clip_sources if s[0] == "error"], observed.clip_sources
    assert observed.search_status and set(observed.search_status) == {503}
    running = [p for p in observed.progress if p.get("state") == "running"]
    assert running, [p.get("state") for p in observed.progress]
    assert any(p["progress"]["total"] == len(CLIPS) + 2 for p in running)
    last = observed.progress[-1]
    assert last["state"] == "finished" and last["progress"]["finished"] == len(CLIPS) + 2, last
    # after the run, the catalog is used again
    assert observed.clip_sources[-1][0] == "catalog", observed.clip_sources[-3:]


# ----------------------------------------------------------------------------- search

@pytest.mark.parametrize(("query", "name"), [
    ("ferry leaving the harbour", "harbour.mp4"),
    ("counting votes at city hall", "election.mp4"),
])
def test_search_moments_finds_the_spoken_phrase(client: TestClient, query: str, name: str) -> None:
    res = client.get("/api/search", params={"q": query, "in": "moments"})
    assert res.status_code == 200, res.text
    body = res.json()
    top = body["results"][0]
    assert top["name"] == name, [(r["name"], r["text"]) for r in body["results"]]
    assert top["start_s"] is not None and abs(top["start_s"] - 2.0) <= 2.0
    assert top["moment_kind"] is not None and top["text"]
    assert set(body["terms"]) <= {t.lower() for t in query.split()} and "the" not in body["terms"]
    assert top["thumbnail"].startswith(f"/media/{top['clip_id']}/")


def test_search_clips_finds_the_on_screen_caption(client: TestClient) -> None:
    body = client.get("/api/search", params={"q": "live results", "mode": "hybrid"}).json()
    assert body["results"][0]["name"] == "election.mp4", [r["name"] for r in body["results"]]
    card = body["results"][0]
    assert card["resolution"] == "240p" and card["has_speech"] is True and card["hdr"] is False
    assert card["duration_s"] == pytest.approx(6.0, abs=0.2)


def test_keyword_search_needs_no_model_and_ranks_the_right_clip(client: TestClient) -> None:
    body = client.get("/api/search", params={"q": "tomatoes", "mode": "keyword"}).json()
    assert [r["name"] for r in body["results"]][:1] == ["garden.mp4"]


@pytest.mark.parametrize(("params", "expect_any"), [
    ({"speech": "true"}, True), ({"speech": "false"}, False),
    ({"hdr": "false"}, True), ({"hdr": "true"}, False),
    ({"codec": "h264"}, True), ({"codec": "hevc"}, False),
    ({"resolution": "sd"}, True), ({"resolution": "1080p"}, False),
    ({"min_duration": "3"}, True), ({"min_duration": "100"}, False),
    ({"max_duration": "10"}, True), ({"max_duration": "1"}, False),
    ({"where": "duration>3,codec=h264"}, True), ({"where": "codec=prores"}, False),
])
def test_filters(client: TestClient, params: dict[str, str], expect_any: bool) -> None:
    res = client.get("/api/search", params={"q": "ferry harbour", "mode": "keyword", **params})
    assert res.status_code == 200, res.text
    names = [r["name"] for r in res.json()["results"]]
    assert ("harbour.mp4" in names) is expect_any, (params, names)


def test_date_filter_excludes_clips_without_a_capture_date_in_range(client: TestClient) -> None:
    body = client.get("/api/search", params={"q": "harbour", "mode": "keyword", "from": "1990-01-01",
                                             "to": "1990-12-31"}).json()
    assert body["results"] == [] and body["where"] == ['captured>="1990-01-01"', 'captured<="1990-12-31"']


@pytest.mark.parametrize("params", [
    {"hdr": "maybe"}, {"resolution": "8k"}, {"codec": 'h264",hdr="true'}, {"where": "colour=red"},
    {"min_duration": "long"}, {"mode": "fuzzy"}, {"in": "frames"}, {"limit": "many"},
])
def test_bad_search_parameters_are_400_with_a_reason(client: TestClient, params: dict[str, str]) -> None:
    res = client.get("/api/search", params={"q": "harbour", **params})
    assert res.status_code == 400 and res.json()["error"], res.text


@pytest.mark.parametrize("query", ["", "  ", "*"])
def test_filters_alone_browse_without_a_search_term(client: TestClient, query: str) -> None:
    body = client.get("/api/search", params={"q": query, "hdr": "false", "speech": "true"}).json()
    names = {r["name"] for r in body["results"]}
    assert set(CLIPS) <= names and BROKEN_NAME not in names, names
    assert body["mode"] == "filters" and all(r["why"] == "filters" and r["score"] is None for r in body["results"])
    none = client.get("/api/search", params={"q": query, "hdr": "true"}).json()
    assert none["results"] == [] and none["note"] == "no clips pass these filters"


def test_hits_carry_relevance_and_why_and_absent_topics_find_nothing(client: TestClient) -> None:
    top = client.get("/api/search", params={"q": "ferry leaving the harbour"}).json()["results"][0]
    assert top["name"] == "harbour.mp4" and 0.5 <= top["score"] <= 1.0 and top["why"] == "speech"
    assert "ferry" in top["matched"]
    body = client.get("/api/search", params={"q": "rocket launch into space"}).json()
    assert body["results"] == [] and "no good match" in body["note"]


# ----------------------------------------------------------------------------- clips

def test_listing_and_facets(client: TestClient) -> None:
    body = client.get("/api/clips").json()
    names = {c["name"] for c in body["results"]}
    assert {*CLIPS, XSS_NAME, BROKEN_NAME} <= names and body["source"] == "catalog" and body["notice"] is None
    broken = next(c for c in body["results"] if c["name"] == BROKEN_NAME)
    assert broken["status"] == "failed" and broken["errors"] >= 1
    facets = client.get("/api/facets").json()
    assert "h264" in facets["codecs"] and facets["clips"] == body["total"]


def test_clip_detail_has_everything_the_page_shows(client: TestClient, web_home: WebHome) -> None:
    clip_id = clip_id_of(client, "harbour.mp4")
    body = client.get(f"/api/clips/{clip_id}").json()
    record = body["record"]
    assert record["file"]["name"] == "harbour.mp4" and body["source"] == "catalog"
    assert "ferry" in record["analysis"]["speech"]["text"].lower()
    assert any("PORTAUTHORITY" in t["text"].replace(" ", "").upper() for t in record["analysis"]["screen_text"])
    assert body["proxy"] == f"/media/{clip_id}/proxy.mp4"
    assert 1 <= len(body["best"]) <= 3 and all(b["reason"] and b["url"] for b in body["best"])
    assert sum(b["primary"] for b in body["best"]) == 1
    assert body["shots"] and all(s["thumbnail"] and s["start_s"] <= s["thumbnail_s"] <= s["end_s"] + 0.5
                                 for s in body["shots"])
    assert body["frames"] and all(client.get(f["url"]).status_code == 200 for f in body["frames"][:2])
    assert record["video"]["codec"] == "h264" and record["audio_tracks"]


def test_failed_clip_shows_its_stage_errors(client: TestClient) -> None:
    clip_id = clip_id_of(client, BROKEN_NAME)
    record = client.get(f"/api/clips/{clip_id}").json()["record"]
    assert record["status"] == "failed" and record["errors"], record["errors"]


def test_unknown_or_malformed_clip_ids_are_404(client: TestClient) -> None:
    assert client.get(f"/api/clips/{uuid.uuid4()}").status_code == 404
    assert client.get("/api/clips/not-a-clip").status_code == 404
    assert client.get("/api/clips/%2E%2E%2F%2E%2E").status_code == 404


def test_similar_never_returns_the_clip_itself(client: TestClient) -> None:
    clip_id = clip_id_of(client, "garden.mp4")
    body = client.get(f"/api/clips/{clip_id}/similar").json()
    results = body["results"]
    assert clip_id not in {r["clip_id"] for r in results}
    assert {r["name"] for r in results} <= {*CLIPS, XSS_NAME, BROKEN_NAME}
    assert all(r["score"] >= body["threshold"] and r["why"].startswith("similar") for r in results)
    assert (body["note"] is None) == bool(results)  # "No similar clips (...)" when there are none


def test_untrusted_names_travel_as_data(client: TestClient) -> None:
    clip_id = clip_id_of(client, XSS_NAME)
    res = client.get(f"/api/clips/{clip_id}")
    assert res.headers["content-type"].startswith("application/json")
    assert res.json()["record"]["file"]["name"] == XSS_NAME
    js = (STATIC_DIR / "app.js").read_text(encoding="utf-8")
    assert not re.search(r"\.(innerHTML|outerHTML)\s*[+]?=|insertAdjacentHTML|document\.write|\beval\(", js)


# ----------------------------------------------------------------------------- media files

def test_range_requests_return_206_with_the_right_bytes(client: TestClient, web_home: WebHome) -> None:
    clip_id = clip_id_of(client, "harbour.mp4")
    data = (web_home.settings.clip_dir(clip_id) / "proxy.mp4").read_bytes()
    res = client.get(f"/media/{clip_id}/proxy.mp4", headers={"Range": "bytes=100-199"})
    assert res.status_code == 206
    assert res.headers["content-range"] == f"bytes 100-199/{len(data)}"
    assert res.content == data[100:200] and res.headers["content-type"] == "video/mp4"
    tail = client.get(f"/media/{clip_id}/proxy.mp4", headers={"Range": "bytes=-64"})
    assert tail.status_code == 206 and tail.content == data[-64:]
    full = client.get(f"/media/{clip_id}/proxy.mp4")
    assert full.status_code == 200 and full.content == data and full.headers["accept-ranges"] == "bytes"
    bad = client.get(f"/media/{clip_id}/proxy.mp4", headers={"Range": f"bytes={len(data) + 10}-"})
    assert bad.status_code == 416


def test_path_traversal_and_unknown_names_are_refused(client: TestClient, web_home: WebHome,
                                                      tmp_path: Path) -> None:
    clip_id = clip_id_of(client, "harbour.mp4")
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"outside the output dir")
    clips = web_home.settings.output_dir / "clips"
    linked_file = str(uuid.uuid4())
    (clips / linked_file).mkdir()
    (clips / linked_file / "best_0.jpg").symlink_to(secret)
    linked_dir = str(uuid.uuid4())
    (clips / linked_dir).symlink_to(tmp_path, target_is_directory=True)
    try:
        attempts = [
            f"/media/{clip_id}/../../records/{clip_id}.json",
            f"/media/{clip_id}/..%2F..%2Frecords%2F{clip_id}.json",
            f"/media/{clip_id}/%2E%2E%2F%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
            "/media/..%2F..%2F..%2Fetc/passwd",
            f"/media/{clip_id}//etc/passwd",
            f"/media/{clip_id}/%2Fetc%2Fpasswd",
            f"/media/{clip_id}/record.json",
            f"/media/{clip_id}/proxy.mp4%00.jpg",
            f"/media/{clip_id.upper()}/proxy.mp4",
            "/media/not-a-uuid/proxy.mp4",
            f"/media/{linked_file}/best_0.jpg",
            f"/media/{linked_dir}/secret.jpg",
            f"/media/{linked_dir}/best_0.jpg",
            "/static/../../../etc/passwd",
            "/static/%2E%2E/app.py",
        ]
        (tmp_path / "best_0.jpg").write_bytes(b"also outside")
        for url in attempts:
            res = client.get(url)
            assert res.status_code in (400, 404), (url, res.status_code)
            assert b"outside" not in res.content and b"root:" not in res.content, url
    finally:
        (clips / linked_dir).unlink()
        (clips / linked_file / "best_0.jpg").unlink()
        (clips / linked_file).rmdir()


# ----------------------------------------------------------------------------- runs, progress

def test_runs_page_lists_the_run_with_counts_and_failure_reasons(client: TestClient, web_home: WebHome) -> None:
    runs = client.get("/api/runs").json()["runs"]
    run = next(r for r in runs if r["run_id"] == web_home.summary["run_id"])
    assert run["counts"]["ingested"] == len(CLIPS) + 1 and run["files"] == len(CLIPS) + 2
    assert [Path(f["path"]).name for f in run["failures"]] == [BROKEN_NAME]
    assert all(run["failures"][0]["errors"].values())


def test_progress_endpoint_reports_the_finished_run(client: TestClient) -> None:
    live = client.get("/api/progress").json()
    assert live["state"] == "finished" and live["progress"]["total"] == len(CLIPS) + 2
    assert live["progress"]["statuses"].get("failed") == 1


def test_progress_without_any_ingest(tmp_path: Path) -> None:
    from rayflow.config import load_settings
    from rayflow.web.app import create_app

    with TestClient(create_app(load_settings(env={}, home=tmp_path / "h"))) as c:
        assert c.get("/api/progress").json() == {"state": "none"}
        clips = c.get("/api/clips").json()
        assert clips["total"] == 0 and "no catalog yet" in clips["notice"]
        assert not (tmp_path / "h" / "catalog").exists()  # the server never creates a catalog


# ----------------------------------------------------------------------------- read-only, headers

@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("url", ["/api/clips", "/api/search?q=x", "/media/{id}/proxy.mp4", "/"])
def test_writes_are_refused(client: TestClient, method: str, url: str) -> None:
    clip_id = clip_id_of(client, "garden.mp4")
    res = client.request(method, url.replace("{id}", clip_id), content=b"{}")
    assert res.status_code == 405 and res.headers["allow"] == "GET, HEAD"
    assert client.get(f"/api/clips/{clip_id}").status_code == 200


def test_security_headers_everywhere(client: TestClient) -> None:
    clip_id = clip_id_of(client, "garden.mp4")
    for url in ("/", "/static/app.js", "/api/status", f"/media/{clip_id}/proxy.mp4", "/api/nope"):
        res = client.get(url)
        assert "default-src 'self'" in res.headers["content-security-policy"], url
        assert "unsafe-inline" not in res.headers["content-security-policy"]
        assert res.headers["x-content-type-options"] == "nosniff", url


def test_foreign_host_headers_are_refused_when_bound_to_loopback(web_home: WebHome) -> None:
    with TestClient(web_home.app(allowed_hosts=["127.0.0.1", "localhost"]), base_url="http://evil.example") as c:
        assert c.get("/api/clips").status_code == 400
    with TestClient(web_home.app(allowed_hosts=["127.0.0.1"]), base_url="http://127.0.0.1:8765") as c:
        assert c.get("/api/status").status_code == 200


# ----------------------------------------------------------------------------- catalog busy

def test_busy_catalog_falls_back_to_records_and_is_released_for_an_ingest(web_home: WebHome) -> None:
    app = web_home.app(idle_release_s=30.0)  # only a starting ingest may make it let go here
    with TestClient(app) as c:
        assert c.get("/api/search", params={"q": "garden", "mode": "keyword"}).status_code == 200
        access = app.state.access
        assert access.is_open
        clip_id = clip_id_of(c, "garden.mp4")
        with home_lock(web_home.home):  # what an ingest takes first
            deadline = time.monotonic() + 20
            while access.is_open and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not access.is_open
            catalog = Catalog.open(path=web_home.settings.catalog_dir, url=None)  # the ingest's writer can open it
            catalog.close()
            listing = c.get("/api/clips").json()
            assert listing["source"] == "records" and f"pid {os.getpid()}" in listing["notice"]
            assert {x["name"] for x in listing["results"]} >= set(CLIPS)
            detail = c.get(f"/api/clips/{clip_id}").json()
            assert detail["source"] == "records" and detail["record"]["file"]["name"] == "garden.mp4"
            busy = c.get("/api/search", params={"q": "garden"})
            assert busy.status_code == 503 and busy.json()["busy"] is True
            assert c.get(f"/api/clips/{clip_id}/similar").status_code == 503
            assert c.get("/api/status").json()["catalog"]["available"] is False
        assert c.get("/api/search", params={"q": "garden", "mode": "keyword"}).status_code == 200


def test_idle_server_releases_the_catalog_for_other_processes(web_home: WebHome) -> None:
    app = web_home.app(idle_release_s=0.3)
    with TestClient(app) as c:
        assert c.get("/api/clips").json()["source"] == "catalog"
        deadline = time.monotonic() + 20
        while app.state.access.is_open and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not app.state.access.is_open
        Catalog.open(path=web_home.settings.catalog_dir, url=None).close()
