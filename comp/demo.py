"""Bundled demo competitions, one per task kind, built from data scikit-learn ships (no download).

``comp run stage=all`` uses ``digits``; ``competition=demo:NAME`` picks another. Each is
written once in Kaggle layout under the cache folder; the hidden test labels go to
``solution.csv`` beside (not inside) the competition folder, so a holdout score can be
checked honestly.

| name          | task                          | data                                                       |
|---------------|-------------------------------|------------------------------------------------------------|
| digits        | classification, images        | 1,797 8x8 handwritten digits                               |
| street        | sequence, images              | 1-4 of those digits side by side (8x32), leading zeros kept |
| digit-tags    | multilabel, images            | each digit tagged even / prime / loop / large              |
| digit-value   | regression, images            | the digit's value as a number                              |
| wine          | classification, table         | 178 wines, 3 cultivars; a categorical column, blanks       |
| breast-cancer | binary classification, table  | 569 tumours; ROC-AUC named in description.md, probabilities |
| diabetes      | regression, table             | 442 patients, disease progression after a year              |
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pandas as pd

from comp.errors import ConfigError
from comp.paths import cache_root  # noqa: F401  (demo folders live under it)

DEMO_NAME = "digits"
DEMO_VERSION = "2"  # bump when a demo's layout changes so caches are rebuilt
MANIFEST = ".manifest.json"  # every file of a built demo and its size: a damaged demo is rebuilt
TEST_SHARE = 0.2
PREFIX = "demo:"


def demo_competition(cache: Path, name: str = DEMO_NAME) -> Path:
    """Build demo ``name`` under ``cache`` once; return its folder."""
    if name not in DEMOS:
        raise ConfigError(f"competition={PREFIX}{name}: no such demo; available: "
                          f"{', '.join(PREFIX + n for n in DEMOS)}")
    home = cache / "demo" / f"v{DEMO_VERSION}"
    folder = home / name
    if folder.exists():
        if _complete(folder):
            return folder
        print(f"notice: the demo {folder} is incomplete or damaged; building it again", flush=True)
        shutil.rmtree(folder, ignore_errors=True)
    home.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".build-", dir=home))
    try:
        DEMOS[name](staging / name, staging / "solution.csv")
        files = sorted(p for p in (staging / name).rglob("*") if p.is_file())
        (staging / name / MANIFEST).write_text(json.dumps(
            {p.relative_to(staging / name).as_posix(): p.stat().st_size for p in files}))
        os.replace(staging / "solution.csv", solution_path(cache, name))
        os.replace(staging / name, folder)  # atomic: a half-built demo is never seen
    except OSError:
        if not (folder / "sample_submission.csv").is_file():  # not a concurrent builder winning
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _complete(folder: Path) -> bool:
    """Every file the demo was built with is there, at its size."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        return all((folder / rel).stat().st_size == size for rel, size in manifest.items())
    except (OSError, ValueError):
        return False


def solution_path(cache: Path, name: str = DEMO_NAME) -> Path:
    """The hidden test labels of demo ``name`` (``solution.csv`` for the digits demo)."""
    home = cache / "demo" / f"v{DEMO_VERSION}"
    return home / ("solution.csv" if name == DEMO_NAME else f"{name}-solution.csv")


def resolve(competition: str | None, cache: Path) -> Path:
    """``competition=``: a folder, a ``.zip`` of one (unpacked once into ``cache``),
    ``demo:NAME``, or None for the digits demo."""
    from comp.data.archive import is_archive, unpack

    if not competition:
        return demo_competition(cache)
    if competition.startswith(PREFIX):
        return demo_competition(cache, competition[len(PREFIX):])
    if is_archive(competition):
        return unpack(Path(competition), cache)
    return Path(competition)


# -- the digits and what is built from them ----------------------------------------------------
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return np.round(digits.images * (255.0 / 16.0)).astype(np.uint8), digits.target


def _split(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    return train_test_split(np.arange(len(labels)), test_size=TEST_SHARE, stratify=labels, random_state=0)


def _write_images(folder: Path, split: str, ids, images) -> None:
    (folder / split).mkdir(parents=True)
    for image_id, image in zip(ids, images):
        cv2.imwrite(str(folder / split / f"{image_id}.png"), image)


def _write_tables(folder: Path, solution: Path, ids: np.ndarray, targets: pd.DataFrame, train_idx, test_idx,
                  placeholder: dict, features: pd.DataFrame | None = None) -> None:
    """train.csv, test.csv (tables only), sample_submission.csv and the hidden solution."""
    folder.mkdir(parents=True, exist_ok=True)
    columns = list(targets.columns)
    train = pd.DataFrame({"id": ids[train_idx]})
    if features is not None:
        train = pd.concat([train, features.iloc[train_idx].reset_index(drop=True)], axis=1)
        test = pd.concat([pd.DataFrame({"id": ids[test_idx]}), features.iloc[test_idx].reset_index(drop=True)], axis=1)
        test.to_csv(folder / "test.csv", index=False)
    train = pd.concat([train, targets.iloc[train_idx].reset_index(drop=True)], axis=1)
    train.to_csv(folder / "train.csv", index=False)
    sample = pd.DataFrame({"id": ids[test_idx], **{c: placeholder[c] for c in columns}})
    sample.to_csv(folder / "sample_submission.csv", index=False)
    pd.concat([pd.DataFrame({"id": ids[test_idx]}), targets.iloc[test_idx].reset_index(drop=True)],
              axis=1).to_csv(solution, index=False)


def _digit_competition(folder: Path, solution: Path, column: str, values_of, placeholder: str,
                       comp_yaml: str | None = None) -> None:
    """The 8x8 digits as an image competition whose target is ``values_of(digit)``."""
    images, target = _digits()
    ids = np.array([f"{i:05d}" for i in range(len(images))])
    train_idx, test_idx = _split(target)
    _write_images(folder, "train", ids[train_idx], images[train_idx])
    _write_images(folder, "test", ids[test_idx], images[test_idx])
    _write_tables(folder, solution, ids, pd.DataFrame({column: [values_of(d) for d in target]}), train_idx, test_idx,
                  {column: placeholder})
    if comp_yaml:
        (folder / "comp.yaml").write_text(comp_yaml)


def _write_digits(folder: Path, solution: Path) -> None:
    _digit_competition(folder, solution, "label", str, "0")


def _write_street(folder: Path, solution: Path, count: int = 2500, slots: int = 4) -> None:
    """Street numbers of 1-4 digits, left-aligned at a random offset in an 8x32 strip.

    Train strips use only train digits and test strips only test digits, so no scanned
    digit is seen on both sides.
    """
    images, target = _digits()
    pool_train, pool_test = _split(target)
    rng = np.random.default_rng(0)
    n_test = int(count * TEST_SHARE)
    strips, labels = [], []
    for i in range(count):
        pool = pool_test if i < n_test else pool_train
        length = int(rng.choice([1, 2, 3, 4], p=[0.15, 0.35, 0.35, 0.15]))
        picks = rng.choice(pool, size=length)
        strip = np.zeros((8, 8 * slots), dtype=np.uint8)
        start = int(rng.integers(0, 8 * (slots - length) + 1))
        for j, p in enumerate(picks):
            strip[:, start + 8 * j:start + 8 * (j + 1)] = images[p]
        strips.append(strip)
        labels.append("".join(str(target[p]) for p in picks))
    ids = np.array([f"s{i:05d}" for i in range(count)])
    test_idx, train_idx = np.arange(n_test), np.arange(n_test, count)
    strips = np.stack(strips)
    _write_images(folder, "train", ids[train_idx], strips[train_idx])
    _write_images(folder, "test", ids[test_idx], strips[test_idx])
    _write_tables(folder, solution, ids, pd.DataFrame({"number": labels}), train_idx, test_idx, {"number": "0"})
    (folder / "comp.yaml").write_text("task: sequence\n")  # '0412' could pass for a number otherwise


TAGS = {"even": {0, 2, 4, 6, 8}, "prime": {2, 3, 5, 7}, "loop": {0, 6, 8, 9}, "large": {5, 6, 7, 8, 9}}


def _write_digit_tags(folder: Path, solution: Path) -> None:
    """Each digit's tags as a space-separated list (a 1 has none)."""
    _digit_competition(folder, solution, "tags",
                       lambda d: " ".join(t for t, members in TAGS.items() if d in members), "even")


def _write_digit_value(folder: Path, solution: Path) -> None:
    # comp.yaml: ten integers would read as classes.
    _digit_competition(folder, solution, "value", str, "4.5", comp_yaml="task: regression\n")


def _write_wine(folder: Path, solution: Path) -> None:
    from sklearn.datasets import load_wine

    data = load_wine(as_frame=True).frame
    names = {0: "barolo", 1: "grignolino", 2: "barbera"}
    target = data.pop("target").map(names)
    data["colour"] = np.where(data["color_intensity"] > 5, "deep", "pale")  # a categorical column
    rng = np.random.default_rng(0)
    for col in ("magnesium", "alcalinity_of_ash", "colour"):  # missing values
        data.loc[rng.random(len(data)) < 0.08, col] = np.nan
    ids = np.array([f"w{i:04d}" for i in range(len(data))])
    train_idx, test_idx = _split(target.to_numpy())
    _write_tables(folder, solution, ids, pd.DataFrame({"cultivar": target}), train_idx, test_idx,
                  {"cultivar": "barolo"}, data)


def _write_breast_cancer(folder: Path, solution: Path) -> None:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True).frame
    target = (data.pop("target") == 0).astype(int).astype(str)  # 1 = malignant
    data.columns = [c.replace(" ", "_") for c in data.columns]
    rng = np.random.default_rng(1)
    for col in ("mean_texture", "worst_smoothness"):
        data.loc[rng.random(len(data)) < 0.05, col] = np.nan
    ids = np.array([f"p{i:04d}" for i in range(len(data))])
    train_idx, test_idx = _split(target.to_numpy())
    _write_tables(folder, solution, ids, pd.DataFrame({"malignant": target}), train_idx, test_idx,
                  {"malignant": 0.5}, data)
    (folder / "description.md").write_text(
        "# Breast cancer diagnosis\n\nPredict whether a tumour is malignant from measurements of its cell "
        "nuclei.\n\n## Evaluation\n\nSubmissions are evaluated on ROC-AUC between the predicted probability "
        "and the observed target.\n")


def _write_diabetes(folder: Path, solution: Path) -> None:
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True, scaled=False).frame
    target = data.pop("target")
    data["sex"] = data["sex"].map({1.0: "f", 2.0: "m"})
    ids = np.array([f"d{i:04d}" for i in range(len(data))])
    bins = pd.qcut(target, 5, labels=False).to_numpy()
    train_idx, test_idx = _split(bins)
    _write_tables(folder, solution, ids, pd.DataFrame({"progression": target.astype(str)}), train_idx, test_idx,
                  {"progression": 150.0}, data)


# -- scoring a submission against the hidden labels ----------------------------------------------
def _tag_f1(truth: pd.Series, got: pd.Series) -> float:
    from sklearn.metrics import f1_score

    labels = sorted(TAGS)
    matrix = lambda s: np.array([[t in v.split() for t in labels] for v in s.fillna("")])  # noqa: E731
    return float(f1_score(matrix(truth), matrix(got), average="micro"))


def _rmse(truth: pd.Series, got: pd.Series) -> float:
    return float(np.sqrt(np.mean((truth.astype(float) - got.astype(float)) ** 2)))


def _auc(truth: pd.Series, got: pd.Series) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(truth.astype(int), got.astype(float)))


def _same(truth: pd.Series, got: pd.Series) -> float:
    return float((truth == got).mean())


HOLDOUT: dict[str, tuple[str, Callable[[pd.Series, pd.Series], float]]] = {
    "digits": ("accuracy", _same), "street": ("exact_match", _same), "digit-tags": ("f1_micro", _tag_f1),
    "digit-value": ("rmse", _rmse), "wine": ("accuracy", _same), "breast-cancer": ("roc_auc", _auc),
    "diabetes": ("rmse", _rmse),
}


def holdout_score(cache: Path, name: str, submission: Path) -> tuple[str, float]:
    """(metric, score) of a submission file for demo ``name`` against its hidden labels."""
    truth = pd.read_csv(solution_path(cache, name), dtype=str, keep_default_na=False)
    got = pd.read_csv(submission, dtype=str, keep_default_na=False)
    if got["id"].tolist() != truth["id"].tolist():
        raise ValueError(f"{submission}: ids differ from the demo's test ids")
    column = truth.columns[1]
    metric, fn = HOLDOUT[name]
    return metric, fn(truth[column], got[column])


DEMOS: dict[str, Callable[[Path, Path], None]] = {
    "digits": _write_digits,
    "street": _write_street,
    "digit-tags": _write_digit_tags,
    "digit-value": _write_digit_value,
    "wine": _write_wine,
    "breast-cancer": _write_breast_cancer,
    "diabetes": _write_diabetes,
}
