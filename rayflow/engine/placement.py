"""Where work runs on a Ray cluster, and which paths a node reads and writes.

* ``node_placement(stage)`` names the Ray node a stage ran on (node id, IP, hostname);
  the flow stores it in ``ClipRecord.placement`` so placement is observable.
* ``PathMap`` maps driver paths to worker paths for a shared filesystem mounted at a
  different prefix on the workers (``--shared-prefix /Volumes/footage=/mnt/footage``).
  The mapping applies per node: a node that has the driver prefix itself (the driver's
  own node, or workers that mount the share at the same path) keeps the paths as they
  are; a node without it uses the worker prefix. Records keep the driver's paths.
* ``spread_options(nodes)``: per-file CPU tasks use Ray's SPREAD strategy on a cluster
  of more than one node, so one node's slots are not filled before the others get any;
  on one node it changes nothing, so the default strategy (locality-aware) is kept.
* ``local_path(arg)``: ``file://`` URLs become paths; other fsspec-style URLs (s3://,
  gs://, ...) are refused with what to do instead (mount them; see ``UnsupportedUrl``).

Pure Python except ``node_placement`` (which reads Ray's runtime context).
"""

from __future__ import annotations

import dataclasses
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import unquote, urlparse

from pydantic import BaseModel

from rayflow.config import Settings
from rayflow.record import StagePlacement

T = TypeVar("T")


class UnsupportedUrl(ValueError):
    """An input or output given as a URL rayflow cannot read directly."""


def local_path(arg: str) -> str:
    """A path for a command-line argument: ``file://`` URLs are decoded, plain paths pass.

    Object-store URLs are refused, not faked: every stage (hashing, ffprobe, decoding,
    encoding) reads the file by path, several times and on different nodes, so a staged
    download per stage would move the footage over the network several times over.
    """
    if "://" not in arg:
        return arg
    url = urlparse(arg)
    if url.scheme == "file":
        if url.netloc not in ("", "localhost"):
            raise UnsupportedUrl(f"{arg}: file:// URLs name a local path (file:///abs/path), not host {url.netloc!r}")
        return unquote(url.path)
    raise UnsupportedUrl(
        f"{arg}: {url.scheme}:// inputs are not read directly. Mount the bucket on every node "
        "(e.g. mountpoint-s3, s3fs-fuse, gcsfuse, blobfuse2) and pass the mounted path, with "
        "--shared-prefix DRIVER=WORKER when the mount point differs between the driver and the workers"
    )


def _under(path: str, prefix: str) -> bool:
    return prefix == "/" or path == prefix or path.startswith(prefix + "/")


def _swap(path: str, old: str, new: str) -> str:
    rest = path[len(old):] if old != "/" else path
    return (new.rstrip("/") + "/" + rest.lstrip("/")).rstrip("/") if rest.strip("/") else new


@dataclass(frozen=True)
class PathMap:
    """Driver prefix -> worker prefix pairs, resolved on the node that uses them."""

    pairs: tuple[tuple[str, str], ...] = ()

    def active(self) -> tuple[tuple[str, str], ...]:
        """The pairs that apply on this node: those whose driver prefix this node lacks."""
        return tuple((d, w) for d, w in self.pairs if not os.path.exists(d))

    def to_node(self, path: str) -> str:
        """The path this node should use for a driver ``path``."""
        for driver, worker in self.active():
            if _under(path, driver):
                return _swap(path, driver, worker)
        return path

    def to_driver(self, path: str) -> str:
        """The driver's path for a path this node produced (inverse of ``to_node``)."""
        for driver, worker in self.active():
            if _under(path, worker):
                return _swap(path, worker, driver)
        return path

    def settings_on_node(self, settings: Settings) -> Settings:
        """Settings whose output dir is this node's view of the driver's output dir."""
        if not self.active():
            return settings
        return dataclasses.replace(settings, output=Path(self.to_node(str(settings.output_dir))))

    def paths_to_driver(self, value: T) -> T:
        """Map every ``path`` field of a pydantic model (or list of them) back to driver paths."""
        if not self.active() or value is None:
            return value
        if isinstance(value, list):
            return cast(T, [self.paths_to_driver(v) for v in value])
        if isinstance(value, BaseModel):
            data = _map_path_keys(value.model_dump(), self.to_driver)
            return cast(T, type(value).model_validate(data))
        return value


def _map_path_keys(data: Any, fn: Any) -> Any:
    if isinstance(data, dict):
        return {k: fn(v) if k == "path" and isinstance(v, str) else _map_path_keys(v, fn) for k, v in data.items()}
    if isinstance(data, list):
        return [_map_path_keys(v, fn) for v in data]
    return data


def path_map(settings: Settings) -> PathMap:
    return PathMap(tuple(settings.shared_prefix))


def node_placement(stage: str) -> StagePlacement:
    """This process's Ray node for ``stage`` (call inside a Ray task or actor)."""
    import ray

    context = ray.get_runtime_context()
    ip = None
    try:
        ip = ray.util.get_node_ip_address()
    except Exception:  # informational only
        ip = None
    return StagePlacement(stage=stage, node_id=context.get_node_id(), node_ip=ip, hostname=socket.gethostname())


def spread_options(alive_nodes: int) -> dict[str, Any]:
    """Ray options for per-file CPU tasks: SPREAD across nodes when there is more than one."""
    return {"scheduling_strategy": "SPREAD"} if alive_nodes > 1 else {}
