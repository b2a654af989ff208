"""Config loading: real configs, dotted overrides, early and precise errors."""
from pathlib import Path

import pytest

from comp.config import SCHEMA, load_config, parse_duration
from comp.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_defaults_cover_every_key():
    cfg = load_config([])
    assert cfg.split.folds == 5 and cfg.train.lr == "auto" and cfg.model.name == "auto"
    assert set(SCHEMA) <= {k for k in SCHEMA if cfg.get(k) is not None or SCHEMA[k].type.endswith("?")}


@pytest.mark.parametrize("group_file", sorted(CONFIGS.glob("*/*.yaml")), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_group_file_loads(group_file):
    cfg = load_config([f"{group_file.parent.name}={group_file.stem}"])
    assert cfg.stage == "all"


def test_overrides_are_typed():
    cfg = load_config(["train.lr=1e-3", "train.epochs=7", "overwrite=true", "budget=90s",
                       "train.augmentations=[shift, rotate]", "model.hp.filters=64", "data.image_size=[16, 16]"])
    assert cfg.train.lr == 0.001 and cfg.train.epochs == 7 and cfg.overwrite is True
    assert cfg.train.augmentations == ["shift", "rotate"]
    assert cfg.model.hp == {"filters": 64}
    assert cfg.data.image_size == [16, 16]


def test_group_then_override_order():
    cfg = load_config(["experiment=smoke", "train.epochs=5"])
    assert cfg.split.folds == 2 and cfg.train.epochs == 5


def test_model_group_or_plain_plugin_name():
    assert load_config(["model=small_cnn"]).model.hp["filters"] == 32
    cfg = load_config(["model=mlp"])
    assert cfg.model.name == "mlp" and cfg.model.hp == {}


@pytest.mark.parametrize("word, message", [
    ("train.epoch=3", "unknown config key 'train.epoch' in override 'train.epoch=3': did you mean 'train.epochs'?"),
    ("split.fold=3", "did you mean 'split.folds'?"),
    ("train.epochs=abc", "train.epochs in override 'train.epochs=abc': expected an integer, got 'abc'"),
    ("train.lr=fast", "train.lr in override 'train.lr=fast': expected a number, got 'fast'"),
    ("overwrite=maybe", "overwrite in override 'overwrite=maybe': expected true or false"),
    ("budget=soon", "expected a duration above zero such as 90s, 15m or 2h"),
    ("train.strategy=tpu", "'tpu' is not one of auto, default, one_device, mirrored"),
    ("experiment=nope", "experiment=nope: no "),
    ("epochs", "argument 'epochs' is not key=value"),
])
def test_bad_overrides_fail_before_work(word, message):
    with pytest.raises(ConfigError) as err:
        load_config([word])
    assert message in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("15m", 900), ("2h", 7200), ("1h30m", 5400), ("45", 45)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_digest_depends_only_on_named_sections():
    a, b = load_config([]), load_config(["train.epochs=3"])
    assert a.digest(["split"]) == b.digest(["split"])
    assert a.digest(["train"]) != b.digest(["train"])
