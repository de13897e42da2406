"""Technical facts of one record as readable ``(label, text)`` rows for ``rayflow show``.

Units people read: ``29.97 fps`` (not 29.97002997002997), ``1:02:03.50``, ``12.3 Mb/s``,
``1/50 s``, ``f/2.8``. An unknown part is left out, never printed as ``None``; a line
whose parts are all unknown is not printed at all.
"""

from __future__ import annotations

from rayflow.record import AudioTrack, ClipRecord, ColorInfo, ContainerInfo, HdrInfo, TimecodeInfo, VideoInfo

Rows = list[tuple[str, str]]


def fps_text(fps: float | None) -> str | None:
    """29.97002997 -> '29.97', 23.976023976 -> '23.976', 25.0 -> '25' (three decimals at most)."""
    if not fps:
        return None
    return f"{fps:.3f}".rstrip("0").rstrip(".")


def duration_text(seconds: float | None) -> str | None:
    """7.612 -> '7.61 s'; 243.2 -> '4:03.20 (243.2 s)'; 3723.5 -> '1:02:03.50 (3723.5 s)'."""
    if seconds is None:
        return None
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    clock = f"{hours}:{minutes:02d}:{secs:05.2f}" if hours else f"{minutes}:{secs:05.2f}"
    return f"{clock} ({seconds:.1f} s)"


def bitrate_text(bps: int | None) -> str | None:
    """12_345_678 -> '12.3 Mb/s'; 128_000 -> '128 kb/s'."""
    if not bps:
        return None
    return f"{bps / 1e6:.1f} Mb/s" if bps >= 1_000_000 else f"{bps / 1e3:.0f} kb/s"


def shutter_text(seconds: float | None) -> str | None:
    """0.02 -> '1/50 s'; 0.00487 -> '1/205 s'; 2.0 -> '2 s'."""
    if not seconds:
        return None
    if seconds <= 0.5:
        return f"1/{round(1 / seconds)} s"
    return f"{seconds:g} s"


def _join(*parts: object, sep: str = " · ") -> str:
    return sep.join(str(p) for p in parts if p not in (None, "", [], False))


def container_rows(c: ContainerInfo) -> Rows:
    rows = [("container", _join(c.format, duration_text(c.duration_s), bitrate_text(c.bitrate_bps)))]
    rows.append(("title", c.title or ""))
    rows.append(("timecode", timecode_text(c.timecode)))
    rows.append(("reel", c.reel or ""))
    return rows


def timecode_text(tc: TimecodeInfo | None) -> str:
    """'01:00:00;00 · 29.97 fps drop-frame (ffprobe:tmcd)'; a BWF start with no rate as a time of day."""
    if tc is None:
        return ""
    if tc.start is None and tc.start_s is not None:
        h, rest = divmod(tc.start_s, 3600)
        m, s = divmod(rest, 60)
        start = f"{int(h):02d}:{int(m):02d}:{s:06.3f} time of day (no timecode rate)"
    else:
        start = tc.start or ""
    mode = {True: "drop-frame", False: "non-drop"}.get(tc.drop_frame) if tc.drop_frame is not None else None
    rate = f"{fps_text(tc.rate)} fps" if tc.rate else None
    return f"{_join(start, _join(rate, mode, sep=' '))} ({tc.source})"


def video_rows(v: VideoInfo) -> Rows:
    rows = [("video", _join(_join(v.codec, v.profile, v.level and f"L{v.level}", sep=" "), v.pix_fmt,
                            v.bit_depth and f"{v.bit_depth}-bit", v.chroma_subsampling,
                            v.scan_type and _join(v.scan_type, v.field_order, sep=" ")))]
    size = f"{v.width}x{v.height}" if v.width and v.height else None
    shown = f"{v.display_width}x{v.display_height}" if v.display_width and v.display_height else None
    display = f"display {shown}" if shown and shown != size else None
    rows.append(("frame", _join(size, display, v.rotation and f"rotated {v.rotation}°",
                                v.display_aspect_ratio and f"DAR {v.display_aspect_ratio}")))
    rate = fps_text(v.fps)
    rows.append(("timing", _join(rate and f"{rate} fps" + (" (variable)" if v.is_vfr else ""),
                                 v.frame_count and f"{v.frame_count:,} frames", duration_text(v.duration_s),
                                 bitrate_text(v.bitrate_bps),
                                 v.gop_size and f"GOP {v.gop_size}")))
    rows.append(("color", color_text(v.color)))
    rows.append(("log profile", log_text(v.color)))
    rows.append(("hdr", hdr_text(v.hdr)))
    for o in v.other_streams:
        dims = f"{o.width}x{o.height}" if o.width and o.height else None
        rows.append((f"video #{o.index}", _join(o.codec, dims, "default" if o.default else None,
                                                "not the primary stream")))
    return rows


def color_text(c: ColorInfo) -> str:
    """'bt709 primaries · bt709 transfer · bt709 matrix · limited range' with unknowns left out."""
    matrix = c.matrix or c.space
    return _join(c.primaries and f"{c.primaries} primaries", c.transfer and f"{c.transfer} transfer",
                 matrix and f"{matrix} matrix", c.range and f"{c.range} range")


def log_text(c: ColorInfo) -> str:
    p = c.log_profile
    if p is None:
        return ""
    return f"{p.name} ({_join(p.raw, p.gamut and f'gamut {p.gamut}', f'from {p.source}', sep='; ')})"


def hdr_text(h: HdrInfo) -> str:
    if not h.is_hdr:
        return "SDR"
    md = h.mastering_display
    mastering = None
    if md and md.max_luminance_nits is not None:
        mastering = f"mastering {md.min_luminance_nits or 0:g}-{md.max_luminance_nits:g} nits"
    return _join(h.format or "HDR", mastering, h.max_cll_nits and f"MaxCLL {h.max_cll_nits} nits",
                 h.max_fall_nits and f"MaxFALL {h.max_fall_nits} nits")


def audio_text(a: AudioTrack) -> str:
    channels = a.channels and f"{a.channels} ch" + (f" ({a.channel_layout})" if a.channel_layout else "")
    rate = a.sample_rate and f"{a.sample_rate / 1000:g} kHz"
    return _join(_join(a.codec, a.profile, sep=" "), channels, rate, a.bit_depth and f"{a.bit_depth}-bit",
                 bitrate_text(a.bitrate_bps), duration_text(a.duration_s), a.language,
                 a.title and repr(a.title), "default" if a.default else None)


def fact_rows(r: ClipRecord) -> Rows:
    """Every technical fact of ``r`` (container, timecode, video, colour, log, HDR, tracks, camera,
    capture); rows with empty text are dropped."""
    rows: Rows = []
    if r.container:
        rows += container_rows(r.container)
    if r.video:
        rows += video_rows(r.video)
    rows += [(f"audio #{a.index}", audio_text(a)) for a in r.audio_tracks]
    rows += [(f"subtitle #{s.index}", _join(s.codec, s.language, s.title and repr(s.title),
                                            "forced" if s.forced else None, "default" if s.default else None))
             for s in r.subtitle_tracks]
    cam = r.camera
    rows.append(("camera", _join(_join(cam.make, cam.model, sep=" "), cam.lens and f"lens {cam.lens}",
                                 cam.serial and f"serial {cam.serial}",
                                 cam.software and f"software {cam.software}")))
    focal = cam.focal_length_mm and f"{cam.focal_length_mm:g} mm"
    eq = cam.focal_length_35mm and f"{cam.focal_length_35mm:g} mm (35 mm eq.)"
    rows.append(("lens", _join(focal, eq, cam.focal_category)))
    rows.append(("settings", _join(cam.iso and f"ISO {cam.iso}", shutter_text(cam.shutter_s),
                                   cam.aperture_f and f"f/{cam.aperture_f:g}",
                                   cam.white_balance and f"white balance {cam.white_balance}")))
    cap = r.capture
    if cap.created_at:
        rows.append(("captured", _join(cap.created_at.isoformat(sep=" "),
                                       cap.created_at_source and f"(from {cap.created_at_source})", sep=" ")))
    if g := cap.gps:
        rows.append(("gps", f"{g.lat:.5f}, {g.lon:.5f}" + (f", {g.alt:g} m" if g.alt is not None else "")))
    return [(k, v) for k, v in rows if v]
