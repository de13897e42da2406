"""Stills that ffprobe cannot open (HEIC/HEIF before ffmpeg 7, some RAW): facts from exiftool alone.

ffprobe 5/6 has no HEIF demuxer and reports an iPhone ``.HEIC`` as a truncated MP4
("moov atom not found"). exiftool reads it completely: when it names the file an
image (``File:MIMEType`` image/*) with a picture size, the still is catalogued from
exiftool's facts, and ffprobe's failure is kept as a warning. Anything else keeps
ffprobe's error.
"""

from __future__ import annotations

from rayflow.media.exiftool import ExiftoolOutput
from rayflow.media.parse import integer
from rayflow.record import ContainerInfo, VideoInfo

_ORIENTATION_CW = {1: 0, 3: 180, 6: 90, 8: 270, 2: 0, 4: 180, 5: 90, 7: 270}


def exiftool_still(ex: ExiftoolOutput) -> tuple[ContainerInfo, VideoInfo] | None:
    """Container and picture facts of a still from exiftool's tags; None unless it is an image."""
    main = ex.main
    if not str(main.get("File:MIMEType") or "").startswith("image/"):
        return None
    width = integer(main.get("File:ImageWidth")) or integer(main.get("EXIF:ImageWidth"))
    height = integer(main.get("File:ImageHeight")) or integer(main.get("EXIF:ImageHeight"))
    if not width or not height:
        return None
    rotation = integer(main.get("QuickTime:Rotation"))
    if rotation is None:
        rotation = _ORIENTATION_CW.get(integer(main.get("IFD0:Orientation")) or 1, 0)
    rotation = rotation % 360 if rotation in (0, 90, 180, 270) else 0
    display_w, display_h = (height, width) if rotation in (90, 270) else (width, height)
    file_type = str(main.get("File:FileType") or "").lower() or None
    container = ContainerInfo.model_validate({"format": file_type, "format_long": main.get("File:MIMEType")})
    video = VideoInfo.model_validate({
        "codec": file_type, "width": width, "height": height, "display_width": display_w,
        "display_height": display_h, "rotation": rotation, "frame_count": 1})
    return container, video
