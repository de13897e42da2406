"""Camera, lens and exposure facts from exiftool tags, ffprobe Apple keys and telemetry."""

from __future__ import annotations

from typing import Any

from rayflow.media.exiftool import ExiftoolOutput
from rayflow.media.ffprobe import FfprobeOutput
from rayflow.media.parse import (
    median,
    positive,
    present,
    str_only,
    text,
)
from rayflow.record import (
    CameraInfo,
    FocalCategory,
)


class Tags:
    """Lookups over exiftool's main-document tags, ffprobe container tags and telemetry."""

    _SKIP_GROUPS = ("System", "File", "ExifTool", "Track")

    def __init__(self, ex: ExiftoolOutput | None, ff: FfprobeOutput) -> None:
        self.main = ex.main if ex else {}
        self.printed = ex.printed if ex else {}
        self.docs = ex.embedded if ex else {}
        self.ff = {str(k).lower(): v for k, v in (ff.format.get("tags") or {}).items()}
        self.groups = {k.split(":", 1)[0] for k in self.main if ":" in k}

    def ex(self, *keys: str) -> Any:
        """First present value (as a number where exiftool has one) for "Group:Tag" keys;
        "*:Tag" matches any camera-ish group."""
        found = self._find(keys)
        return found[1] if found else None

    def name(self, *keys: str) -> Any:
        """Like ``ex`` but the printed form: a tag whose number is a code (AVCHD
        ``H264:Make`` 4113, EXIF WhiteBalance 0, a maker lens id) gives its printed name."""
        found = self._find(keys)
        return self.printed.get(found[0], found[1]) if found else None

    def _find(self, keys: tuple[str, ...]) -> tuple[str, Any] | None:
        for key in keys:
            group, _, name = key.partition(":")
            if group != "*":
                value = self.main.get(key)
                if present(value):
                    return key, value
                continue
            for full, value in self.main.items():
                g, _, n = full.partition(":")
                if n == name and not g.startswith(self._SKIP_GROUPS) and present(value):
                    return full, value
        return None

    def ffprobe(self, *names: str) -> str | None:
        for name in names:
            value = self.ff.get(name.lower())
            if present(value):
                return str(value).strip()
        return None

    def telemetry(self, name: str) -> Any:
        """The first embedded sample's value of ``name`` (any group), e.g. GoPro GPMF."""
        for doc in self.docs.values():
            for full, value in doc.items():
                if full.partition(":")[2] == name and present(value):
                    return value
        return None


def camera_info(t: Tags) -> CameraInfo:
    """Names (make, model, lens, serial, software, white balance) are exiftool's printed
    values, never its numeric codes; numbers (focal length, ISO, shutter, aperture) are numbers."""
    make = _name(t.name("IFD0:Make", "XMP-tiff:Make", "Keys:Make", "UserData:Make", "*:Make")
                 or t.ffprobe("com.apple.quicktime.make", "make"))
    if make is None and "GoPro" in t.groups:
        make = "GoPro"  # GoPro's own metadata block (GPMF/udta) names only the model
    model = _name(t.name("IFD0:Model", "XMP-tiff:Model", "Keys:Model", "UserData:Model",
                         "GoPro:Model", "*:Model")
                  or t.ffprobe("com.apple.quicktime.model", "model"))
    # A lens tag with no printed form is a bare number (a maker lens-type code): not a name.
    lens = _name(str_only(t.name("ExifIFD:LensModel", "XMP-exifEX:LensModel", "XMP-aux:Lens",
                                 "Keys:LensModel", "Composite:LensID", "*:LensModel", "*:Lens"))
                 or t.ffprobe("com.apple.quicktime.camera.lens_model"))
    serial = _name(t.name("ExifIFD:SerialNumber", "XMP-exifEX:BodySerialNumber", "XMP-aux:SerialNumber",
                          "GoPro:CameraSerialNumber", "*:SerialNumber", "*:CameraSerialNumber",
                          "*:InternalSerialNumber"))
    # Apple Keys software is "12.3": exiftool gives it as a number, ffprobe keeps the text.
    software = _name(t.name("IFD0:Software", "XMP-tiff:Software")
                     or t.ffprobe("com.apple.quicktime.software")
                     or t.name("Keys:Software", "GoPro:FirmwareVersion", "UserData:FirmwareVersion",
                               "*:FirmwareVersion", "*:Software"))
    focal = positive(t.ex("ExifIFD:FocalLength", "XMP-exif:FocalLength", "*:FocalLength"))
    focal_35 = positive(t.ex("ExifIFD:FocalLengthIn35mmFormat", "XMP-exif:FocalLengthIn35mmFormat",
                              "*:FocalLengthIn35mmFormat")
                         or t.ffprobe("com.apple.quicktime.camera.focal_length.35mm_equivalent"))
    scale = positive(t.ex("Composite:ScaleFactor35efl"))
    if focal_35 is None and focal is not None and scale is not None:
        # Composite:FocalLength35efl alone is NOT used: without a known scale factor
        # exiftool assumes 1.0 and reports the real focal length (3.3 mm on a phone).
        focal_35 = round(focal * scale, 1)
    iso = positive(t.ex("ExifIFD:ISO", "XMP-exif:ISOSpeedRatings", "XMP-exif:ISO", "*:ISO"))
    if iso is None:
        iso = median(t.telemetry("ISOSpeeds"))
    shutter = positive(t.ex("ExifIFD:ExposureTime", "XMP-exif:ExposureTime", "*:ExposureTime",
                             "Composite:ShutterSpeed"))
    if shutter is None:
        shutter = median(t.telemetry("ExposureTimes"))
    aperture = positive(t.ex("ExifIFD:FNumber", "XMP-exif:FNumber", "*:FNumber", "Composite:Aperture"))
    return CameraInfo(
        make=make, model=model, lens=lens, serial=serial, software=software,
        focal_length_mm=focal,
        focal_length_35mm=focal_35,
        focal_category=focal_category(focal_35),
        iso=int(round(iso)) if iso is not None else None,
        shutter_s=shutter,
        aperture_f=aperture,
        white_balance=_white_balance(t.name("ExifIFD:WhiteBalance", "XMP-exif:WhiteBalance",
                                            "*:WhiteBalance")),
    )


def focal_category(focal_35mm: float | None) -> FocalCategory | None:
    """Lens class by 35 mm-equivalent focal length: <21 ultra-wide, <35 wide, <70 medium, <135 long."""
    if focal_35mm is None:
        return None
    if focal_35mm < 21:
        return "ultra-wide"
    if focal_35mm < 35:
        return "wide"
    if focal_35mm < 70:
        return "medium"
    if focal_35mm < 135:
        return "long"
    return "telephoto"


def _white_balance(value: Any) -> str | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {0: "Auto", 1: "Manual"}.get(int(value))  # EXIF/XMP WhiteBalance codes
    return text(value)


def _name(value: Any) -> str | None:
    """A printed name; exiftool's "Unknown (4113)" (a code it cannot name) is no name."""
    name = text(value)
    return None if name is None or name.startswith("Unknown (") else name
