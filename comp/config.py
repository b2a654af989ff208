"""The resolved configuration: one dataclass per section, config groups and dotted overrides.

Every key is a field of a section below (the ``train`` section is the training library's
``TrainSpec``) holding its default, help, kind, range and choices (``comp.settings``). The
key schema (``SCHEMA``), ``comp run --help``, the defaults and the validation are derived
from those fields, so a wrong key or value fails before any work starts, with one line.
``configs/`` holds the config groups (``experiment/``, ``model/``): files of keys merged over
the defaults.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml

from comp.errors import ConfigError
from comp.settings import (Bool, Duration, Float, Folds, Int, Items, Mapping, Name, NumberOrAuto, Size, Spec, Str,
                           Views, build, flatten, parse_duration, schema, section, setting)
from comp.training.spec import TrainSpec

__all__ = ["Config", "SCHEMA", "load_config", "parse_duration", "describe_keys", "config_dir"]


@dataclass(frozen=True)
class Paths:
    runs: str = setting("runs", "folder holding run directories (relative to the working directory)", Str())
    submissions: str = setting("submissions", "folder receiving submission CSVs", Str())
    cache: str | None = setting(None, "cache folder (demo data); null = $COMP_CACHE or ~/.cache/comp", Str(),
                                nullable=True)


@dataclass(frozen=True)
class Data:
    image_size: list | None = setting(None, "[height, width] images are resized to; null = most common size", Size(),
                                      nullable=True)
    channels: int | None = setting(None, "1 (gray) or 3 (colour); null = most common", Int(), choices=("1", "3"),
                                   nullable=True)
    max_pixels: int = setting(64000000, "an image whose header claims more pixels is a bad image, refused before "
                                        "decoding", Int(), low=1)
    in_memory_mb: float = setting(256.0, "decoded image sets up to this size are held in memory; larger ones stay in "
                                         "the disk cache and are read batch by batch", Float(), low=0)
    on_bad_image: str = setting("error", "an image that cannot be decoded: stop with an error, or skip it and list it",
                                Str(), choices=("error", "skip"))


@dataclass(frozen=True)
class Inspect:
    near_distance: float = setting(8.0, "near duplicates: at most this RMS pixel distance (0-255) of 16x16 thumbnails "
                                        "aligned within 2 px", Float(), low=0)
    near_ratio: float = setting(0.2, "near duplicates: at most this fraction of the data's median distance from an "
                                     "image to its 5th nearest neighbour", Float(), low=0)
    max_group_share: float = setting(0.01, "a near-duplicate group larger than this share of the images is "
                                           "look-alikes chained together, not copies: refused", Float(), low=0, high=1)
    phash_distance: int = setting(6, "near duplicates: Hamming distance of 64-bit DCT hashes (images of at least "
                                     "32 px)", Int(), low=0, high=64)
    adversarial: bool = setting(True, "adversarial validation: a classifier told to separate train from test rows; "
                                      "AUC well above 0.5 is a PROBLEM line", Bool())
    examples_per_class: int = setting(8, "images per class in the contact sheet", Int(), low=1)


@dataclass(frozen=True)
class Split:
    folds: int = setting(5, "number of stratified folds", Int(), low=2)
    seed: int = setting(42, "seed of the fold shuffle", Int(), low=0)
    group_column: str | None = setting(None, "train.csv column whose rows must share a fold (e.g. patient id)", Str(),
                                       nullable=True)
    time_column: str | None = setting(None, "train.csv column of dates, times or numbers that orders the rows: folds "
                                            "chain forward in time (fold k learns from the rows before its window, "
                                            "the earliest block is history only), for a test period after the "
                                            "train period; null = shuffled stratified folds", Str(), nullable=True)
    duplicate_aware: bool = setting(True, "keep duplicates and near duplicates found by inspect in one fold", Bool())


@dataclass(frozen=True)
class Baseline:
    variants: list | str = setting("auto", "more model plugins trained with the same recipe on the same folds, side "
                                           "by side in baseline/variants/<name>/ (OOF predictions and fold models for "
                                           "the ensemble stage to blend), e.g. [mlp, hgb]; the baseline itself stays "
                                           "model.name; auto: the task kind's portfolio for the inputs (tables: "
                                           "gradient boosting, extra trees and a linear model, from 10,000 rows also "
                                           "hgb_long and the mlp; images: a "
                                           "pretrained backbone's frozen_features beside it), none "
                                           "where ensemble.candidates leaves out variants",
                                   Items("a list of model plugin names such as [mlp, hgb], or auto", auto=True))
    stretch: float = setting(2.0, "under budget=, when no search would start in the time the main model's "
                                  "train.epochs schedule leaves, the run plan lets its folds run up to this many "
                                  "times train.epochs (each still fitted to its time); 1 = never longer", Float(),
                             low=1.0)


@dataclass(frozen=True)
class Regularize:
    folds: int | str = setting(3, "each change is scored on the first N folds (all: every fold), paired with the "
                                  "baseline on the same folds; the keep test has N-1 degrees of freedom", Folds())
    changes: list | str = setting("auto", "changes tried one at a time from the baseline's configuration, in this "
                                          "order: auto = every change that applies, by expected gain per second "
                                          "(docs/recipe.md 5), or a list of their names",
                                  Items("a list of change names such as [label_smoothing, weight_decay], or auto",
                                        auto=True))
    time: float = setting(1.0, "without budget=: at most this many times the baseline's training time (at least a "
                               "minute; 0 = try nothing)", Float(), low=0)


@dataclass(frozen=True)
class Tune:
    folds: int | str = setting(3, "a trial's score is the OOF metric over the first N folds (all: every fold); the "
                                  "result's published score comes from the others", Folds())
    oracle: str = setting("bayesian", "keras-tuner oracle of the coarse search; the fine search is bayesian (random "
                                      "for random)", Str(), choices=("random", "bayesian", "hyperband"))
    coarse_trials: int = setting(8, "trials of the short, wide search (hyperband: its brackets decide)", Int(), low=0)
    coarse_epochs: float = setting(0.25, "coarse trials train this fraction of the baseline's epochs", Float(), low=0,
                                   high=1, open_low=True)
    fine_trials: int = setting(4, "trials of the full-length search in ranges narrowed around the coarse best", Int(),
                               low=0)
    time: float = setting(1.5, "without budget=: at most this many times the baseline's training time, search and "
                               "the final training on every fold together (at least a minute; 0 = no trials)",
                          Float(), low=0)
    space: dict = setting({}, "searched ranges by key, e.g. {train.lr: [1e-4, 1e-2], model.hp.filters: [16, 64]}; a "
                              "choice knob takes a list of values; [] leaves a knob out", Mapping())


@dataclass(frozen=True)
class Bag:
    seeds: int | str = setting("auto", "more seeds of the final configuration trained on each fold, their mean one "
                                       "candidate (docs/recipe.md 8): auto = under budget= as many as the time the "
                                       "other training stages leave fits (at most 4 a fold), without one none; N = "
                                       "N more a fold", NumberOrAuto(lambda v: v >= 0 and v == int(v),
                                                                    "; use auto or a whole number of at least 0"))


@dataclass(frozen=True)
class Model:
    name: str = setting("auto", "model plugin (see `comp plugins`); auto = the task kind's default for the inputs "
                                "(images: small_cnn, street numbers: seq_cnn, tables: hgb)", Str())
    hp: dict = setting({}, "fixed values for the model plugin's hyperparameters", Mapping())


@dataclass(frozen=True)
class Check:
    lr: float = setting(1e-3, "Adam LR of the short check trainings (zero-input baseline, overfit)", Float(), low=0,
                        open_low=True)
    max_rows: int = setting(10000, "the checks train on at most this many training rows (a random sample) and a "
                                   "quarter as many validation rows", Int(), low=1)
    zero_input_epochs: int = setting(2, "epochs of the real-vs-zeroed-inputs comparison", Int(), low=1)
    overfit_examples: int = setting(20, "size of the batch the model must overfit", Int(), low=1)
    overfit_steps: int = setting(300, "maximum steps to overfit that batch", Int(), low=1)
    lr_min: float = setting(1e-5, "first LR of the LR range test", Float(), low=0, open_low=True)
    lr_max: float = setting(1.0, "last LR of the LR range test", Float(), low=0, open_low=True)
    lr_steps: int = setting(200, "steps of the LR range test (one batch each, LR growing exponentially)", Int(),
                            low=10)


@dataclass(frozen=True)
class Predict:
    source: str = setting("auto", "training stage whose fold models predict the test set; auto = the one with the "
                                  "best OOF score (ties: the earliest)", Str())
    batch_size: int = setting(256, "batch size for inference", Int(), low=1)
    tta: int | str | list = setting("auto", "test-time augmentation views per model, the original included: auto = "
                                            "4 for images (none for tables), N, or a list of view names (`comp "
                                            "plugins` lists them); the ensemble keeps them per model only where they "
                                            "improve its OOF score", Views())


@dataclass(frozen=True)
class Submit:
    copy_to: str | None = setting(None, "also write the validated submission to this file, replacing it (a Kaggle "
                                        "code competition reads submission.csv from the working directory); "
                                        "null = only submissions/<run>-<stage>-<metric>=<score>.csv", Str(),
                                  nullable=True)


@dataclass(frozen=True)
class Ensemble:
    rounds: int = setting(25, "rounds of greedy ensemble selection with replacement (Caruana); 0 = the best single "
                              "candidate", Int(), low=0)
    candidates: list = setting(["fold", "snapshots", "swa", "ema", "variants"],
                               "what the ensemble may blend: any of fold (each stage's fold models), snapshots (last "
                               "epochs), swa, ema, variants (baseline.variants)", Items())
    stack: bool = setting(True, "try a linear level-2 model on the candidates' OOF predictions (stacking); kept only "
                                "when its nested score beats the blend's beyond noise", Bool())


@dataclass(frozen=True)
class Config:
    """The resolved configuration, read-only: ``cfg.train.epochs``, ``cfg.get("train.epochs")``."""

    stage: str = setting("all", "stage to run, or 'all'; earlier stages run first when stale", Str())
    competition: str | None = setting(None, "competition folder (Kaggle layout), or demo:NAME for a bundled demo "
                                            "(digits, street, digit-tags, digit-value, wine, breast-cancer, "
                                            "diabetes); null = demo:digits", Str(), nullable=True)
    run: str | None = setting(None, "run name: outputs go to <paths.runs>/<run>/; null = competition folder name",
                              Name(), nullable=True)
    budget: str | None = setting(None, "wall-clock limit for the whole command, e.g. 90s, 15m, 2h", Duration(),
                                 nullable=True)
    overwrite: bool = setting(False, "rerun the requested stage(s) even when inputs and config are unchanged", Bool())
    seed: int = setting(42, "seed for weights, shuffling and augmentation", Int(), low=0)
    strict: bool = setting(False, "exit 4 (after publishing the submission) when a part of the run failed and was "
                                  "left out (a trial, an ensemble candidate, stage regularize or tune); false = a "
                                  "warning line and exit 0", Bool())
    report: bool = setting(True, "write runs/<run>/report.html at the end of stage=all (comp report writes it any "
                                 "time)", Bool())
    task: str | None = setting(None, "task kind (classification, multilabel, regression, sequence or a comp.tasks "
                                     "plugin); null = inferred from the target", Str(), nullable=True)
    metric: str | None = setting(None, "competition metric (a comp.metrics plugin, see `comp plugins`); null = named "
                                       "in a description file, implied by sample_submission, or the task's default",
                                 Str(), nullable=True)
    paths: Paths = section(Paths)
    data: Data = section(Data)
    inspect: Inspect = section(Inspect)
    split: Split = section(Split)
    baseline: Baseline = section(Baseline)
    regularize: Regularize = section(Regularize)
    tune: Tune = section(Tune)
    bag: Bag = section(Bag)
    train: TrainSpec = section(TrainSpec)
    model: Model = section(Model)
    check: Check = section(Check)
    predict: Predict = section(Predict)
    ensemble: Ensemble = section(Ensemble)
    submit: Submit = section(Submit)

    def get(self, dotted: str) -> Any:
        node: Any = self
        for part in dotted.split("."):
            node = getattr(node, part)
        return node

    def flat(self) -> dict[str, Any]:
        """Dotted key -> value (a copy)."""
        return {k: _copy(v) for k, v in flatten(self).items()}

    def to_dict(self) -> dict[str, Any]:
        """The nested mapping of every key (as config.yaml holds it)."""
        return _unflatten(self.flat())

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "a saved config") -> "Config":
        """A config from a nested mapping (e.g. a run's config.yaml), each key checked."""
        flat = {k: _coerce(k, v, where) for k, v in _flatten(data, where).items()}
        return build(cls, flat)

    def merged(self, values: dict[str, Any], where: str = "a trial") -> "Config":
        """A copy with dotted ``values`` set (``model.hp.NAME`` for a plugin knob), each checked
        like a command-line override."""
        flat = self.flat()
        for key, value in values.items():
            if key.startswith("model.hp."):
                flat["model.hp"] = {**flat["model.hp"], key[len("model.hp."):]: value}
            else:
                _check_known(key, where)
                flat[key] = _coerce(key, value, where)
        return build(Config, flat)

    def reading(self):
        """How this config reads the competition's inputs (``comp.data.loading.Reading``)."""
        from comp.data.loading import Reading
        from comp.paths import cache_root

        d = self.data
        return Reading(cache_root(self.paths.cache), tuple(d.image_size) if d.image_size else None, d.channels,
                       d.max_pixels, d.in_memory_mb, d.on_bad_image,
                       (self.split.group_column,) if self.split.group_column else ())

    def digest(self, prefixes: Iterable[str]) -> str:
        """Hash of the keys under ``prefixes``: what a stage's cache depends on."""
        picked = {
            k: self.get(k)
            for k in sorted(SCHEMA)
            if any(k == p or k.startswith(p + ".") for p in prefixes)
        }
        return hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()[:16]


SCHEMA: dict[str, Spec] = schema(Config)

# Command-line words that select a file of a config group instead of setting one key.
GROUPS = ("experiment", "model")


def config_dir() -> Path:
    """Folder holding the config groups (``experiment/``, ``model/``)."""
    env = os.environ.get("COMP_CONFIGS")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "configs"


def load_config(overrides: Iterable[str] = (), base: Path | None = None) -> Config:
    """The defaults, then the selected group files and ``key=value`` overrides, in order."""
    root = base or config_dir()
    flat = Config().flat()
    for word in overrides:
        key, value = _split_override(word)
        if key in GROUPS and (key == "experiment" or (root / key / f"{value}.yaml").is_file()):
            group_file = root / key / f"{value}.yaml"
            if not group_file.is_file():
                available = sorted(p.stem for p in (root / key).glob("*.yaml"))
                raise ConfigError(f"{key}={value}: no {group_file}; available: {', '.join(available)}")
            for gkey, gvalue in _flatten(_read_yaml(group_file), str(group_file)).items():
                flat[gkey] = _coerce(gkey, gvalue, str(group_file))
        elif key == "config":  # a file of keys, e.g. runs/<run>/tune/best.yaml
            path = Path(value).expanduser()
            if not path.is_file():
                raise ConfigError(f"config={value}: no such file; give the path of a YAML file of config keys "
                                  "(e.g. runs/<run>/tune/best.yaml)")
            for fkey, fvalue in _flatten(_read_yaml(path), str(path)).items():
                flat[fkey] = _coerce(fkey, fvalue, str(path))
        elif key == "model":
            flat["model.name"] = value  # a plugin without a group file of its own
            flat["model.hp"] = {}
        elif key.startswith("model.hp."):
            flat["model.hp"] = {**flat["model.hp"], key[len("model.hp."):]: yaml.safe_load(value)}
        else:
            flat[key] = _coerce(key, value, f"override {word!r}")
    return build(Config, flat)


def describe_keys() -> str:
    """Every key with its type and help, for ``comp run --help``."""
    defaults = Config().flat()
    width = max(map(len, SCHEMA))
    lines = []
    for key, spec in SCHEMA.items():
        choices = f" [{'|'.join(spec.choices)}]" if spec.choices else ""
        lines.append(f"  {key:<{width}}  {spec.help}{choices} (default: {defaults.get(key)!r})")
    return "\n".join(lines)


def _copy(value: Any) -> Any:
    return type(value)(value) if isinstance(value, (list, dict)) else value


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc.__class__.__name__}); fix the file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    return data


def _flatten(data: dict[str, Any], where: str, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for k, v in data.items():
        key = f"{prefix}{k}"
        if key == "model" and isinstance(v, str):  # `model: mlp`, as `model=mlp` on the command line
            flat.update({"model.name": v, "model.hp": {}})
        elif key == "experiment" and not isinstance(v, dict):
            raise ConfigError(f"config key 'experiment' in {where}: an experiment is chosen on the command line "
                              f"(experiment={v}); in a file, set its keys instead")
        elif isinstance(v, dict) and key not in SCHEMA:
            flat.update(_flatten(v, where, key + "."))
        else:
            _check_known(key, where)
            flat[key] = v
    return flat


def _unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


# Keys that existed once: a user's old command or config gets told what replaced them.
RETIRED = {
    "inspect.max_pairwise": "near-duplicate search now runs at every size through a neighbour index; "
                            "drop the key (inspect.near_ratio and inspect.max_group_share tune it)",
}


def _check_known(key: str, where: str) -> None:
    if key in SCHEMA:
        return
    if key in RETIRED:
        raise ConfigError(f"config key '{key}' in {where} is retired: {RETIRED[key]}")
    close = difflib.get_close_matches(key, list(SCHEMA) + list(GROUPS), n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'?" if close else "see `comp run --help` for the keys"
    raise ConfigError(f"unknown config key '{key}' in {where}: {hint}")


def _split_override(word: str) -> tuple[str, str]:
    if "=" not in word:
        raise ConfigError(f"argument {word!r} is not key=value; e.g. stage=all or train.epochs=3")
    key, value = word.split("=", 1)
    key = key.strip()
    if not key.startswith("model.hp.") and key not in GROUPS and key != "config":
        _check_known(key, f"override {word!r}")
    return key, value


def _coerce(key: str, value: Any, where: str) -> Any:
    """Check ``value`` against the schema of ``key``; strings from the command line are parsed."""
    return SCHEMA[key].coerce(key, value, where)
