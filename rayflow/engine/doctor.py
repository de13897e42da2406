"""``rayflow doctor``: is everything rayflow needs present and reachable?

Each check is data (name, ok, required, detail, fix) so the CLI renders a table
and exits non-zero when a required check fails.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from rayflow.config import Settings
from rayflow.engine import runtime
from rayflow.media.tools import ToolError, ToolMissing, run_tool


@dataclass(frozen=True)
class Check:
    group: str
    name: str
    ok: bool
    required: bool
    detail: str
    fix: str = ""


_SETUP_FIX = "run scripts/setup.sh (installs it with apt-get / pip)"

TOOLS: dict[str, tuple[list[str], str]] = {
    "ffmpeg": (["ffmpeg", "-hide_banner", "-version"], r"ffmpeg version (\S+)"),
    "ffprobe": (["ffprobe", "-hide_banner", "-version"], r"ffprobe version (\S+)"),
    "mediainfo": (["mediainfo", "--Version"], r"v(\d[\d.]*)"),
    "exiftool": (["exiftool", "-ver"], r"(\d[\d.]*)"),
}
APT_PACKAGE = {"ffmpeg": "ffmpeg", "ffprobe": "ffmpeg", "mediainfo": "mediainfo",
               "exiftool": "libimage-exiftool-perl"}

PACKAGES: dict[str, tuple[str, bool]] = {
    # import name -> (distribution, required)
    "ray": ("ray", True),
    "prefect": ("prefect", True),
    "prefect_ray": ("prefect-ray", True),
    "qdrant_client": ("qdrant-client", True),
    "decord": ("decord", True),
    "blake3": ("blake3", True),
    "numpy": ("numpy", True),
    "PIL": ("pillow", True),
    "pydantic": ("pydantic", True),
    "pynvml": ("nvidia-ml-py", True),
    "starlette": ("starlette", False),  # rayflow serve only (ingest does not need it)
    "uvicorn": ("uvicorn", False),
}


def tool_version(tool: str) -> str:
    argv, pattern = TOOLS[tool]
    out = run_tool(argv, timeout_s=20)
    match = re.search(pattern, out.text)
    return match.group(1) if match else out.text.strip().splitlines()[0][:40]


def check_tool(tool: str) -> Check:
    try:
        return Check("tools", tool, True, True, tool_version(tool))
    except (ToolMissing, ToolError) as exc:
        return Check("tools", tool, False, True, str(exc),
                     f"apt-get install {APT_PACKAGE[tool]}  (or {_SETUP_FIX})")


def check_tools() -> list[Check]:
    """Each tool's version, asked side by side (each is a subprocess, mostly start-up)."""
    with ThreadPoolExecutor(max_workers=len(TOOLS)) as pool:
        return list(pool.map(check_tool, TOOLS))


def check_packages() -> list[Check]:
    """Each package is found on the path and has its distribution's metadata. Nothing is
    imported: ray, prefect and qdrant_client alone cost ~5 s of CPU (issue #15)."""
    checks = []
    for module, (dist, required) in PACKAGES.items():
        try:
            if importlib.util.find_spec(module) is None:
                raise ModuleNotFoundError(f"No module named {module!r}")
            version = importlib.metadata.version(dist)
            checks.append(Check("python", dist, True, required, version))
        except Exception as exc:  # not installed, or a module without its distribution's metadata
            checks.append(Check("python", dist, False, required, f"cannot import: {exc}",
                                f"pip install -c constraints.txt {dist}  (or {_SETUP_FIX})"))
    return checks


def _loopback(host: str | None) -> bool:
    return host is not None and (host in ("localhost", "::1") or host.startswith("127."))


def _endpoint_warning(url: str, *, has_key: bool) -> str:
    parsed = urllib.parse.urlparse(url)
    notes = []
    loopback = _loopback(parsed.hostname)
    if parsed.scheme == "http" and not loopback:
        notes.append("plain HTTP to a remote host (traffic and any key readable on the network)")
    if not has_key and not loopback:
        notes.append("no API key set (anyone who reaches it can read and change it)")
    return "; ".join(notes)


def _ray_warning(address: str) -> str:
    """Ray Client (``ray://``) and GCS addresses speak gRPC: TLS only with RAY_USE_TLS=1,
    authentication only with token mode (RAY_AUTH_MODE=token or a token available)."""
    target = address.removeprefix("ray://")
    if target == "auto":
        return ""
    host = target.rsplit(":", 1)[0].strip("[]") if ":" in target else target
    if _loopback(host):
        return ""
    notes = []
    if os.environ.get("RAY_USE_TLS", "0").lower() not in ("1", "true"):
        notes.append("unencrypted gRPC to a remote host (set RAY_USE_TLS=1 with certificates)")
    token = (os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
             or (Path.home() / ".ray" / "auth_token").is_file())
    if os.environ.get("RAY_AUTH_MODE") == "disabled" or not token:
        notes.append("no Ray auth token (anyone who reaches the cluster can run code on it)")
    return "; ".join(notes)


def check_endpoints(settings: Settings) -> list[Check]:
    """One row per configured remote endpoint: 'warn' when it is plain HTTP/gRPC to a
    non-loopback host or unauthenticated. Nothing is contacted here."""
    rows: list[tuple[str, str, str]] = []
    if settings.qdrant_url:
        rows.append(("qdrant_url", settings.qdrant_url,
                     _endpoint_warning(settings.qdrant_url, has_key=bool(settings.qdrant_api_key))))
    if settings.prefect_api_url:
        rows.append(("prefect_api_url", settings.prefect_api_url,
                     _endpoint_warning(settings.prefect_api_url,
                                       has_key=bool(os.environ.get("PREFECT_API_KEY")))))
    if settings.address:
        rows.append(("ray address", settings.address, _ray_warning(settings.address)))
    fixes = {"qdrant_url": "use https:// and set RAYFLOW_QDRANT_API_KEY",
             "prefect_api_url": "use https:// and set PREFECT_API_KEY (or keep the API on loopback)",
             "ray address": "RAY_USE_TLS=1 and a Ray auth token, or reach the cluster over a VPN/SSH tunnel"}
    return [Check("security", name, not warn, False, f"{url}: {warn or 'ok'}", fixes[name] if warn else "")
            for name, url, warn in rows]


def check_services(settings: Settings) -> list[Check]:
    checks = []
    if settings.prefect_api_url:
        ok = runtime.api_healthy(settings.prefect_api_url, timeout_s=5)
        warn = _endpoint_warning(settings.prefect_api_url, has_key=False)
        checks.append(Check("services", "prefect api", ok, True,
                            f"{settings.prefect_api_url} {'answers' if ok else 'does not answer'}"
                            + (f" (warning: {warn})" if warn else ""),
                            "" if ok else "start it, or unset PREFECT_API_URL to use the local server"))
    else:
        running = runtime.running_server(settings.home)
        detail = (f"long-lived local server at {running.url}" if running else
                  "local server under the home, started per run (rayflow server start keeps one up)")
        checks.append(Check("services", "prefect api", True, True, detail))
    if settings.address:
        checks.append(Check("services", "ray", True, True,
                            f"cluster at {settings.address} (joined at ingest; not probed here)"))
    else:
        from rayflow.engine import service

        svc = service.running(settings.home)
        checks.append(Check("services", "ray", True, True,
                            f"the home's service at {svc.address} (rayflow server start; ingest attaches)"
                            if svc else f"embedded on 127.0.0.1, temp dir {runtime.ray_temp_dir(settings.home)}"))
    if settings.qdrant_url:
        try:
            from qdrant_client import QdrantClient

            QdrantClient(url=settings.qdrant_url, api_key=settings.qdrant_api_key,
                         timeout=5).get_collections()
            ok, detail = True, f"{settings.qdrant_url} answers"
        except Exception as exc:
            ok, detail = False, f"{settings.qdrant_url}: {exc}"
        warn = _endpoint_warning(settings.qdrant_url, has_key=bool(settings.qdrant_api_key))
        checks.append(Check("services", "qdrant", ok, True,
                            detail + (f" (warning: {warn})" if warn else ""),
                            "" if ok else "start the server or drop --qdrant-url"))
    else:
        checks.append(Check("services", "qdrant", True, True,
                            f"embedded local mode at {settings.catalog_dir}"))
    return checks


def check_gpus(settings: Settings) -> list[Check]:
    from rayflow.media.encoders import detect_encoders, list_gpus

    gpus, why = list_gpus()
    checks = [Check("gpu", "nvml", True, False,
                    ", ".join(gpus) if gpus else f"no GPU: {why}; CPU paths are used"),
              *check_gpu_roles(has_gpu=bool(gpus))]
    try:
        plan = detect_encoders(settings.proxy.encoders, timeout_s=60)
    except ToolMissing as exc:
        checks.append(Check("gpu", "encoder", False, True, f"cannot detect encoders: {exc}",
                            "apt-get install ffmpeg  (or run scripts/setup.sh)"))
        return checks
    chosen = plan.encoders[0] if plan.encoders else None
    rejected = "; ".join(f"{name}: {reason}" for name, reason in plan.rejected)
    detail = f"proxies use {chosen} ({'GPU' if plan.hardware else 'CPU'})" if chosen else "no usable encoder"
    if rejected:
        detail += f" — not used: {rejected}"
    checks.append(Check("gpu", "encoder", chosen is not None, True, detail,
                        "" if chosen else "install an ffmpeg with libx264 (apt-get install ffmpeg)"))
    return checks


def check_gpu_roles(*, has_gpu: bool) -> list[Check]:
    """Which install set is here (CPU or CUDA torch and libraries) and, per role, whether it
    can use the GPU. On a GPU node a role that cannot is a warning naming the missing piece."""
    from rayflow.ml.gpu_support import install_set, role_support, torch_build

    chosen = install_set()
    fix = "scripts/setup.sh on a GPU node installs the gpu extra (RAYFLOW_TORCH=cuda)"
    checks = [Check("gpu", "install set", not has_gpu or chosen == "cuda", False,
                    f"{chosen} (torch {torch_build()})", "" if not has_gpu or chosen == "cuda" else fix)]
    for role in role_support():
        detail = f"{'GPU' if role.usable else 'CPU'}: {role.detail}"
        checks.append(Check("gpu", f"role {role.role}", role.usable or not has_gpu, False, detail,
                            "" if role.usable or not has_gpu else f"needs {role.library}: {fix}"))
    return checks


def check_models(settings: Settings) -> list[Check]:
    from rayflow.ml.registry import locations

    checks = []
    for r in locations(settings):
        optional = r.role in ("image_text_embedding", "captioning")
        checks.append(Check("models", r.role, r.present or optional, not optional,
                            f"{r.model} ({r.source}): {r.detail}",
                            "" if r.present or optional else "reinstall: scripts/setup.sh"))
    return checks


def run_checks(settings: Settings) -> list[Check]:
    """Every check, in the table's order. The groups run side by side on threads: they mostly
    wait on subprocesses (tool versions, trial encodes) and files, not on the CPU."""
    groups: list[Callable[[], list[Check]]] = [
        check_tools, check_packages, partial(check_services, settings), partial(check_endpoints, settings),
        partial(check_gpus, settings), partial(check_models, settings)]
    with ThreadPoolExecutor(max_workers=len(groups)) as pool:
        futures = [pool.submit(group) for group in groups]
        return [check for future in futures for check in future.result()]
