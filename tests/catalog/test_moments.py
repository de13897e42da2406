"""Moments and clip texts from a record: pure functions, no model, no Qdrant."""

from __future__ import annotations

from rayflow.catalog import schema
from rayflow.catalog.moments import (
    CHUNK_WORDS,
    build_moments,
    clip_texts,
    moment_point_id,
    name_words,
    technical_text,
    transcript_chunks,
)
from rayflow.record import ClipRecord
from tests.catalog.corpus import make_record


def _record(**kwargs: object) -> ClipRecord:
    base: dict[str, object] = {
        "codec": "hevc", "size": (3840, 2160), "fps": 25.0, "duration_s": 100.0, "camera": ("Sony", "FX3"),
        "description": "A test clip.", "tags": ["test", "Drone"],
    }
    base.update(kwargs)
    return make_record("/footage/day1/A001_C002.mov", **base)  # type: ignore[arg-type]


def test_speech_windows_cut_at_shots_pauses_and_length() -> None:
    record = _record(
        shots=[(0, 20), (20, 100)],
        segments=[(0, 4, "one"), (4, 8, "two"), (8, 12, "three"), (12, 16, "four"),  # > 12 s: cut after 'three'
                  (17, 19, "five"),                                                  # same shot, short gap
                  (21, 24, "six"),                                                   # next shot: cut
                  (40, 44, "seven")],                                                # 16 s pause: cut
    )
    speech = [m for m in build_moments(record) if m.kind == "speech"]
    assert [(m.start_s, m.end_s, m.speech) for m in speech] == [
        (0, 12, "one two three"), (12, 19, "four five"), (21, 24, "six"), (40, 44, "seven")]
    assert [m.shot_index for m in speech] == [0, 0, 1, 1]


def test_screen_text_joins_speech_or_stands_alone_and_silent_shots_get_tags() -> None:
    record = _record(
        shots=[(0, 30), (30, 60), (60, 100)],
        segments=[(2, 8, "Welcome to the site.")],
        screen=[(3, 6, "SITE OFFICE"), (35, 40, "EXIT"), (38, 45, "FIRE DOOR"), (50, 55, "EXIT")],
        faces=[(70, 2, 0.2), (80, 1, 0.1)],
    )
    moments = build_moments(record)
    assert [m.index for m in moments] == list(range(len(moments)))
    first = moments[0]
    assert first.kind == "speech" and first.screen_text == "SITE OFFICE"
    assert first.text == "Welcome to the site. On screen: SITE OFFICE."
    screen = [m for m in moments if m.kind == "screen_text"]
    assert [(m.start_s, m.end_s, m.screen_text) for m in screen] == [(35, 45, "EXIT / FIRE DOOR"), (50, 55, "EXIT")]
    shots = [m for m in moments if m.kind == "shot"]
    assert [(m.start_s, m.end_s) for m in shots] == [(60, 100)]
    assert shots[0].tags == ("medium shot", "two people", "test", "Drone")


def test_best_frame_prefers_ranked_thumbnail_inside_then_nearest() -> None:
    record = _record(segments=[(10, 14, "early"), (60, 64, "middle"), (90, 95, "late")])
    # make_record: thumbnails at 12.5, 37.5, 62.5, 87.5 s; ranked (best) ones at 12.5 and 37.5.
    by_start = {m.start_s: m for m in build_moments(record)}
    assert by_start[10].thumbnail_path is not None and by_start[10].thumbnail_path.endswith("best_0.jpg")
    assert by_start[60].thumbnail_path is not None and by_start[60].thumbnail_path.endswith("thumb_2.jpg")
    assert by_start[90].thumbnail_s == 87.5  # nothing inside: nearest by time
    bare = record.model_copy(deep=True)
    bare.thumbnails = []
    assert bare.analysis is not None
    bare.analysis.best_thumbnails = []
    assert all(m.thumbnail_path is None for m in build_moments(bare))


def test_moments_are_deterministic_and_empty_without_analysis() -> None:
    record = _record(segments=[(0, 5, "hello")], screen=[(20, 25, "TITLE")])
    assert build_moments(record) == build_moments(record.model_copy(deep=True))
    assert moment_point_id(record.clip_id, 3) == moment_point_id(record.clip_id, 3)
    assert moment_point_id(record.clip_id, 3) != moment_point_id(record.clip_id, 4)
    assert build_moments(record.model_copy(update={"analysis": None})) == []


def test_transcript_chunks_fit_the_model_window() -> None:
    long_segment = " ".join(f"w{i}" for i in range(CHUNK_WORDS * 2 + 10))
    record = _record(segments=[(0, 5, "short opening line"), (5, 200, long_segment), (200, 205, "the end")])
    chunks = transcript_chunks(record)
    assert all(len(c.split()) <= CHUNK_WORDS for c in chunks)
    assert " ".join(chunks).split() == f"short opening line {long_segment} the end".split()
    assert transcript_chunks(_record()) == []


def test_clip_texts_and_technical_words() -> None:
    record = _record(hdr="HLG", gps=(48.8584, 2.2945), segments=[(0, 4, "Bonjour")], screen=[(1, 2, "PARIS")])
    tech = technical_text(record)
    for words in ("Sony FX3", "HEVC H.265", "3840x2160 4K UHD", "HDR HLG", "25 fps", "Recorded 2024-05-03",
                  "May 2024", "48.8584"):
        assert words in tech
    texts = clip_texts(record)
    assert "A test clip." in texts.summary and "A001 C002" in texts.summary
    for words in ("Bonjour", "PARIS", "hevc", "A001 C002"):
        assert words in texts.keywords
    assert name_words("/x/Interview_Mayor-02.final.mp4") == "Interview Mayor 02 final"


def test_filter_payload_is_flat_and_normalised() -> None:
    record = _record(segments=[(0, 4, "hi")], hdr="HDR10")
    f = schema.filter_payload(record)
    assert f["codec"] == "hevc" and f["camera_make"] == "sony" and f["camera_model"] == "fx3"
    assert f["hdr"] is True and f["has_speech"] is True and f["duration_s"] == 100
    assert f["tags"] == ["drone", "test"]
    assert f["dirs"] == ["/", "/footage", "/footage/day1"]
    assert schema.filter_payload(_record())["has_speech"] is False


def test_shot_moments_do_not_repeat_clip_people_tags_that_contradict_the_shot() -> None:
    from rayflow.catalog.moments import CLIP_PEOPLE_TAGS, build_moments
    from rayflow.record import Analysis, ClipRecord, FileInfo, Shot, ShotDetection

    record = ClipRecord(
        clip_id="c", kind="video", file=FileInfo(path="/x/a.mp4", name="a.mp4", size_bytes=1, checksum="k"),
        analysis=Analysis(shots=ShotDetection(method="t", shots=[Shot(index=0, start_s=0, end_s=2)]),
                          tags=["480p", "no-people", "medium-shot", "person"]))
    (moment,) = [m for m in build_moments(record) if m.kind == "shot"]
    assert "480p" in moment.tags
    assert not (set(moment.tags) & CLIP_PEOPLE_TAGS)
