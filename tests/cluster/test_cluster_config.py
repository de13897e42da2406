"""ray_cluster.yaml is a launchable config: Ray's own schema and its ``ray up`` preparation
accept it (everything short of calling the cloud), and its resources agree with the code
that schedules on them."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import ray.autoscaler
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from rayflow import __version__
from rayflow.engine.resources import ENCODE_SLOT, NVENC
from rayflow.media.encoders import nvenc_session_capacity

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "ray_cluster.yaml"
SCHEMA = Path(ray.autoscaler.__file__).parent / "ray-schema.json"

#: The GPU each GPU instance family in the config carries (AWS: g6 = L4, p5 = H100).
GPU_OF_FAMILY = {"g6": "NVIDIA L4", "p5": "NVIDIA H100 80GB HBM3"}


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return dict(yaml.safe_load(CONFIG.read_text()))


def test_it_validates_against_rays_cluster_schema(config: dict[str, Any]) -> None:
    jsonschema.validate(config, json.loads(SCHEMA.read_text()))


def test_schema_check_is_not_vacuous(config: dict[str, Any]) -> None:
    # The same validation rejects a misspelt top-level key and a bad node type field.
    schema = json.loads(SCHEMA.read_text())
    bad = copy.deepcopy(config)
    bad["setup_comands"] = []
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    bad = copy.deepcopy(config)
    bad["available_node_types"]["cpu_worker"]["min_worker"] = 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_ray_up_preparation_accepts_it(config: dict[str, Any]) -> None:
    """What ``ray up`` does before it talks to the cloud: merge provider defaults, then validate
    (head type, global max_workers >= sum of min_workers, synced files)."""
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    assert prepared["head_node_type"] == "head"
    assert prepared["available_node_types"]["head"]["max_workers"] == 0


def test_node_types_and_their_resources_match_what_rayflow_schedules_on(config: dict[str, Any]) -> None:
    types = config["available_node_types"]
    assert {"head", "cpu_worker", "gpu_l4", "gpu_h100"} <= set(types)
    assert types["head"]["resources"].get("CPU") == 0  # the driver's node runs no per-file task
    for name, spec in types.items():
        resources = spec["resources"]
        assert set(resources) <= {"CPU", "GPU", NVENC, ENCODE_SLOT}, name
        family = spec["node_config"]["InstanceType"].split(".")[0]
        gpu = GPU_OF_FAMILY.get(family)
        if gpu is None:
            assert "GPU" not in resources and NVENC not in resources, name
            continue
        assert resources.get("GPU", 0) >= 1, name
        # NVENC sessions only where the GPU has NVENC, as many as rayflow would detect there.
        assert resources.get(NVENC, 0) == nvenc_session_capacity(gpu), (name, gpu)
    assert types["gpu_l4"]["resources"][NVENC] > 0 and NVENC not in types["gpu_h100"]["resources"]
    assert types["cpu_worker"]["resources"][ENCODE_SLOT] > 0


def test_setup_installs_the_tools_and_a_pinned_rayflow(config: dict[str, Any]) -> None:
    setup = "\n".join(config["setup_commands"])
    for package in ("ffmpeg", "mediainfo", "libimage-exiftool-perl", "espeak-ng", "python3.11"):
        assert re.search(rf"\b{re.escape(package)}\b", setup), package
    # This version's wheel, installed under the torch pin.
    assert f"rayflow-{__version__}-py3-none-any.whl" in setup
    assert "-c ~/rayflow/src/constraints.txt" in setup
    assert (ROOT / "constraints.txt").is_file()
    assert "torch==2.13.0" in (ROOT / "constraints.txt").read_text()
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        assert any("~/rayflow-venv/bin/ray start" in c for c in config[key]), key
    assert config["file_mounts"] == {"~/rayflow/src": "."}


def test_every_node_mounts_the_shared_storage(config: dict[str, Any]) -> None:
    setup = "\n".join(config["setup_commands"])
    assert "mount -t nfs4" in setup and "/mnt/shared" in setup
    assert not config.get("head_setup_commands") and not config.get("worker_setup_commands")
