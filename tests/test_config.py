from __future__ import annotations

from pathlib import Path

import pytest

from rayflow.config import load_settings


def test_precedence_defaults_file_env_flags(tmp_path: Path) -> None:
    home = tmp_path / "h"
    home.mkdir()
    (home / "config.toml").write_text(
        'concurrency = 3\nretries = 5\nextensions = ["mp4", ".MOV"]\n[sample]\ncount = 7\n'
    )
    env = {"RAYFLOW_HOME": str(home), "RAYFLOW_RETRIES": "4"}
    s = load_settings(env=env, retries=1)
    assert s.home == home.resolve()
    assert s.concurrency == 3          # file
    assert s.retries == 1              # flag beats env beats file
    assert s.extensions == (".mp4", ".mov")
    assert s.sample.count == 7
    assert s.thumbnails.count == 3     # untouched default
    assert s.output_dir == home.resolve() / "output"
    assert s.clip_dir("abc") == home.resolve() / "output" / "clips" / "abc"


def test_unknown_keys_are_errors(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("concurency = 3\n")
    with pytest.raises(ValueError, match="unknown setting 'concurency'"):
        load_settings(config_file=cfg, env={})
    cfg.write_text("[sample]\ncuont = 3\n")
    with pytest.raises(ValueError, match="sample.cuont"):
        load_settings(config_file=cfg, env={})


def test_secrets_are_not_in_repr() -> None:
    s = load_settings(env={"RAYFLOW_QDRANT_API_KEY": "s3cret"})
    assert s.qdrant_api_key == "s3cret"
    assert "s3cret" not in repr(s)
