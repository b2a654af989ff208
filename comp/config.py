"""The resolved configuration: configs/default.yaml, config groups and dotted overrides.

Values live in ``configs/*.yaml``; the schema below gives every key its type and help
text, so a wrong key or type fails before any work starts.
"""
from __future__ import annotations

import copy
import difflib
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml

from comp.errors import ConfigError


@dataclass(frozen=True)
class Key:
    type: str  # int | float | lr | momentum | str | bool | duration | list | dict, "?" suffix = may be null
    help: str
    choices: tuple[str, ...] = ()
    low: float | None = None  # numbers: the smallest value allowed
    high: float | None = None  # numbers: the largest value allowed
    open_low: bool = False  # low itself is not allowed (e.g. a learning rate > 0)


SCHEMA: dict[str, Key] = {
    "stage": Key("str", "stage to run, or 'all'; earlier stages run first when stale"),
    "competition": Key("str?", "competition folder (Kaggle layout), or demo:NAME for a bundled demo (digits, "
                               "street, digit-tags, digit-value, wine, breast-cancer, diabetes); null = demo:digits"),
    "run": Key("name?", "run name: outputs go to <paths.runs>/<run>/; null = competition folder name"),
    "budget": Key("duration?", "wall-clock limit for the whole command, e.g. 90s, 15m, 2h"),
    "overwrite": Key("bool", "rerun the requested stage(s) even when inputs and config are unchanged"),
    "seed": Key("int", "seed for weights, shuffling and augmentation", low=0),
    "report": Key("bool", "write runs/<run>/report.html at the end of stage=all (comp report writes it any time)"),
    "task": Key("str?", "task kind (classification, multilabel, regression, sequence or a comp.tasks plugin); "
                        "null = inferred from the target"),
    "metric": Key("str?", "competition metric (a comp.metrics plugin, see `comp plugins`); null = named in a "
                          "description file, implied by sample_submission, or the task's default"),
    "paths.runs": Key("str", "folder holding run directories (relative to the working directory)"),
    "paths.submissions": Key("str", "folder receiving submission CSVs"),
    "paths.cache": Key("str?", "cache folder (demo data); null = $COMP_CACHE or ~/.cache/comp"),
    "data.image_size": Key("size?", "[height, width] images are resized to; null = most common size"),
    "data.channels": Key("int?", "1 (gray) or 3 (colour); null = most common", ("1", "3")),
    "data.max_pixels": Key("int", "an image whose header claims more pixels is a bad image, refused before "
                                  "decoding", low=1),
    "data.in_memory_mb": Key("float", "decoded image sets up to this size are held in memory; larger ones stay "
                                      "in the disk cache and are read batch by batch", low=0),
    "data.on_bad_image": Key(
        "str", "an image that cannot be decoded: stop with an error, or skip it and list it", ("error", "skip")
    ),
    "inspect.near_distance": Key(
        "float", "near duplicates: at most this RMS pixel distance (0-255) of 16x16 thumbnails aligned within "
                 "2 px", low=0
    ),
    "inspect.near_ratio": Key(
        "float", "near duplicates: at most this fraction of the data's median distance from an image to its "
                 "5th nearest neighbour", low=0
    ),
    "inspect.max_group_share": Key(
        "float", "a near-duplicate group larger than this share of the images is look-alikes chained "
                 "together, not copies: refused", low=0, high=1
    ),
    "inspect.phash_distance": Key(
        "int", "near duplicates: Hamming distance of 64-bit DCT hashes (images of at least 32 px)", low=0, high=64
    ),
    "inspect.adversarial": Key("bool", "adversarial validation: a classifier told to separate train from test "
                                       "rows; AUC well above 0.5 is a PROBLEM line"),
    "inspect.examples_per_class": Key("int", "images per class in the contact sheet", low=1),
    "split.folds": Key("int", "number of stratified folds", low=2),
    "split.seed": Key("int", "seed of the fold shuffle", low=0),
    "split.group_column": Key("str?", "train.csv column whose rows must share a fold (e.g. patient id)"),
    "split.duplicate_aware": Key("bool", "keep duplicates and near duplicates found by inspect in one fold"),
    "baseline.variants": Key("list", "more model plugins trained with the same recipe on the same folds, side by side "
                                     "in baseline/variants/<name>/ (OOF predictions and fold models for the "
                                     "ensemble stage), e.g. [mlp, hgb]; the baseline itself stays model.name"),
    "regularize.folds": Key("folds", "each change is scored on the first N folds (all: every fold), paired with the "
                                     "baseline on the same folds"),
    "regularize.changes": Key("changes", "changes tried one at a time from the baseline's configuration, in this "
                                         "order: auto = every change that applies, by expected gain per second "
                                         "(docs/recipe.md 5), or a list of their names"),
    "regularize.time": Key("float", "without budget=: at most this many times the baseline's training time (at "
                                    "least a minute; 0 = try nothing)", low=0),
    "tune.folds": Key("folds", "a trial's score is the OOF metric over the first N folds (all: every fold)"),
    "tune.oracle": Key("str", "keras-tuner oracle of the coarse search; the fine search is bayesian (random for "
                              "random)", ("random", "bayesian", "hyperband")),
    "tune.coarse_trials": Key("int", "trials of the short, wide search (hyperband: its brackets decide)", low=0),
    "tune.coarse_epochs": Key("float", "coarse trials train this fraction of the baseline's epochs", low=0,
                              high=1, open_low=True),
    "tune.fine_trials": Key("int", "trials of the full-length search in ranges narrowed around the coarse best",
                            low=0),
    "tune.time": Key("float", "without budget=: at most this many times the baseline's training time, search "
                              "and the final training on every fold together (at least a minute; 0 = no trials)",
                     low=0),
    "tune.space": Key("dict", "searched ranges by key, e.g. {train.lr: [1e-4, 1e-2], model.hp.filters: [16, 64]}; "
                              "a choice knob takes a list of values; [] leaves a knob out"),
    "train.epochs": Key("int", "most epochs per fold: the schedule's length without a budget (early stopping may "
                               "end sooner); under budget= the plan fits the schedule into the fold's time, up "
                               "to this", low=1),
    "train.batch_size": Key("int", "batch size per replica", low=1),
    "train.loss": Key("str", "loss: auto (the task's choice for its metric) or one the task kind takes "
                             "(regression: mse, mae, huber)"),
    "train.optimizer": Key("str", "adam, adamw (decoupled weight decay) or sgd (Nesterov momentum 0.9)",
                           ("adam", "adamw", "sgd")),
    "train.weight_decay": Key("float", "decoupled weight decay (adamw, sgd); biases and BatchNorm are not decayed",
                              low=0),
    "train.schedule": Key("str", "LR schedule after the warmup: constant, cosine (to 1% of the peak), onecycle, "
                                 "step (10x down at 50% and 75%), plateau (halve after 3 epochs without improvement)",
                          ("constant", "cosine", "onecycle", "step", "plateau")),
    "train.warmup": Key("float", "epochs of linear LR warmup", low=0),
    "train.label_smoothing": Key("float", "label smoothing of the cross-entropy (classification kinds)", low=0,
                                 high=0.5),
    "train.clip": Key("float", "clip the global gradient norm to this; 0 = off", low=0),
    "train.ema": Key("float", "momentum of an EMA of the weights, evaluated each epoch and kept when best; 0 = off",
                     low=0, high=0.9999),
    "train.snapshots": Key("int", "keep the weights of this many best epochs per fold (by the competition metric) "
                                  "for the ensemble's checkpoint ensembles; 0 = none", low=0),
    "train.swa_epochs": Key("int", "keep the mean of the weights of the last N epochs per fold (SWA) for the "
                                   "ensemble; 0 = none", low=0),
    "train.keep_ema": Key("momentum", "keep an EMA of the weights per fold for the ensemble (momentum; auto = "
                                      "averaging over about 2 epochs of steps; 0 = none)"),
    "train.lr": Key("lr", "peak learning rate; auto = the LR suggested by stage check's LR range test "
                          "(1e-3 when it suggests none)"),
    "train.patience": Key("int", "epochs without improvement of the competition metric before stopping, for the "
                                 "constant and plateau schedules without a budget (a decaying schedule runs to its "
                                 "end; the best epoch's weights are kept either way)", low=1),
    "train.strategy": Key(
        "str", "tf.distribute strategy; auto picks from TF_CONFIG and the devices",
        ("auto", "default", "one_device", "mirrored", "multi_worker"),
    ),
    "train.lr_scaling": Key("str", "how the LR grows with the number of replicas", ("linear", "sqrt", "none")),
    "train.mixed_precision": Key("str", "mixed_float16 compute; auto = on GPU only", ("auto", "on", "off")),
    "train.xla": Key("str", "compile the train step with XLA (jit_compile); auto = Keras's rule (GPU, no op "
                            "determinism: off in comp's deterministic runs); a step that does not compile trains "
                            "without XLA after a notice", ("auto", "on", "off")),
    "train.logical_cpus": Key("int?", "split the CPU into this many devices (tests the multi-device path)", low=1),
    "train.augmentations": Key("augmentations", "augmentation plugins applied while training, each NAME or "
                                                "NAME:STRENGTH (e.g. [shift:0.15,rotate:10]); auto = the light "
                                                "label-preserving ones that fit the inputs and the task "
                                                "(images: shift, rotate, zoom)"),
    "train.verbose": Key("bool", "print one line per epoch"),
    "train.bn_momentum": Key(
        "momentum", "BatchNorm moving-statistics momentum; auto = min(0.99, max(0.5, 1 - 4/steps per epoch))"
    ),
    "train.diagnostics": Key(
        "bool", "per-epoch diagnostics (diagnostics.csv, TensorBoard, learning curve) and verdicts per fold"
    ),
    "train.probe_every": Key(
        "every", "epochs between the diagnostics' probes (gradients, update ratios, activations); auto = the first "
                 "and last epochs and as many between as 2% of the training time allows; 1 = every epoch"
    ),
    "model.name": Key("str", "model plugin (see `comp plugins`); auto = the task kind's default for the inputs "
                             "(images: small_cnn, street numbers: seq_cnn, tables: hgb)"),
    "model.hp": Key("dict", "fixed values for the model plugin's hyperparameters"),
    "check.lr": Key("float", "Adam LR of the short check trainings (zero-input baseline, overfit)", low=0,
                    open_low=True),
    "check.max_rows": Key("int", "the checks train on at most this many training rows (a random sample) and "
                                 "a quarter as many validation rows", low=1),
    "check.zero_input_epochs": Key("int", "epochs of the real-vs-zeroed-inputs comparison", low=1),
    "check.overfit_examples": Key("int", "size of the batch the model must overfit", low=1),
    "check.overfit_steps": Key("int", "maximum steps to overfit that batch", low=1),
    "check.lr_min": Key("float", "first LR of the LR range test", low=0, open_low=True),
    "check.lr_max": Key("float", "last LR of the LR range test", low=0, open_low=True),
    "check.lr_steps": Key("int", "steps of the LR range test (one batch each, LR growing exponentially)", low=10),
    "predict.source": Key("str", "training stage whose fold models predict the test set; auto = the one with the "
                                 "best OOF score (ties: the earliest)"),
    "predict.batch_size": Key("int", "batch size for inference", low=1),
    "predict.tta": Key("tta", "test-time augmentation views per model, the original included: auto = 4 for images "
                              "(none for tables), N, or a list of view names (`comp plugins` lists them); the "
                              "ensemble keeps them per model only where they improve its OOF score"),
    "ensemble.rounds": Key("int", "rounds of greedy ensemble selection with replacement (Caruana); 0 = the best "
                                  "single candidate", low=0),
    "ensemble.candidates": Key("list", "what the ensemble may blend: any of fold (each stage's fold models), "
                                       "snapshots (top epochs), swa, ema, variants (baseline.variants)"),
}

# Types that take a number or the word auto, with the range the number must lie in.
AUTO_NUMBERS = {
    "lr": lambda v: 0 < v < float("inf"),
    "momentum": lambda v: 0 <= v < 1,
}

# Command-line words that select a file of a config group instead of setting one key.
GROUPS = ("experiment", "model")


def config_dir() -> Path:
    """Folder holding default.yaml and the group folders."""
    env = os.environ.get("COMP_CONFIGS")
    path = Path(env) if env else Path(__file__).resolve().parents[1] / "configs"
    if not (path / "default.yaml").is_file():
        raise ConfigError(
            f"no default.yaml in {path}: install comp from its source checkout "
            "(pip install -e .) or point COMP_CONFIGS at a configs folder"
        )
    return path


class Config:
    """Read-only nested view of a resolved config: ``cfg.train.epochs``."""

    def __init__(self, data: dict[str, Any]):
        object.__setattr__(self, "_data", data)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # no key starts so; pickling asks for dunders before _data exists
            raise AttributeError(name)
        try:
            value = self._data[name]
        except KeyError:
            raise AttributeError(name) from None
        return Config(value) if isinstance(value, dict) and name not in ("hp", "space") else value

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Config is read-only; pass overrides to load_config")

    def get(self, dotted: str) -> Any:
        node: Any = self._data
        for part in dotted.split("."):
            node = node[part]
        return node

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self._data)

    def merged(self, values: dict[str, Any], where: str = "a trial") -> "Config":
        """A copy with dotted ``values`` set (``model.hp.NAME`` for a plugin knob), each checked
        like a command-line override."""
        flat = _flatten(self.to_dict(), where)
        for key, value in values.items():
            if key.startswith("model.hp."):
                flat["model.hp"] = {**flat["model.hp"], key[len("model.hp."):]: value}
            else:
                _check_known(key, where)
                flat[key] = _coerce(key, value, where)
        return Config(_unflatten(flat))

    def digest(self, prefixes: Iterable[str]) -> str:
        """Hash of the keys under ``prefixes``: what a stage's cache depends on."""
        picked = {
            k: self.get(k)
            for k in sorted(SCHEMA)
            if any(k == p or k.startswith(p + ".") for p in prefixes)
        }
        return hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()[:16]


def load_config(overrides: Iterable[str] = (), base: Path | None = None) -> Config:
    """Compose default.yaml, the selected group files and ``key=value`` overrides."""
    root = base or config_dir()
    data = _read_yaml(root / "default.yaml")
    flat = {
        k: _coerce(k, v, str(root / "default.yaml"))
        for k, v in _flatten(data, str(root / "default.yaml")).items()
    }
    _check_schema_covered(flat, root / "default.yaml")

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
    return Config(_unflatten(flat))


def parse_duration(text: str) -> float:
    """'90s', '15m', '2h', '1h30m' or a plain number of seconds -> seconds."""
    text = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhd])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(text)
    scale = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(float(n) * scale[u] for n, u in parts)


def describe_keys() -> str:
    """Every key with its type and help, for ``comp run --help``."""
    defaults = _flatten(_read_yaml(config_dir() / "default.yaml"), "default.yaml")
    width = max(map(len, SCHEMA))
    lines = []
    for key, spec in SCHEMA.items():
        choices = f" [{'|'.join(spec.choices)}]" if spec.choices else ""
        lines.append(f"  {key:<{width}}  {spec.help}{choices} (default: {defaults.get(key)!r})")
    return "\n".join(lines)


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
        if isinstance(v, dict) and key not in SCHEMA:
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


def _check_schema_covered(flat: dict[str, Any], path: Path) -> None:
    missing = [k for k in SCHEMA if k not in flat]
    if missing:
        raise ConfigError(f"{path} lacks default values for {', '.join(missing)}")


def _split_override(word: str) -> tuple[str, str]:
    if "=" not in word:
        raise ConfigError(f"argument {word!r} is not key=value; e.g. stage=all or train.epochs=3")
    key, value = word.split("=", 1)
    key = key.strip()
    if not key.startswith("model.hp.") and key not in GROUPS and key != "config":
        _check_known(key, f"override {word!r}")
    return key, value


_BOOL = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def _coerce(key: str, value: Any, where: str) -> Any:
    """Check ``value`` against the schema type of ``key``; strings from the CLI are parsed."""
    spec = SCHEMA[key]
    kind, nullable = spec.type.rstrip("?"), spec.type.endswith("?")
    text = value.strip() if isinstance(value, str) else None
    if value is None or (text is not None and text.lower() in ("null", "none", "~") and nullable):
        if nullable:
            return None
        raise ConfigError(f"{key} in {where}: expected {_describe(kind)}, got null")
    try:
        if kind == "int":
            if isinstance(value, bool) or (text is None and not isinstance(value, int)):
                raise ValueError
            result: Any = int(text) if text is not None else value
        elif kind == "float":
            if isinstance(value, bool):
                raise ValueError
            result = float(text) if text is not None else float(value)
        elif kind in AUTO_NUMBERS:  # a number in the kind's range, or the word auto
            if isinstance(value, bool):
                raise ValueError
            if (text or "").lower() == "auto":
                result = "auto"
            else:
                result = float(text) if text is not None else float(value)
                if not AUTO_NUMBERS[kind](result):
                    raise ValueError
        elif kind == "bool":
            if text is not None:
                result = _BOOL[text.lower()]
            elif isinstance(value, bool):
                result = value
            else:
                raise ValueError
        elif kind == "str":
            if text is None and not isinstance(value, (int, float)):
                raise ValueError
            result = text if text is not None else str(value)
        elif kind == "duration":
            result = text if text is not None else str(value)
            if parse_duration(result) <= 0:
                raise ValueError
        elif kind == "name":
            result = text if text is not None else str(value)
            if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.=-]*", result) or result in (".", ".."):
                raise ValueError
        elif kind == "size":
            result = yaml.safe_load(text) if text is not None else value
            if (not isinstance(result, list) or len(result) != 2
                    or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in result)):
                raise ValueError
        elif kind == "folds":
            result = "all" if (text or "").lower() == "all" else (int(text) if text is not None else value)
            if result != "all" and (isinstance(result, bool) or not isinstance(result, int) or result < 1):
                raise ValueError
        elif kind == "every":  # auto, or every N (>= 1)
            result = yaml.safe_load(text) if text is not None else value
            if isinstance(result, str) and result.lower() == "auto":
                result = "auto"
            elif isinstance(result, bool) or not isinstance(result, int) or result < 1:
                raise ValueError
        elif kind == "tta":  # auto, a number of views (>= 1), or a list of view names
            result = yaml.safe_load(text) if text is not None else value
            if isinstance(result, str) and result.lower() == "auto":
                result = "auto"
            elif isinstance(result, str):
                result = [s.strip() for s in result.split(",") if s.strip()]
            if not (result == "auto" or (isinstance(result, int) and not isinstance(result, bool) and result >= 1)
                    or (isinstance(result, list) and all(isinstance(v, str) for v in result))):
                raise ValueError
        elif kind in ("augmentations", "changes") and (text or "").lower() == "auto":
            result = "auto"
        elif kind in ("list", "augmentations", "changes"):
            result = yaml.safe_load(text) if text is not None else value
            if isinstance(result, str):
                result = [s.strip() for s in result.split(",") if s.strip()]
            if not isinstance(result, list):
                raise ValueError
        elif kind == "dict":
            result = yaml.safe_load(text) if text is not None else value
            if not isinstance(result, dict):
                raise ValueError
        else:  # pragma: no cover - schema typo
            raise AssertionError(kind)
    except (ValueError, KeyError, TypeError, yaml.YAMLError):
        hint = {
            "lr": "; use a positive number such as 3e-4, or auto (the LR suggested by stage check)",
            "momentum": "; use a number in [0, 1) such as 0.9, or auto (from the steps per epoch)",
        }.get(kind, "")
        raise ConfigError(
            f"{key} in {where}: expected {_describe(kind)}, got {value!r}{hint}"
        ) from None
    if spec.choices and str(result) not in spec.choices:
        raise ConfigError(f"{key} in {where}: {result!r} is not one of {', '.join(spec.choices)}")
    if isinstance(result, (int, float)) and not isinstance(result, bool):
        too_low = spec.low is not None and (result <= spec.low if spec.open_low else result < spec.low)
        too_high = spec.high is not None and result > spec.high
        if too_low or too_high:
            bounds = (f"{'>' if spec.open_low else '>='} {spec.low:g}" if spec.low is not None else "")
            bounds += (" and " if bounds and spec.high is not None else "") + (
                f"<= {spec.high:g}" if spec.high is not None else "")
            raise ConfigError(f"{key} in {where}: {result!r} is out of range; use a number {bounds}")
    return result


def _describe(kind: str) -> str:
    return {
        "int": "an integer",
        "float": "a number",
        "lr": "a number",
        "momentum": "a number",
        "bool": "true or false",
        "str": "a string",
        "duration": "a duration above zero such as 90s, 15m or 2h",
        "name": "a plain folder name (letters, digits, _ . = -; no path)",
        "size": "[height, width] in whole pixels of at least 1, such as [32, 32]",
        "list": "a list such as [a, b]",
        "augmentations": "a list such as [shift, rotate:10], or auto",
        "changes": "a list of change names such as [label_smoothing, weight_decay], or auto",
        "folds": "a whole number of folds of at least 1, or all",
        "dict": "a mapping such as {a: 1}",
        "tta": "auto, a number of views of at least 1, or a list of view names",
        "every": "auto or a whole number of at least 1",
    }[kind]
