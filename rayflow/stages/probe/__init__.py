"""Probe stage: every technical fact of one media file, from ffprobe, mediainfo and exiftool.

Each tool runs exactly once per file. ffprobe and mediainfo start together;
exiftool starts as soon as ffprobe has answered, because whether it reads
embedded telemetry (``-ee``, whose cost grows with duration) depends on the
clip's duration and tracks. On this project's 2-core box a whole probe takes
0.15-0.4 s per file (0.36 s for 10 s of GoPro footage with telemetry).

Precedence (first source that knows wins; unknown stays ``None``):

- **Structure** (streams, codecs, profile, pix_fmt, sizes, SAR/DAR, frame
  rates, durations, bitrates, colour tags, dispositions, languages, titles,
  container tags): ffprobe. mediainfo fills what ffprobe leaves empty
  (Matroska stream durations, frame counts and bitrates, level names for
  codecs without a numeric table, chroma/bit depth when the pixel format does
  not say).
- **Bit depth / chroma**: ffprobe's bits_per_raw_sample, then the pixel
  format, then mediainfo.
- **Scan type / field order**: ffprobe field_order, then mediainfo
  ScanType/ScanOrder (MBAFF and PAFF count as interlaced).
- **Rotation**: ffprobe display matrix (its sign is counter-clockwise; the
  record stores clockwise), then mediainfo Rotation, then exiftool
  Composite:Rotation (both clockwise), then EXIF Orientation (photos).
- **GOP**: the first ``PACKET_WINDOW`` demuxed packets (median spacing of
  keyframe flags), then mediainfo Format_Settings_GOP ``N=``.
- **CFR/VFR**: packet timing in the same window (VFR when more than 2 % of frame
  intervals differ from the median by more than one tick), then mediainfo
  FrameRate_Mode, then r_frame_rate vs avg_frame_rate. A single odd frame (an
  iPhone's last frame) does not make a clip VFR.
- **HDR**: Dolby Vision (DOVI side data, dvh1/dav1 tags, or mediainfo) >
  HDR10+ (mediainfo SMPTE ST 2094 App 4) > HDR10 (PQ transfer) > HLG
  (arib-std-b67). Mastering display and MaxCLL/MaxFALL from container side
  data, then mediainfo (which reads the SEI without decoding).
- **Camera, exposure, GPS, capture time**: exiftool (EXIF > XMP > QuickTime
  Keys > UserData/ItemList > maker groups such as GoPro), then ffprobe's
  container tags (``com.apple.quicktime.*``, ISO 6709 ``location``), then
  exiftool's first embedded telemetry sample (GoPro GPMF).
- **Capture time**: Apple creationdate (has an offset) > EXIF DateTimeOriginal
  (+ OffsetTimeOriginal) > XMP dates > EXIF CreateDate > QuickTime/Matroska
  creation time (UTC by spec; GoPro writes local time there) > mediainfo dates.
  A local time without offset becomes timezone-aware only when a GPS UTC time in
  the same file fixes the offset (within 2 minutes of a 15-minute step).
  1904/1970 zero dates are placeholders and give ``None``.
"""

from rayflow.stages.probe.camera import focal_category
from rayflow.stages.probe.capture import parse_iso6709
from rayflow.stages.probe.run import EMBEDDED_MAX_DURATION_S, ProbeResult, ProbeStage, consolidate, probe

__all__ = ["EMBEDDED_MAX_DURATION_S", "ProbeResult", "ProbeStage", "consolidate", "focal_category",
           "parse_iso6709", "probe"]
