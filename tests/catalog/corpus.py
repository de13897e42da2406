"""The labelled search corpus: 16 ClipRecords written as the analysis stages would write
them (transcript segments, on-screen text, shots, faces, tags, description, technical
traits), and 30 queries with the clip and the moment a person would expect.

Used by tests/catalog/test_search.py, tests/cli, tests/ml, and to calibrate the search
relevance model (benchmarks/search.py --relevance)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from rayflow.record import (
    Analysis,
    AudioTrack,
    CameraInfo,
    CaptureInfo,
    ClipRecord,
    ContainerInfo,
    FaceFrame,
    Faces,
    FileInfo,
    GpsInfo,
    HdrInfo,
    RankedThumbnail,
    ScreenText,
    Shot,
    ShotDetection,
    Speech,
    SpeechSegment,
    Thumbnail,
    VideoInfo,
    clip_id_for,
)

# ----------------------------------------------------------------------------- corpus


def make_record(
    path: str, *, codec: str, size: tuple[int, int], fps: float, duration_s: float, camera: tuple[str, str],
    description: str, tags: list[str], segments: list[tuple[float, float, str]] | None = None,
    screen: list[tuple[float, float, str]] | None = None, shots: list[tuple[float, float]] | None = None,
    hdr: str | None = None, captured: str = "2024-05-03T10:00:00", faces: list[tuple[float, int, float]] | None = None,
    gps: tuple[float, float] | None = None, thumbs_dir: str = "/out/clips", salt: str = "",
) -> ClipRecord:
    """A record as the pipeline would write it (only facts a test needs; the rest None)."""
    checksum = hashlib.blake2b(f"{path}{salt}".encode(), digest_size=32).hexdigest()
    clip_id = clip_id_for(checksum)
    segs = [SpeechSegment(start_s=a, end_s=b, text=t) for a, b, t in (segments or [])]
    step = duration_s / 4
    thumb_times = [round(step * i + step / 2, 2) for i in range(4)]
    return ClipRecord(
        clip_id=clip_id, kind="video",
        file=FileInfo(path=path, name=Path(path).name, size_bytes=10_000_000, checksum=checksum),
        container=ContainerInfo(format="mov,mp4,m4a,3gp,3g2,mj2", duration_s=duration_s),
        video=VideoInfo(codec=codec, width=size[0], height=size[1], fps=fps, duration_s=duration_s,
                        bit_depth=10 if hdr else 8, hdr=HdrInfo(is_hdr=hdr is not None, format=hdr)),
        audio_tracks=[AudioTrack(index=1, codec="aac", channels=2, channel_layout="stereo")] if segs else [],
        camera=CameraInfo(make=camera[0], model=camera[1]),
        capture=CaptureInfo(created_at=datetime.fromisoformat(captured),
                            gps=GpsInfo(lat=gps[0], lon=gps[1]) if gps else None),
        thumbnails=[Thumbnail(path=f"{thumbs_dir}/{clip_id}/thumb_{i}.jpg", timestamp_s=t, width=480, height=270,
                              format="jpeg") for i, t in enumerate(thumb_times)],
        analysis=Analysis(
            shots=ShotDetection(method="test", shots=[Shot(index=i, start_s=a, end_s=b)
                                                     for i, (a, b) in enumerate(shots or [(0.0, duration_s)])]),
            speech=Speech(model="test", language="en", text=" ".join(s.text for s in segs), segments=segs)
            if segs else None,
            screen_text=[ScreenText(text=t, start_s=a, end_s=b, frames=2, confidence=0.9)
                         for a, b, t in (screen or [])],
            faces=Faces(method="test", shot_scale="medium",
                        frames=[FaceFrame(timestamp_s=t, faces=n, largest_face_height=h)
                                for t, n, h in (faces or [])]),
            description=description,
            tags=tags,
            best_thumbnails=[RankedThumbnail(path=f"{thumbs_dir}/{clip_id}/best_{i}.jpg", timestamp_s=t,
                                             score=1.0 - i * 0.1, reason="sharp", primary=i == 0,
                                             width=480, height=270) for i, t in enumerate(thumb_times[:2])],
        ),
    )


def _filler(start_s: float, end_s: float, sentences: list[str], step_s: float = 30.0) -> list[tuple[float, float, str]]:
    """One ~8 s sentence every ``step_s`` seconds (long talks: the needle among many moments)."""
    out = []
    t, i = start_s, 0
    while t + step_s <= end_s:
        out.append((t, t + min(8.0, step_s - 0.5), sentences[i % len(sentences)]))
        t += step_s
        i += 1
    return out


TALK_FILLER = [
    "Vector databases store embeddings and let you search them by similarity.",
    "An HNSW graph connects each point to its nearest neighbours on several layers.",
    "Payload filtering lets you restrict results to documents from one customer.",
    "Sharding spreads a collection across several machines for scale.",
    "Recall measures how many of the true nearest neighbours we actually return.",
    "We benchmarked indexing speed on a dataset of ten million documents.",
    "Replication keeps a copy of every shard on another node in case one fails.",
    "The query planner decides whether to use the index or a full scan.",
]
PODCAST_FILLER = [
    "So welcome back to the show, today we are talking about sleep.",
    "I used to think I could get by on five hours a night.",
    "Our guest is a researcher who runs a sleep lab at the university.",
    "Deep sleep is when the body repairs muscles and tissue.",
    "Dreams mostly happen during REM sleep, later in the night.",
    "A regular bedtime matters more than most people think.",
]


@dataclass(frozen=True)
class Labelled:
    query: str
    clip: str
    """File name of the right clip."""
    at_s: float | None = None
    """A moment of the right answer (None: any moment of the clip is fine)."""


def _records_people_and_events() -> list[ClipRecord]:
    """The first 8 labelled clips: talk, food, drone, sport, wildlife, unboxing, wedding, conference."""
    return [
        make_record(
            "/footage/news/city_council_interview.mov", codec="h264", size=(1920, 1080), fps=25, duration_s=95,
            camera=("Sony", "ILCE-7M4"), description="Interview with the mayor at city hall about the bridge closure.",
            tags=["interview", "politics"],
            segments=[(0, 6, "Thanks for having me, it's been a busy week at city hall."),
                      (6, 14, "The Harbor Bridge has been closed since Monday because engineers found cracks "
                              "in two support cables."),
                      (14, 22, "We expect repairs to take about six weeks, and the bridge should reopen in early "
                               "spring."),
                      (22, 30, "In the meantime the ferry service will run every fifteen minutes and it will be "
                               "free for commuters."),
                      (30, 40, "I know this is frustrating for families who cross the river every day."),
                      (40, 52, "We are also adding two extra bus lines on the north side.")],
            screen=[(1, 5, "MAYOR ELENA RUIZ"), (60, 70, "HARBOR BRIDGE - CLOSED")],
            shots=[(0, 52), (52, 95)], faces=[(3, 1, 0.4), (20, 1, 0.4), (60, 0, 0.0)],
        ),
        make_record(
            "/footage/food/pasta_cooking.mp4", codec="hevc", size=(3840, 2160), fps=30, duration_s=180,
            camera=("Apple", "iPhone 15 Pro"), hdr="HLG",
            description="A cooking demonstration in a home kitchen: spaghetti carbonara step by step.",
            tags=["cooking", "food", "kitchen"],
            segments=[(0, 7, "Today we're making a classic carbonara with just five ingredients."),
                      (10, 17, "First, bring a big pot of salted water to a rolling boil."),
                      (25, 33, "While that heats up, crack three eggs into a bowl and add the grated pecorino."),
                      (34, 40, "Whisk it until it's smooth and creamy, no lumps."),
                      (60, 68, "Now fry the guanciale slowly until the fat renders and it gets crispy."),
                      (115, 123, "Drain the spaghetti, but save a cup of the starchy cooking water."),
                      (140, 148, "Take the pan off the heat before adding the eggs, otherwise they scramble.")],
            screen=[(0, 4, "CARBONARA - 5 INGREDIENTS"), (120, 126, "Tip: keep the pasta water")],
            shots=[(0, 24), (24, 58), (58, 110), (110, 180)],
        ),
        make_record(
            "/footage/travel/DJI_0042.mp4", codec="hevc", size=(3840, 2160), fps=30, duration_s=60,
            camera=("DJI", "Mavic 3"), hdr="HLG", gps=(38.7223, -9.1393),
            description="Aerial drone footage flying along a rocky coastline at sunset, waves crashing "
                        "against the cliffs.",
            tags=["drone", "aerial", "coast", "sunset", "landscape"],
            shots=[(0, 20), (20, 41), (41, 60)], faces=[(10, 0, 0.0), (30, 0, 0.0), (50, 0, 0.0)],
        ),
        make_record(
            "/footage/sports/league_final.mp4", codec="h264", size=(2704, 1520), fps=50, duration_s=120,
            camera=("GoPro", "HERO11 Black"), description="Amateur football match, spring league final, with "
                                                         "live commentary.",
            tags=["sports", "football", "soccer"],
            segments=[(0, 7, "And we're under way here at Riverside Park for the final of the spring league."),
                      (20, 27, "Number nine, Okafor, picks up the ball on the left wing."),
                      (40, 46, "He cuts inside, shoots, and it's in the top corner! What a goal!"),
                      (47, 53, "The goalkeeper had absolutely no chance with that one."),
                      (80, 86, "Yellow card now for the defender after a late tackle."),
                      (108, 115, "That's the final whistle, the Rovers win two nil.")],
            screen=[(47, 60, "ROVERS 1 - 0 UNITED"), (110, 118, "FULL TIME 2-0")],
        ),
        make_record(
            "/footage/nature/wetlands_dawn.mov", codec="prores", size=(4096, 2160), fps=24, duration_s=75,
            camera=("Canon", "EOS R5"), description="Wildlife at a wetland at dawn: a heron hunting, kingfishers.",
            tags=["wildlife", "birds", "nature"],
            segments=[(2, 10, "Early morning at the wetlands, the mist is still sitting on the water."),
                      (14, 20, "There, a grey heron, completely still, waiting."),
                      (30, 36, "In one quick strike it catches a small fish and swallows it whole."),
                      (50, 57, "A pair of kingfishers flash past, bright blue against the reeds.")],
            shots=[(0, 12), (12, 45), (45, 75)],
        ),
        make_record(
            "/footage/youtube/keyboard_unboxing.mp4", codec="h264", size=(1920, 1080), fps=30, duration_s=240,
            camera=("Sony", "ZV-E10"), description="Unboxing and review of a mechanical keyboard at a desk.",
            tags=["unboxing", "review", "tech"],
            segments=[(0, 8, "Hey everyone, today I'm unboxing the new Keychron Q1 mechanical keyboard."),
                      (30, 38, "Inside the box we get the keyboard, a braided USB-C cable, and a keycap puller."),
                      (60, 67, "The case is solid aluminium and it weighs almost two kilos."),
                      (100, 108, "Let's listen to the sound of these brown switches."),
                      (180, 188, "The price is one hundred sixty nine dollars, which I think is fair.")],
            screen=[(0, 5, "KEYCHRON Q1 REVIEW"), (182, 188, "$169")],
            faces=[(4, 1, 0.3), (100, 0, 0.0)],
        ),
        make_record(
            "/footage/events/wedding_reception.mov", codec="h264", size=(1920, 1080), fps=25, duration_s=300,
            camera=("Canon", "EOS R6"), description="Best man's speech at a wedding reception in a banquet hall.",
            tags=["wedding", "speech", "event"],
            segments=[(0, 8, "Good evening everyone, for those who don't know me, I'm Tom, the best man."),
                      (12, 22, "I've known David since we were seven years old and got lost on a school trip "
                               "to the zoo."),
                      (60, 70, "When he first met Sarah, he called me at three in the morning to say he'd met "
                               "the one."),
                      (280, 290, "Please raise your glasses to the happy couple, David and Sarah!")],
            faces=[(5, 1, 0.2), (285, 6, 0.1)],
        ),
        make_record(
            "/footage/conf/vector_db_talk.mp4", codec="h264", size=(1920, 1080), fps=30, duration_s=1200,
            camera=("Blackmagic Design", "Pocket Cinema Camera 6K"),
            description="Conference talk on stage about how vector databases work.",
            tags=["conference", "talk", "technology"],
            segments=_filler(0, 890, TALK_FILLER)
            + [(896, 904, "Quantization shrinks memory by storing each dimension in eight bits instead of "
                          "thirty two.")]
            + _filler(910, 1200, TALK_FILLER),
            screen=[(895, 930, "Scalar quantization: 4x less memory")],
        ),
    ]


def _records_places_and_life() -> list[ClipRecord]:
    """The other 8 labelled clips."""
    return [
        make_record(
            "/footage/city/night_timelapse.mp4", codec="hevc", size=(3840, 2160), fps=24, duration_s=30,
            camera=("Sony", "FX3"), description="Time-lapse of a city skyline at night with traffic light trails.",
            tags=["timelapse", "city", "night"], shots=[(0, 30)],
        ),
        make_record(
            "/footage/family/IMG_2231.MOV", codec="hevc", size=(1080, 1920), fps=30, duration_s=45,
            camera=("Apple", "iPhone 12"), description="A child's birthday party at home with cake and presents.",
            tags=["birthday", "family", "party"],
            segments=[(0, 12, "Happy birthday dear Mia, happy birthday to you!"),
                      (20, 25, "Make a wish and blow out the candles!"),
                      (33, 40, "She got a red bicycle as a present.")],
        ),
        make_record(
            "/footage/corporate/safety_induction.mp4", codec="h264", size=(1920, 1080), fps=25, duration_s=130,
            camera=("Panasonic", "DC-GH5"), description="Warehouse safety induction training video.",
            tags=["training", "safety", "industrial"],
            segments=[(0, 6, "Welcome to the warehouse safety induction."),
                      (60, 66, "Hearing protection is mandatory near the compressors."),
                      (90, 100, "In case of fire, leave by the nearest exit and gather at the assembly point "
                                "in the car park.")],
            screen=[(10, 20, "ALWAYS WEAR SAFETY GOGGLES"), (40, 50, "FORKLIFT ZONE - PEDESTRIANS KEEP OUT")],
            shots=[(0, 8), (8, 30), (30, 55), (55, 130)],
        ),
        make_record(
            "/footage/news/rent_march.mp4", codec="h264", size=(1920, 1080), fps=50, duration_s=90,
            camera=("Canon", "XF605"), description="News report: a street protest about housing and rents.",
            tags=["news", "protest", "city"],
            segments=[(0, 8, "Hundreds of people marched through the city centre today demanding lower rents."),
                      (40, 47, "Police said the march was peaceful and there were no arrests."),
                      (60, 68, "Organisers plan another demonstration outside parliament next month.")],
            screen=[(15, 30, "HOMES NOT PROFITS")], shots=[(0, 12), (12, 35), (35, 90)],
        ),
        make_record(
            "/footage/wellness/morning_yoga.mp4", codec="h264", size=(3840, 2160), fps=25, duration_s=600,
            camera=("Fujifilm", "X-T4"), description="A guided morning yoga class in a bright studio.",
            tags=["yoga", "fitness", "wellness"],
            segments=[(5, 12, "Breathe in and raise your arms above your head."),
                      (30, 37, "Step your right foot back into a low lunge."),
                      (45, 52, "Now come into downward dog and hold for five breaths."),
                      (560, 570, "Finish lying on your back in savasana and relax completely.")],
        ),
        make_record(
            "/footage/auto/ev_test_drive.mp4", codec="hevc", size=(3840, 2160), fps=25, duration_s=200,
            camera=("Sony", "FX30"), description="Test drive and review of an electric car on country roads.",
            tags=["car", "review", "electric vehicle"],
            segments=[(10, 17, "Let's see how this thing drives on the back roads."),
                      (60, 68, "The range on a full battery is about four hundred and fifty kilometres."),
                      (100, 106, "Zero to one hundred takes five point two seconds."),
                      (150, 160, "Charging from ten to eighty percent took twenty eight minutes at a fast "
                                 "charger.")],
            screen=[(62, 70, "450 km WLTP")],
        ),
        make_record(
            "/footage/action/GX010077.MP4", codec="hevc", size=(3840, 2160), fps=60, duration_s=45, hdr="HDR10",
            camera=("GoPro", "HERO12 Black"), description="Skiing down a mountain slope, first-person view.",
            tags=["ski", "snow", "mountain", "action"],
            segments=[(0, 4, "Fresh powder this morning, let's go!"),
                      (20, 24, "Watch out for the tree on the left.")],
        ),
        make_record(
            "/footage/podcast/episode_12_sleep.mov", codec="prores", size=(3840, 2160), fps=25, duration_s=1800,
            camera=("Blackmagic Design", "Pocket Cinema Camera 6K"),
            description="Two hosts talk in a podcast studio about the science of sleep.",
            tags=["podcast", "health", "studio"],
            segments=_filler(0, 300, PODCAST_FILLER)
            + [(302, 310, "Blue light from phones in the evening delays the release of melatonin."),
               (320, 328, "Most adults need between seven and nine hours of sleep.")]
            + _filler(330, 1800, PODCAST_FILLER),
        ),
    ]


def labelled_corpus() -> tuple[list[ClipRecord], list[Labelled]]:
    """16 clips of unrelated subjects and 30 queries with known answers."""
    r = [*_records_people_and_events(), *_records_places_and_life()]
    queries = [
        Labelled("why is the harbor bridge closed", "city_council_interview.mov", 10),
        Labelled("when will the bridge open again", "city_council_interview.mov", 18),
        Labelled("free ferry for commuters", "city_council_interview.mov", 26),
        Labelled("how to make carbonara", "pasta_cooking.mp4", 3),
        Labelled("mixing eggs with grated cheese", "pasta_cooking.mp4", 29),
        Labelled("keep some of the water the pasta cooked in", "pasta_cooking.mp4", 119),
        Labelled("aerial view of cliffs and waves at sunset", "DJI_0042.mp4"),
        Labelled("a player scores a spectacular goal", "league_final.mp4", 43),
        Labelled("the referee shows a yellow card", "league_final.mp4", 83),
        Labelled("bird catching a fish", "wetlands_dawn.mov", 33),
        Labelled("blue kingfishers flying past", "wetlands_dawn.mov", 53),
        Labelled("how heavy is the keyboard", "keyboard_unboxing.mp4", 63),
        Labelled("what does the keyboard cost", "keyboard_unboxing.mp4", 184),
        Labelled("toast to the bride and groom", "wedding_reception.mov", 285),
        Labelled("childhood story about getting lost at the zoo", "wedding_reception.mov", 17),
        Labelled("quantization reduces memory usage", "vector_db_talk.mp4", 900),
        Labelled("city lights at night", "night_timelapse.mp4"),
        Labelled("kid blowing out birthday candles", "IMG_2231.MOV", 22),
        Labelled("what to do if there is a fire", "safety_induction.mp4", 95),
        Labelled("sign telling workers to wear eye protection", "safety_induction.mp4", 15),
        Labelled("homes not profits banner", "rent_march.mp4", 22),
        Labelled("were there any arrests at the protest", "rent_march.mp4", 43),
        Labelled("downward dog pose", "morning_yoga.mp4", 48),
        Labelled("how long does it take to charge the electric car", "ev_test_drive.mp4", 155),
        Labelled("driving range of the EV on one charge", "ev_test_drive.mp4", 64),
        Labelled("skiing in fresh powder snow", "GX010077.MP4", 2),
        Labelled("phones at night affect melatonin and sleep", "episode_12_sleep.mov", 306),
        Labelled("footage shot with the DJI Mavic drone", "DJI_0042.mp4"),
        Labelled("Okafor", "league_final.mp4", 23),
        Labelled("slides about scalar quantization", "vector_db_talk.mp4", 900),
    ]
    return r, queries


def near_copy(record: ClipRecord) -> ClipRecord:
    """Same content, different file and technical traits (a re-encode in another codec)."""
    data = record.model_dump()
    data["file"]["path"] = record.file.path.replace(".mov", "_proxy_hevc.mp4")
    data["file"]["name"] = Path(data["file"]["path"]).name
    data["file"]["checksum"] = "copy" + record.file.checksum[4:]
    data["clip_id"] = clip_id_for(data["file"]["checksum"])
    data["video"].update(codec="hevc", width=1280, height=720, fps=30)
    data["camera"] = {"make": None, "model": None}
    return ClipRecord.model_validate(data)


def moment_ok(hit_start: float | None, hit_end: float | None, at_s: float, tolerance_s: float = 2.0) -> bool:
    return hit_start is not None and hit_end is not None and hit_start - tolerance_s <= at_s <= hit_end + tolerance_s
