"""Cluster plumbing that needs no cluster: path mapping, URLs, the preflight's per-node check,
what workers inherit, encode choice on cluster totals, the Prefect host."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rayflow.config import Settings, load_settings
from rayflow.engine.placement import PathMap, UnsupportedUrl, local_path, spread_options
from rayflow.engine.preflight import NodeReport, check_paths, explain
from rayflow.engine.resources import ENCODE_SLOT, NVENC, ClusterEncode, cluster_encode, requested_resources
from rayflow.engine.runtime import cluster_host, worker_env
from rayflow.record import ProxyInfo, Thumbnail


def test_shared_prefix_maps_only_on_nodes_without_the_driver_path(tmp_path: Path) -> None:
    worker_root = tmp_path / "mnt" / "footage"
    worker_root.mkdir(parents=True)
    missing_driver = "/Volumes/no-such-share"  # absent here: this process plays a worker
    pmap = PathMap(((missing_driver, str(worker_root)),))
    assert pmap.to_node(f"{missing_driver}/a/b.mov") == f"{worker_root}/a/b.mov"
    assert pmap.to_node(missing_driver) == str(worker_root)
    assert pmap.to_node(f"{missing_driver}-other/x.mov") == f"{missing_driver}-other/x.mov"  # not a prefix match
    assert pmap.to_driver(f"{worker_root}/a/b.mov") == f"{missing_driver}/a/b.mov"
    # A node that has the driver's path itself (the driver's node) keeps every path.
    present = PathMap(((str(tmp_path), "/elsewhere"),))
    assert present.to_node(str(tmp_path / "x.mov")) == str(tmp_path / "x.mov")
    assert not present.active()


def test_outputs_are_written_through_the_map_and_reported_as_driver_paths(tmp_path: Path) -> None:
    driver_out, worker_out = "/Volumes/no-such-share/out", str(tmp_path / "out")
    pmap = PathMap((("/Volumes/no-such-share", str(tmp_path)),))
    settings = Settings(home=tmp_path / "home", output=Path(driver_out))
    assert str(pmap.settings_on_node(settings).clip_dir("c1")) == f"{worker_out}/clips/c1"
    thumbs = [Thumbnail(path=f"{worker_out}/clips/c1/t0.jpg", timestamp_s=0, width=1, height=1, format="jpeg")]
    assert pmap.paths_to_driver(thumbs)[0].path == f"{driver_out}/clips/c1/t0.jpg"
    proxy = ProxyInfo(path=f"{worker_out}/clips/c1/proxy.mp4", encoder="libx264", hardware=False, width=2,
                      height=2, size_bytes=1, audio=False, settings_key="k")
    mapped = pmap.paths_to_driver(proxy)
    assert mapped.path == f"{driver_out}/clips/c1/proxy.mp4" and mapped.encoder == "libx264"


def test_shared_prefix_setting_parses_and_rejects_bad_values() -> None:
    s = load_settings(env={"RAYFLOW_SHARED_PREFIX": "/a/=/b,/c=/d/e"})
    assert s.shared_prefix == (("/a", "/b"), ("/c", "/d/e"))
    with pytest.raises(ValueError, match="DRIVER_PATH=WORKER_PATH"):
        load_settings(env={}, shared_prefix=("/a",))
    with pytest.raises(ValueError, match="absolute"):
        load_settings(env={}, shared_prefix=("a=/b",))
    assert load_settings(env={"RAYFLOW_PREFLIGHT": "0"}).preflight is False


def test_urls(tmp_path: Path) -> None:
    assert local_path(f"file://{tmp_path}/a%20b.mov") == f"{tmp_path}/a b.mov"
    assert local_path("/plain/path.mov") == "/plain/path.mov"
    with pytest.raises(UnsupportedUrl, match="mountpoint-s3"):
        local_path("s3://bucket/footage/")
    with pytest.raises(UnsupportedUrl, match="not host"):
        local_path("file://server/share/x.mov")


def test_preflight_check_names_each_problem(tmp_path: Path) -> None:
    footage = tmp_path / "footage"
    footage.mkdir()
    out = tmp_path / "out"
    problems, mapped = check_paths([str(footage)], str(out), ())
    assert problems == [] and mapped == [] and out.is_dir()
    readonly = tmp_path / "ro"
    readonly.mkdir()
    readonly.chmod(0o500)
    try:
        problems, _ = check_paths([str(tmp_path / "gone")], str(readonly / "sub"), ())
    finally:
        readonly.chmod(0o700)
    assert problems[0] == f"input {tmp_path / 'gone'} is not visible"
    if os.geteuid() != 0:  # root writes anywhere
        assert "output dir" in problems[1] and "not writable" in problems[1]
    # Through a shared prefix the message shows both paths.
    problems, mapped = check_paths(["/Volumes/none/f"], str(out), (("/Volumes/none", str(tmp_path / "nope")),))
    assert mapped == [f"/Volumes/none/f -> {tmp_path / 'nope'}/f"]
    assert problems == [f"input /Volumes/none/f (here {tmp_path / 'nope'}/f) is not visible"]
    text = explain([NodeReport("abcdef1234", "10.0.0.5", "ip-10-0-0-5", tuple(problems))],
                   [{"NodeID": "abcdef1234", "Resources": {"CPU": 16.0, "rayflow_encode": 8.0}}],
                   (("/Volumes/none", str(tmp_path / "nope")),))
    assert "on node 10.0.0.5 (ip-10-0-0-5, id abcdef12, CPU 16, rayflow_encode 8)" in text
    assert "--shared-prefix" in text and "/Volumes/none=" in text


def test_workers_get_the_runs_settings_and_the_one_prefect_api(tmp_path: Path) -> None:
    env = worker_env("http://10.0.0.1:4200/api", home=tmp_path, environ={
        "RAYFLOW_MODELS_DIR": "/models", "RAYFLOW_TEXT_MODEL": "/m/t", "PREFECT_API_KEY": "k",
        "HOME": "/root", "PATH": "/bin", "RAYFLOW_EMPTY": ""})
    assert env["PREFECT_API_URL"] == "http://10.0.0.1:4200/api"
    assert env["RAYFLOW_MODELS_DIR"] == "/models" and env["RAYFLOW_TEXT_MODEL"] == "/m/t"
    assert env["RAYFLOW_HOME"] == str(tmp_path) and env["PREFECT_API_KEY"] == "k"
    assert env["HF_HUB_OFFLINE"] == "1"  # offline on every node
    assert "HOME" not in env and "PATH" not in env and "RAYFLOW_EMPTY" not in env


def test_encode_choice_on_cluster_totals_prefers_nvenc_then_cpu_slots() -> None:
    assert cluster_encode({"CPU": 4}) is None
    enc = cluster_encode({"CPU": 32, NVENC: 2, ENCODE_SLOT: 1})
    assert isinstance(enc, ClusterEncode)
    kinds = [requested_resources(enc.task_options())[0] for _ in range(5)]
    assert kinds[:3] == [NVENC, NVENC, ENCODE_SLOT]
    enc.done({"resources": {NVENC: 1}})
    assert requested_resources(enc.task_options()) == [NVENC]
    settings = Settings()
    cpu_only = enc.settings_for({"resources": {ENCODE_SLOT: 1}}, settings)
    assert cpu_only.proxy.encoders == ("libx264",)
    assert enc.settings_for({"resources": {NVENC: 1}}, settings) is settings
    # Options without custom resources (the flow's default {"num_cpus": 1}) ask for none.
    assert requested_resources({"num_cpus": 1}) == [] and requested_resources({"resources": None}) == []
    before = dict(enc.in_flight)
    enc.done({"num_cpus": 1})
    assert enc.in_flight == before
    only_cpu = cluster_encode({ENCODE_SLOT: 3})
    assert only_cpu is not None and not only_cpu.hardware
    assert {requested_resources(only_cpu.task_options())[0] for _ in range(6)} == {ENCODE_SLOT}


def test_spread_only_on_more_than_one_node_and_prefect_host() -> None:
    assert spread_options(1) == {} and spread_options(3) == {"scheduling_strategy": "SPREAD"}
    assert cluster_host(None) == "127.0.0.1"
    assert cluster_host("127.0.0.1:6379") == "127.0.0.1"
    assert cluster_host("ray://localhost:10001") == "127.0.0.1"
    # A head elsewhere: the API listens on this machine's address towards it (here: an address of
    # one of this machine's own interfaces, which routes to itself).
    import psutil

    own = [a.address for addrs in psutil.net_if_addrs().values() for a in addrs
           if a.family.name == "AF_INET" and not a.address.startswith("127.")]
    if own:
        assert cluster_host(f"{own[0]}:6379") == own[0]


def test_ray_client_needs_a_reachable_catalog_and_prefect_api(tmp_path: Path) -> None:
    from rayflow.engine.session import ClusterSetupError, _check_cluster_settings

    with pytest.raises(ClusterSetupError, match="--qdrant-url"):
        _check_cluster_settings(Settings(home=tmp_path, address="ray://head:10001"))
    _check_cluster_settings(Settings(home=tmp_path, address="ray://head:10001", qdrant_url="http://q:6333",
                                     prefect_api_url="http://p:4200/api"))
    _check_cluster_settings(Settings(home=tmp_path, address="auto"))  # on a node: nothing to refuse


def test_encode_kinds_follow_node_loss() -> None:
    enc = cluster_encode({NVENC: 1, ENCODE_SLOT: 2})
    assert enc is not None
    enc.refresh({NVENC: 1, ENCODE_SLOT: 2}, now=0.0)
    assert enc.stranded(100.0, grace_s=5) == set()
    enc.refresh({ENCODE_SLOT: 2}, now=10.0)  # the NVENC node is gone
    assert enc.stranded(12.0, grace_s=5) == set()  # not yet: an autoscaler may bring it back
    assert enc.stranded(15.0, grace_s=5) == {NVENC}
    assert enc.can_encode()
    assert {requested_resources(enc.task_options())[0] for _ in range(4)} == {ENCODE_SLOT}
    enc.refresh({NVENC: 1, ENCODE_SLOT: 2}, now=20.0)  # back
    assert enc.stranded(30.0, grace_s=5) == set()
    enc.refresh({}, now=40.0)
    assert not enc.can_encode() and enc.stranded(50.0, grace_s=5) == {NVENC, ENCODE_SLOT}
