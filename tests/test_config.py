"""Configuration is validated once, at the edge, with one-line errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamdp.config import load_config
from streamdp.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("path", [p for p in sorted(CONFIGS.glob("*.yaml")) if p.name != "train.yaml"], ids=lambda p: p.name)
def test_shipped_configs_validate(path: Path) -> None:
    load_config(path)


def test_default_yaml_spells_out_the_defaults() -> None:
    assert load_config(CONFIGS / "default.yaml") == load_config(None)


def test_unknown_key_is_named(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("track:\n  coast_second: 1\n")
    with pytest.raises(ConfigError, match=r"unknown key 'track\.coast_second'"):
        load_config(cfg)


def test_bad_value_is_named_and_overrides_apply() -> None:
    with pytest.raises(ConfigError, match=r"mechanism\.dp_image\.epsilon"):
        load_config(None, {"mechanism.dp_image.epsilon": -1})
    assert load_config(None, {"mechanism.name": "blur"}).mechanism.name == "blur"
    with pytest.raises(ConfigError, match="unknown mechanism 'nope'"):
        load_config(None, {"mechanism.name": "nope"})
