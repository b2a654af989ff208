"""Config loading: real configs, dotted overrides, early and precise errors."""
from pathlib import Path

import pytest

from comp.config import SCHEMA, load_config, parse_duration
from comp.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_defaults_cover_every_key():
    cfg = load_config([])
    assert cfg.split.folds == 5 and cfg.train.lr == "auto" and cfg.model.name == "auto"
    assert set(SCHEMA) <= {k for k in SCHEMA if cfg.get(k) is not None or SCHEMA[k].nullable}


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


def test_the_schema_help_defaults_and_checks_come_from_the_section_fields():
    """One source: a field of a section (here TrainSpec, the train section itself) is its key's
    default, help, range and type; --help, the defaults and validation all follow it."""
    import dataclasses

    from comp.config import describe_keys
    from comp.training.spec import TrainSpec

    cfg = load_config([])
    assert cfg.train == TrainSpec()  # the training library's spec is the train section
    help_text = describe_keys()
    for f in dataclasses.fields(TrainSpec):
        spec = SCHEMA[f"train.{f.name}"]
        assert spec.help in help_text and f"train.{f.name}" in help_text
    assert "(default: 40)" in help_text.splitlines()[[k for k in SCHEMA].index("train.epochs")]
    low = SCHEMA["train.epochs"].low
    with pytest.raises(ConfigError, match=f"train.epochs in override 'train.epochs=0': 0 is out of range; use a "
                                          f"number >= {low:g}"):
        load_config(["train.epochs=0"])
    with pytest.raises(ConfigError, match="train.schedule in override 'train.schedule=linear': 'linear' is not one of "
                                          "constant, cosine, onecycle, step, plateau"):
        load_config(["train.schedule=linear"])


def test_retired_keys_say_what_replaced_them_and_saved_configs_load_back():
    from comp.config import Config

    with pytest.raises(ConfigError, match="config key 'inspect.max_pairwise' in override 'inspect.max_pairwise=5' "
                                          "is retired: near-duplicate search"):
        load_config(["inspect.max_pairwise=5"])
    cfg = load_config(["experiment=smoke", "model.hp.filters=16", "data.image_size=[16, 16]"])
    assert Config.from_dict(cfg.to_dict()) == cfg  # a run's config.yaml reads back as the same config
    assert cfg.merged({"train.epochs": 7, "model.hp.blocks": 1}).train.epochs == 7
    with pytest.raises(ConfigError, match="train.epochs in a trial: expected an integer"):
        cfg.merged({"train.epochs": "many"})


def test_a_config_file_names_its_model_as_the_command_line_does(tmp_path):
    """`model: mlp` in a file means model=mlp (it said "unknown config key 'model' ... did you
    mean 'model'?"); an experiment in a file says where it belongs."""
    best = tmp_path / "best.yaml"
    best.write_text("model: mlp\ntrain:\n  epochs: 7\n")
    cfg = load_config([f"config={best}"])
    assert (cfg.model.name, cfg.model.hp, cfg.train.epochs) == ("mlp", {}, 7)
    best.write_text("model:\n  name: mlp\n  hp: {units: 64}\n")
    assert load_config([f"config={best}"]).model.hp == {"units": 64}
    best.write_text("experiment: smoke\n")
    with pytest.raises(ConfigError, match=r"experiment=smoke\); in a file, set its keys instead"):
        load_config([f"config={best}"])
