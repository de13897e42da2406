"""Before the first file on a cluster: can every node see the inputs and write the output?

Local paths must exist on the node that reads them. On one machine they always do;
on a cluster a worker without the shared mount would fail every file it touches, one
by one, with "file vanished". ``check_nodes`` runs one tiny Ray task pinned to each
alive node (``num_cpus=0``, so busy nodes answer at once) that looks at the input roots
and writes a probe file into the output dir, both through the node's ``PathMap``, and
``PreflightError`` names each node that cannot, with the fix.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rayflow.engine.placement import PathMap

log = logging.getLogger(__name__)


class PreflightError(RuntimeError):
    """Some node cannot read an input root or write the output dir."""


@dataclass(frozen=True)
class NodeReport:
    """What one node saw."""

    node_id: str
    node_ip: str
    hostname: str
    problems: tuple[str, ...] = ()
    mapped: tuple[str, ...] = field(default=())
    """Paths this node used through --shared-prefix (driver path -> node path)."""


def check_paths(inputs: list[str], output_dir: str, pairs: tuple[tuple[str, str], ...]) -> tuple[list[str], list[str]]:
    """(problems, mapped notes) for this node: inputs readable, output dir writable (pure, no Ray)."""
    pmap = PathMap(pairs)
    problems: list[str] = []
    mapped: list[str] = []
    for arg in inputs:
        path = pmap.to_node(arg)
        if path != arg:
            mapped.append(f"{arg} -> {path}")
        shown = arg if path == arg else f"{arg} (here {path})"
        if not os.path.lexists(path):
            problems.append(f"input {shown} is not visible")
        elif not os.access(path, os.R_OK):
            problems.append(f"input {shown} is not readable")
    out = pmap.to_node(output_dir)
    shown = output_dir if out == output_dir else f"{output_dir} (here {out})"
    try:
        Path(out).mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".rayflow-preflight-", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        problems.append(f"output dir {shown} is not writable ({exc.strerror or exc})")
    return problems, mapped


def _node_check(inputs: list[str], output_dir: str, pairs: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    import ray

    problems, mapped = check_paths(inputs, output_dir, pairs)
    return {"node_id": ray.get_runtime_context().get_node_id(), "node_ip": ray.util.get_node_ip_address(),
            "hostname": socket.gethostname(), "problems": problems, "mapped": mapped}


def check_nodes(inputs: list[str], output_dir: str, pairs: tuple[tuple[str, str], ...], *,
                timeout_s: float = 120.0) -> list[NodeReport]:
    """Run the check on every alive node; raise ``PreflightError`` naming the nodes that fail."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    remote = ray.remote(_node_check)
    refs = {}
    for node in nodes:
        strategy = NodeAffinitySchedulingStrategy(node_id=node["NodeID"], soft=False)
        refs[node["NodeID"]] = remote.options(num_cpus=0, scheduling_strategy=strategy, max_retries=0).remote(
            inputs, output_dir, pairs)
    ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=timeout_s)
    reports: list[NodeReport] = []
    for node in nodes:
        ref = refs[node["NodeID"]]
        ip = str(node.get("NodeManagerAddress", "?"))
        if ref not in ready:
            reports.append(NodeReport(node["NodeID"], ip, str(node.get("NodeManagerHostname", "?")),
                                      (f"did not answer the preflight check within {timeout_s:g} s",)))
            continue
        try:
            got = ray.get(ref)
        except ray.exceptions.RayError as exc:
            reports.append(NodeReport(node["NodeID"], ip, str(node.get("NodeManagerHostname", "?")),
                                      (f"preflight task failed: {exc}",)))
            continue
        reports.append(NodeReport(got["node_id"], got["node_ip"], got["hostname"], tuple(got["problems"]),
                                  tuple(got["mapped"])))
    bad = [r for r in reports if r.problems]
    if bad:
        raise PreflightError(explain(bad, nodes, pairs))
    for r in reports:
        if r.mapped:
            log.info("node %s (%s) uses %s", r.node_ip, r.hostname, "; ".join(r.mapped))
    return reports


def _describe_node(report: NodeReport, nodes: list[dict[str, Any]]) -> str:
    info = next((n for n in nodes if n["NodeID"] == report.node_id), {})
    res = info.get("Resources", {})
    kind = ", ".join(f"{k} {v:g}" for k, v in sorted(res.items())
                     if k in ("CPU", "GPU", "nvenc", "rayflow_encode") and v)
    return f"node {report.node_ip} ({report.hostname}, id {report.node_id[:8]}{', ' + kind if kind else ''})"


def explain(bad: list[NodeReport], nodes: list[dict[str, Any]], pairs: tuple[tuple[str, str], ...]) -> str:
    """The user-facing message: each node, each problem, and the fixes."""
    lines = [f"{len(bad)} of {len(nodes)} Ray node(s) cannot reach this run's files:"]
    for report in bad:
        for problem in report.problems:
            lines.append(f"  {problem} on {_describe_node(report, nodes)}")
    hint = ("mount the shared filesystem at the same path on every node, or pass --shared-prefix "
            "DRIVER_PATH=WORKER_PATH when workers mount it elsewhere")
    if pairs:
        hint += f" (current: {', '.join(f'{d}={w}' for d, w in pairs)})"
    lines.append(f"Fix: {hint}; object storage (s3://, gs://) must be mounted too. "
                 "--no-preflight skips this check.")
    return "\n".join(lines)
