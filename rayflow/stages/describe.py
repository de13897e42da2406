"""A readable description and tags, assembled deterministically from the signals.

No model writes this text: each sentence comes from one record part, by fixed
rules, and the paragraph ends by naming the parts it was derived from, so a
reader knows what it rests on (and a VLM caption, when one is configured, goes
in ``Analysis.caption`` instead). Same inputs, same text and tags, always.

Rules, by signal:

- video (probe): duration, resolution class by the shorter display side
  (>= 2160 "4K", 1440, 1080, 720, 480, else "<n>p"), "vertical" when taller than
  wide, HDR format.
- shots: "a single shot" or "N shots"; ``motion_mean`` (mean brightness change per
  frame, 0..255, at 48x27, from every frame of the clip: sampled frames are seconds
  apart and would measure content change, not motion): < 0.5 static, < 3.0
  moderate, else lots of motion.
- faces: the clip's shot scale and the most faces seen in one frame.
- speech: its language and up to ``TOPIC_WORDS`` topic words: the transcript's
  most frequent words of 4+ letters that are not English stop-words (ties go to
  the earlier word). Only English stop-words ship, so other languages' topic words
  are rougher.
- screen text: up to 3 texts read with confidence >= 0.5, the longest-seen first.
- exposure: dark (median luma < 50) / bright (> 190) / balanced, and the
  exposure warning's reason when raised (tags by ``rayflow.stages.exposure``'s
  warning thresholds).
- focal: the lens class and its 35 mm-equivalent focal length when known.

Example::

    text, tags = describe(duration_s=12.0, video=video, shots=shots, faces=faces,
                          speech=speech, screen_text=texts, exposure=exposure, focal=focal)
    text  # 'A 12-second 1080p clip in 3 shots, with moderate motion. Mostly medium shots ...'
    tags  # ['1080p', 'multi-shot', 'moderate-motion', 'medium-shot', 'person', 'speech', 'english', ...]
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from rayflow.record import (
    ExposureInfo,
    Faces,
    FocalEstimate,
    RoleRun,
    ScreenText,
    ShotDetection,
    Speech,
    StageName,
    VideoInfo,
)
from rayflow.stages.base import ClipInput, Resources, Stage
from rayflow.stages.exposure import CLIPPED_WARN_PCT, OVER_WARN_EV, UNDER_WARN_EV

TOPIC_WORDS = 5
"""Topic words taken from a transcript."""
MIN_TOPIC_LETTERS = 4
STATIC_MOTION = 0.5
"""motion_mean below this: static (tripod, still scene)."""
HIGH_MOTION = 3.0
"""motion_mean at or above this: lots of motion (testsrc2 reads 3.5, a walking GoPro 2.0)."""
DARK_MEDIAN_LUMA = 50.0
BRIGHT_MEDIAN_LUMA = 190.0
MIN_TEXT_CONFIDENCE = 0.5
MAX_SCREEN_TEXTS = 3

LANGUAGES = {
    "en": "English", "fr": "French", "de": "German", "es": "Spanish", "it": "Italian",
    "pt": "Portuguese", "nl": "Dutch", "ru": "Russian", "zh": "Chinese", "ja": "Japanese",
    "ko": "Korean", "ar": "Arabic", "hi": "Hindi", "pl": "Polish", "tr": "Turkish",
    "sv": "Swedish", "uk": "Ukrainian", "he": "Hebrew",
}
"""ISO 639-1 code -> English name; other codes are shown as given."""

STOP_WORDS = frozenset({
    "a", "about", "above", "after", "again", "against", "all", "also", "am", "an", "and", "any", "are",
    "aren't", "as", "at", "back", "be", "because", "been", "before", "being", "below", "between", "both", "but",
    "by", "came", "can", "can't", "cannot", "come", "could", "couldn't", "did", "didn't", "do", "does",
    "doesn't", "doing", "don't", "down", "during", "each", "even", "ever", "every", "few", "for", "from",
    "further", "get", "gets", "getting", "go", "goes", "going", "gone", "gonna", "got", "gotten", "had",
    "hadn't", "has", "hasn't", "have", "haven't", "having", "he", "he'd", "he'll", "he's", "her", "here",
    "here's", "hers", "herself", "him", "himself", "his", "how", "how's", "however", "i", "i'd", "i'll", "i'm",
    "i've", "if", "in", "into", "is", "isn't", "it", "it's", "its", "itself", "just", "kind", "know", "let",
    "let's", "like", "look", "lot", "lots", "made", "make", "many", "may", "maybe", "me", "might", "more",
    "most", "much", "must", "mustn't", "my", "myself", "need", "never", "no", "nor", "not", "now", "of", "off",
    "oh", "ok", "okay", "on", "once", "one", "only", "or", "other", "ought", "our", "ours", "ourselves", "out",
    "over", "own", "really", "right", "said", "same", "say", "says", "see", "seem", "seems", "shall", "shan't",
    "she", "she'd", "she'll", "she's", "should", "shouldn't", "so", "some", "something", "sort", "still",
    "such", "sure", "take", "tell", "than", "thank", "thanks", "that", "that's", "the", "their", "theirs",
    "them", "themselves", "then", "there", "there's", "these", "they", "they'd", "they'll", "they're",
    "they've", "thing", "things", "think", "this", "those", "though", "through", "to", "too", "two", "under",
    "until", "up", "upon", "us", "very", "wanna", "want", "was", "wasn't", "way", "we", "we'd", "we'll",
    "we're", "we've", "well", "went", "were", "weren't", "what", "what's", "when", "when's", "where", "where's",
    "whether", "which", "while", "who", "who's", "whom", "why", "why's", "will", "with", "won't", "would",
    "wouldn't", "yeah", "yes", "yet", "you", "you'd", "you'll", "you're", "you've", "your", "yours", "yourself",
    "yourselves",
})
"""English function words and fillers left out of topic words."""

_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")


class DescribeStage(Stage[ClipInput, tuple[str, list[str]]]):
    """The description and tags, from the record's facts and the roles run before it."""

    name: StageName = "describe"
    resources = Resources(cpus=0)

    def observed(self) -> RoleRun:
        return RoleRun(device="cpu", model="rules (rayflow.stages.describe)")

    def process(self, item: ClipInput) -> tuple[str, list[str]]:
        found = item.analysis
        return describe(duration_s=item.duration_s, video=item.video, shots=found.shots, faces=found.faces,
                        speech=found.speech, screen_text=found.screen_text, exposure=item.exposure,
                        focal=found.focal, still=item.still)


def describe(
    *,
    duration_s: float | None,
    video: VideoInfo | None,
    shots: ShotDetection | None = None,
    faces: Faces | None = None,
    speech: Speech | None = None,
    screen_text: Sequence[ScreenText] = (),
    exposure: ExposureInfo | None = None,
    focal: FocalEstimate | None = None,
    still: bool = False,
) -> tuple[str, list[str]]:
    """One paragraph and a tag list from whichever signals are given (None = unknown,
    and then not mentioned). Tags are lower-case, hyphenated, in a fixed order."""
    sentences: list[str] = []
    tags: list[str] = []
    sources: list[str] = []

    # What kind of footage.
    picture: list[str] = []
    if duration_s is not None and not still:  # a still has no running time
        picture.append(f"{_duration(duration_s)}")
    if video is not None:
        sources.append("probe")
        resolution = _resolution(video)
        if resolution:
            picture.append(resolution)
            tags.append(resolution)
        if _is_vertical(video):
            picture.append("vertical")
            tags.append("vertical")
        if video.hdr.is_hdr:
            picture.append(video.hdr.format or "HDR")
            tags.append("hdr")
            if video.hdr.format:
                tags.append(_tag(video.hdr.format))
    noun = "still image" if still else "clip"
    opening = f"A {' '.join(picture)} {noun}" if picture else f"A {noun}"
    if shots is not None and shots.shots:
        sources.append("shots")
        count = len(shots.shots)
        opening += " in a single shot" if count == 1 else f" in {count} shots"
        tags.append("single-shot" if count == 1 else "multi-shot")
        motion = _motion(shots.motion_mean)
        if motion:
            opening += f", with {motion[0]}"
            tags.append(motion[1])
    sentences.append(opening + ".")

    if faces is not None:
        sources.append("faces")
        sentences.append(_people_sentence(faces))
        tags.extend(_people_tags(faces))

    if speech is not None:
        sources.append("transcript")
        text = speech.text.strip()
        if not text:
            sentences.append("No speech was heard.")
        else:
            language = _language(speech.language)
            words = topic_words(text)
            sentence = f"Speech in {language}" if language else "Speech"
            if words:
                sentence += ", about " + ", ".join(words)
            sentences.append(sentence + ".")
            tags.append("speech")
            if language:
                tags.append(_tag(language))
            tags.extend(words)

    texts = _screen_texts(screen_text)
    if screen_text:
        sources.append("on-screen text")
    if texts:
        sentences.append("On-screen text: " + ", ".join(f"\u201c{t}\u201d" for t in texts) + ".")
        tags.append("on-screen-text")

    if exposure is not None:
        sources.append("exposure")
        sentence, exposure_tags = _lighting(exposure)
        sentences.append(sentence)
        tags.extend(exposure_tags)

    if focal is not None and focal.category is not None:
        sources.append("lens metadata" if focal.source == "exif" else "lens model")
        lens = f"Shot on a {focal.category} lens"
        if focal.focal_length_35mm:
            lens += f" ({focal.focal_length_35mm:g} mm equivalent)"
        sentences.append(lens + ".")
        tags.append(f"{focal.category}-lens")

    if sources:
        sentences.append("Derived from: " + ", ".join(sources) + ".")
    return " ".join(sentences), list(dict.fromkeys(tags))


def topic_words(text: str, count: int = TOPIC_WORDS) -> list[str]:
    """The ``count`` most frequent non-stop-words of ``MIN_TOPIC_LETTERS``+ letters,
    lower-cased; ties keep first-appearance order."""
    words = [w for w in (m.group(0).lower() for m in _WORD.finditer(text))
             if len(w) >= MIN_TOPIC_LETTERS and w not in STOP_WORDS and "'" not in w]
    counts = Counter(words)
    first = {w: i for i, w in reversed(list(enumerate(words)))}
    return sorted(counts, key=lambda w: (-counts[w], first[w]))[:count]


def _duration(duration_s: float) -> str:
    if duration_s < 1.0:
        return "sub-second"
    if duration_s < 90:
        return f"{round(duration_s)}-second"
    if duration_s < 90 * 60:
        return f"{round(duration_s / 60)}-minute"
    return f"{duration_s / 3600:.1f}-hour"


def _resolution(video: VideoInfo) -> str | None:
    width = video.display_width or video.width
    height = video.display_height or video.height
    if not width or not height:
        return None
    short = min(width, height)
    for limit, name in ((2160, "4K"), (1440, "1440p"), (1080, "1080p"), (720, "720p"), (480, "480p")):
        if short >= limit:
            return name
    return f"{short}p"


def _is_vertical(video: VideoInfo) -> bool:
    width = video.display_width or video.width
    height = video.display_height or video.height
    return bool(width and height and height > width)


def _motion(motion_mean: float | None) -> tuple[str, str] | None:
    if motion_mean is None:
        return None
    if motion_mean < STATIC_MOTION:
        return "a static picture", "static"
    if motion_mean < HIGH_MOTION:
        return "moderate motion", "moderate-motion"
    return "lots of motion", "high-motion"


def _people_sentence(faces: Faces) -> str:
    if faces.shot_scale == "no people":
        return "No faces were seen."
    most = faces.max_faces
    people = "one person" if most == 1 else f"up to {most} people"
    return f"Mostly {faces.shot_scale} shots, showing {people}."


def _people_tags(faces: Faces) -> list[str]:
    if faces.shot_scale == "no people":
        return ["no-people"]
    scale = "close-up" if faces.shot_scale == "close-up" else f"{faces.shot_scale}-shot"
    people = "person" if faces.max_faces == 1 else ("people" if faces.max_faces <= 3 else "group")
    return [scale, people]


def _language(code: str | None) -> str | None:
    if not code:
        return None
    return LANGUAGES.get(code.lower().split("-")[0], code)


def _screen_texts(items: Sequence[ScreenText]) -> list[str]:
    chosen = sorted((t for t in items if t.confidence >= MIN_TEXT_CONFIDENCE and t.text.strip()),
                    key=lambda t: (-t.frames, -t.confidence, t.start_s, t.text))
    texts: list[str] = []
    for item in chosen:
        text = " ".join(item.text.split())
        text = text if len(text) <= 40 else text[:39] + "\u2026"
        if text not in texts:
            texts.append(text)
        if len(texts) == MAX_SCREEN_TEXTS:
            break
    return texts


def _lighting(exposure: ExposureInfo) -> tuple[str, list[str]]:
    if exposure.median_luma < DARK_MEDIAN_LUMA:
        sentence, tags = "Dark, low-key picture", ["dark"]
    elif exposure.median_luma > BRIGHT_MEDIAN_LUMA:
        sentence, tags = "Bright, high-key picture", ["bright"]
    else:
        sentence, tags = "Balanced exposure", []
    if exposure.warning and exposure.reason:
        sentence += f" ({exposure.reason})"
        if exposure.stop_offset_ev <= UNDER_WARN_EV:
            tags.append("underexposed")
        elif exposure.stop_offset_ev >= OVER_WARN_EV:
            tags.append("overexposed")
        if exposure.clipped_highlights_pct > CLIPPED_WARN_PCT:
            tags.append("clipped-highlights")
    elif not tags:
        tags.append("well-exposed")
    return sentence + ".", tags


def _tag(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
