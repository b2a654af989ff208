"""Reading every competition shape issue 3 names, on real scikit-learn data."""
import json
import os

import cv2
import numpy as np
import pandas as pd
import pytest

from comp.competition import load_competition
from comp.data.cache import load_image_set
from tests.conftest import copy_competition


def _tabular(root, frame, target, n_test=40):
    root.mkdir(parents=True)
    frame.insert(0, "id", [f"r{i:04d}" for i in range(len(frame))])
    train, test = frame.iloc[n_test:], frame.iloc[:n_test]
    train.to_csv(root / "train.csv", index=False)
    test.drop(columns=[target]).to_csv(root / "test.csv", index=False)
    pd.DataFrame({"id": test["id"], target: train[target].iloc[0]}).to_csv(root / "sample_submission.csv", index=False)
    return root


@pytest.fixture
def wine(tmp_path):
    from sklearn.datasets import load_wine

    data = load_wine(as_frame=True).frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    data["target"] = data["target"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
    data["colour"] = np.where(data["color_intensity"] > 5, "deep", "pale")  # a categorical column
    data.loc[::7, "magnesium"] = np.nan  # missing values
    data["constant"] = 1.0
    return _tabular(tmp_path / "wine", data, "target")


def test_tabular_competition_inspect_and_split(wine, comp, workdir):
    c = load_competition(wine)
    assert c.modality == "tabular" and c.task_kind == "classification"
    assert "colour" in c.feature_cols and "target" not in c.feature_cols
    code, out, err = comp("run", "stage=split", f"competition={wine}")
    assert code == 0, err
    summary = pd.read_csv(workdir / "runs/wine/inspect/features.csv").set_index("feature")
    assert summary.loc["colour", "dtype"] == "categorical"
    assert summary.loc["magnesium", "missing_rate"] == pytest.approx(20 / 138, abs=1e-3)
    assert bool(summary.loc["constant", "constant"]) is True
    assert "PROBLEM: constant feature column(s): constant" in out
    folds = pd.read_csv(workdir / "runs/wine/split/folds.csv")
    assert sorted(folds["fold"].unique()) == [0, 1, 2, 3, 4]
    code, out, err = comp("run", "stage=baseline", f"competition={wine}", "experiment=smoke")
    assert code == 0, err  # tables train (end-to-end scores: tests/test_task_kinds.py)
    assert "model hgb" in out


def test_regression_target_bins_for_stratification(tmp_path, comp, workdir):
    from sklearn.datasets import load_diabetes

    root = _tabular(tmp_path / "diabetes", load_diabetes(as_frame=True).frame, "target")
    assert load_competition(root).task_kind == "regression"
    code, out, err = comp("run", "stage=split", f"competition={root}")
    assert code == 0, err
    folds = pd.read_csv(workdir / "runs/diabetes/split/folds.csv", dtype={"id": str})
    train = pd.read_csv(root / "train.csv", dtype={"id": str}).merge(folds, on="id")
    means = train.groupby("fold")["target"].mean()
    assert means.max() - means.min() < 0.1 * train["target"].std()  # every fold sees the whole range
    report = json.loads((workdir / "runs/diabetes/inspect/report.json").read_text())
    assert report["target"]["quantiles"]["0.50"] == float(train["target"].median())


def test_group_column_keeps_groups_in_one_fold_and_seed_fixes_folds(wine, comp, workdir):
    frame = pd.read_csv(wine / "train.csv", dtype=str)
    frame["vineyard"] = [f"v{i % 23}" for i in range(len(frame))]
    frame.to_csv(wine / "train.csv", index=False)
    test = pd.read_csv(wine / "test.csv", dtype=str).assign(vineyard="v0")
    test.to_csv(wine / "test.csv", index=False)
    for run in ("a", "b"):
        code, out, err = comp("run", "stage=split", f"competition={wine}", f"run={run}",
                              "split.group_column=vineyard")
        assert code == 0, err
    folds = pd.read_csv(workdir / "runs/a/split/folds.csv", dtype=str)
    assert (workdir / "runs/a/split/folds.csv").read_bytes() == (workdir / "runs/b/split/folds.csv").read_bytes()
    merged = folds.merge(frame, on="id")
    assert (merged.groupby("vineyard")["fold"].nunique() == 1).all()
    assert "grouped by column 'vineyard' (23 groups)" in out
    code, _, err = comp("run", "stage=split", f"competition={wine}", "split.group_column=farm")
    assert code == 2 and "split.group_column='farm' is not a column of train.csv" in err


def test_multilabel_indicator_columns():
    from comp.tasks import infer_task_kind, make_task
    from comp.tasks.base import TaskSource

    targets = pd.DataFrame({"cat": ["1", "0", "1"], "dog": ["0", "1", "1"]})
    assert infer_task_kind(targets) == "multilabel"
    sample = pd.DataFrame({"id": ["t"], "cat": ["0"], "dog": ["0"]})
    task = make_task("multilabel", TaskSource(targets, sample, "id", ("cat", "dog")))
    assert task.labels == ("cat", "dog")
    assert task.strata(targets).tolist() == [[1, 0], [0, 1], [1, 1]]


def _digit_images(demo, tmp_path, name, label_of, n=300):
    """An image competition over the first n demo digits with labels made by label_of(digit)."""
    root = copy_competition(demo, tmp_path / name)
    train = pd.read_csv(root / "train.csv", dtype=str).iloc[:n]
    for extra in set(pd.read_csv(demo / "train.csv", dtype=str)["id"]) - set(train["id"]):
        (root / "train" / f"{extra}.png").unlink()
    train["label"] = [label_of(int(d)) for d in train["label"]]
    train.to_csv(root / "train.csv", index=False)
    sample = pd.read_csv(root / "sample_submission.csv", dtype=str)
    sample["label"] = label_of(0)
    sample.to_csv(root / "sample_submission.csv", index=False)
    return root, train


def test_multilabel_lists_use_iterative_stratification(demo, tmp_path, comp, workdir):
    tags = lambda d: " ".join(t for t, ok in (("even", d % 2 == 0), ("prime", d in (2, 3, 5, 7)),
                                              ("round", d in (0, 6, 8, 9))) if ok) or "none"
    root, train = _digit_images(demo, tmp_path, "tags", tags)
    assert load_competition(root).task_kind == "multilabel"
    code, _, err = comp("run", "stage=split", f"competition={root}")
    assert code == 0, err
    folds = pd.read_csv(workdir / "runs/tags/split/folds.csv", dtype={"id": str}).merge(train, on="id")
    for tag in ("even", "prime", "round"):
        share = folds.groupby("fold")["label"].apply(lambda s: s.str.contains(tag).mean())
        assert share.max() - share.min() < 0.08


def test_sequence_target_and_its_length_strata(demo, tmp_path, comp, workdir):
    rng = np.random.default_rng(0)
    root, train = _digit_images(demo, tmp_path, "numbers",
                                lambda d: str(d) + "".join(map(str, rng.integers(0, 10, rng.integers(0, 3)))))
    (root / "comp.yaml").write_text("task: sequence\n")  # digit strings may pass for numbers: say it
    c = load_competition(root)
    assert c.task_kind == "sequence" and not any("task" in n for n in c.notes)
    code, out, err = comp("run", "stage=split", f"competition={root}")
    assert code == 0, err
    dist = pd.read_csv(workdir / "runs/numbers/split/fold_distribution.csv").set_index("fold")
    assert list(dist.columns) == ["1", "2", "3"]  # strata are the lengths
    assert (dist.max() - dist.min()).max() <= 1


def test_image_column_and_mixed_sizes_and_colour(tmp_path, comp, workdir):
    from sklearn.datasets import load_sample_images

    root = tmp_path / "photos"
    (root / "images").mkdir(parents=True)
    photos = load_sample_images().images  # two real colour photos
    rows = []
    for i in range(24):
        crop = photos[i % 2][i * 5:i * 5 + 96, i * 7:i * 7 + 128]
        if i == 5:
            crop = cv2.resize(crop, (64, 48))  # an odd size
        path = f"images/p{i}.{'jpg' if i % 3 else 'png'}"
        cv2.imwrite(str(root / path), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
        rows.append({"id": f"p{i}", "file": path, "label": "china" if i % 2 == 0 else "flower"})
    frame = pd.DataFrame(rows)
    frame.iloc[:18].to_csv(root / "train.csv", index=False)
    frame.iloc[18:][["id", "file"]].to_csv(root / "test.csv", index=False)
    frame.iloc[18:][["id", "label"]].assign(label="china").to_csv(root / "sample_submission.csv", index=False)
    (root / "comp.yaml").write_text("image_column: file\n")
    code, out, err = comp("run", "stage=inspect", f"competition={root}")
    assert code == 0, err
    report = json.loads((workdir / "runs/photos/inspect/report.json").read_text())
    assert report["images"]["sizes"] == {"96x128": 23, "48x64": 1}
    assert report["images"]["model_input"] == [96, 128, 3]
    assert any(o["id"] == "p5" and "size 48x64" in o["reasons"] for o in report["outliers"])
    assert "images/p0.png" in str(load_competition(root).train_images[0])


def test_decoded_images_are_cached_and_invalidated(demo, tmp_path, monkeypatch):
    root = copy_competition(demo, tmp_path / "c")
    paths = sorted((root / "train").glob("*.png"))[:50]
    digests = lambda: [__import__("comp.data.cache", fromlist=["x"]).file_digest(p) for p in paths]
    first = load_image_set(paths, digests(), tmp_path / "cache")
    assert not first.from_cache

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr("comp.data.cache.decode_all", no_decoding)
    second = load_image_set(paths, digests(), tmp_path / "cache")
    assert second.from_cache
    np.testing.assert_array_equal(first.pixels, second.pixels)
    # The geometry found (8x8x1) named explicitly, as training asks for it: the same entry.
    explicit = load_image_set(paths, digests(), tmp_path / "cache", size=[8, 8], channels=1)
    assert explicit.from_cache and len(list((tmp_path / "cache").glob("*/pixels.npy"))) == 2  # one file, linked
    np.testing.assert_array_equal(first.pixels, explicit.pixels)
    assert len({p.resolve() for p in (tmp_path / "cache").glob("*/pixels.npy")}) == 1

    cv2.imwrite(str(paths[0]), np.full((8, 8), 255, np.uint8))  # the file changes
    monkeypatch.undo()
    third = load_image_set(paths, digests(), tmp_path / "cache")
    assert not third.from_cache and third.pixels[0].min() == 255


@pytest.mark.parametrize("values, kind", [
    (["3", "7", "3", "1"], "classification"),
    (["07", "10", "3", "07"] * 5, "classification"),
    ([str(v) for v in range(100)], "regression"),
    (["0" + str(v) for v in range(100, 200)], "sequence"),  # leading zeros: strings, not numbers
    (["1.5", "2.25", "3.0", "1.5"], "regression"),
    (["cat dog", "dog", "", "cat"], "multilabel"),
    # Class names with a space (plant seedlings) are classes, not tags to split.
    (["Sugar beet", "Common Chickweed", "Common wheat", "Fat Hen", "Maize", "Charlock"] * 3, "classification"),
])
def test_task_inference(values, kind):
    from comp.tasks import infer_task_kind

    assert infer_task_kind(pd.DataFrame({"y": values}).replace("", None)) == kind


def _street_numbers(count: int, seed: int = 0, zeros: bool = True) -> list[str]:
    """Strings of 1-4 digits as a street-number competition has them ('07' and '1889')."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        text = "".join(str(d) for d in rng.integers(0, 10, size=int(rng.choice([1, 2, 3, 4], p=[.15, .35, .35, .15]))))
        out.append(text if zeros else text.lstrip("0") or "5")
    return out


@pytest.mark.parametrize("values, named, kind", [
    # ~1,900 distinct strings in 6,000 rows, most too rare to be a class: read character by character
    (_street_numbers(6000), (), "sequence"),
    # digit strings without a leading zero pass for numbers, unless the description scores exact match
    (_street_numbers(600, zeros=False), (), "regression"),
    (_street_numbers(600, zeros=False), ("exact_match", "accuracy"), "sequence"),
    # fixed-length ids (a whale's 'w_f48451c') are labels however rare; so are long class names
    ([f"w_{i:07x}" for i in range(300)] * 2, (), "classification"),
    ([f"{i:03d}.Species_name_{i}" for i in range(200)] * 3, ("exact_match",), "classification"),
])
def test_task_inference_weighs_string_shape_rarity_and_the_named_metric(values, named, kind):
    from comp.tasks import infer_task

    found, why = infer_task(pd.DataFrame({"y": values}), named)
    assert found == kind, why


def test_a_street_number_competition_without_comp_yaml_is_a_sequence_scored_by_exact_match(demo, tmp_path):
    """The street demo (8x8 scikit-learn digits composed into 1-4 digit strings) as a user
    downloads such a competition: no comp.yaml, the metric in description.md's words."""
    from comp.demo import cache_root, demo_competition
    from comp.tasks import make_task

    folder = copy_competition(demo_competition(cache_root(), "street"), tmp_path / "street")
    (folder / "comp.yaml").unlink()
    (folder / "description.md").write_text("# Street numbers\n\n## Metric\n\nExact-match accuracy: a prediction "
                                           "counts only if the whole string equals the true string.\n")
    comp = load_competition(folder)
    notes = list(comp.notes)
    make_task(comp.task_kind, comp.task_source(), comp.metric, comp.root, notes)
    inferred = "\n".join(notes)
    assert "task sequence (from the target values: " in inferred and "the description names exact match" in inferred
    assert 'metric exact_match (description.md: "Exact-match")' in inferred


def test_a_rare_class_error_says_when_the_labels_read_as_strings_of_characters():
    from comp.errors import DataError
    from comp.tasks import make_task
    from comp.tasks.base import TaskSource

    labels = pd.DataFrame({"number": ["07", "1889", "07", "12"] * 30 + _street_numbers(200, seed=1)})
    task = make_task("classification", TaskSource(labels, labels.assign(id="x")[["id", "number"]], "id", ("number",)))
    with pytest.raises(DataError, match="set task: sequence in comp.yaml"):
        task.check_folds(labels, 5)
    plain = pd.DataFrame({"y": ["cat"] * 10 + ["dog"] * 2})
    task = make_task("classification", TaskSource(plain, plain.assign(id="x")[["id", "y"]], "id", ("y",)))
    with pytest.raises(DataError, match=r"class 'dog' has 2 example\(s\), fewer than split.folds=5; lower "
                                        r"split.folds or add examples of that class$"):
        task.check_folds(plain, 5)


def test_image_files_are_rehashed_only_when_they_change(demo, tmp_path, monkeypatch):
    from comp.competition import load_competition
    from comp.data import cache

    root = copy_competition(demo, tmp_path / "digits")
    competition = load_competition(root, cache=tmp_path / "cache")
    first = competition.digests("train")
    read = []
    real = cache.file_digest
    monkeypatch.setattr(cache, "file_digest", lambda p: read.append(p) or real(p))

    assert load_competition(root, cache=tmp_path / "cache").digests("train") == first
    assert read == []  # a new command reads no unchanged file

    changed = competition.train_images[5]
    changed.write_bytes(competition.train_images[6].read_bytes())
    os.utime(changed, ns=(1, 1))  # even an older modification time counts as a change
    again = load_competition(root, cache=tmp_path / "cache").digests("train")
    assert read == [changed]
    assert again[5] == first[6] != first[5] and again[:5] == first[:5]

    (index,) = (tmp_path / "cache" / "digests").iterdir()
    index.write_text("{")
    assert load_competition(root, cache=tmp_path / "cache").digests("train") == again  # a damaged index is rebuilt


@pytest.mark.parametrize("kind, labels, words, metric, said", [
    ("classification", ["0", "1", "2", "3", "4"], "Submissions are scored on the quadratic weighted kappa.", "qwk",
     'description.md: "quadratic weighted kappa"'),
    ("multilabel", ["1", "0"], "Evaluation: mean column-wise ROC AUC over the six labels.", "roc_auc",
     'description.md: "ROC AUC"'),
    ("classification", ["a", "b", "c"], "## Evaluation\nmulti-class log loss", "logloss",
     'description.md: "log loss"'),
    ("classification", ["a", "b", "c"], "Evaluated with micro-averaged F1.", "f1_micro",
     'description.md: "micro-averaged F1"'),
    ("classification", ["a", "b", "c"], "## Evaluation\nSubmissions are evaluated on MAP@3.", "accuracy",
     'description.md: "MAP@3" names a metric no installed comp.metrics plugin computes: scored by accuracy '
     "instead; add a plugin named map_at_k or set metric in comp.yaml"),
])
def test_the_metric_is_read_in_a_descriptions_usual_phrasings(kind, labels, words, metric, said, tmp_path):
    from comp.tasks import make_task
    from comp.tasks.base import TaskSource

    (tmp_path / "description.md").write_text(words + "\n")
    rows = labels * 4
    if kind == "multilabel":
        train = pd.DataFrame({"toxic": rows, "obscene": rows[::-1]})
        sample = pd.DataFrame({"id": ["x"], "toxic": ["0"], "obscene": ["0"]})
        cols = ("toxic", "obscene")
    else:
        train, sample, cols = pd.DataFrame({"y": rows}), pd.DataFrame({"id": ["x"], "y": [labels[0]]}), ("y",)
    notes = []
    task = make_task(kind, TaskSource(train, sample, "id", cols), root=tmp_path, notes=notes)
    assert task.metric_name == metric
    assert said in notes[-1], notes


def test_quadratic_weighted_kappa_weighs_a_miss_by_its_distance():
    from comp.registry import METRICS

    qwk = METRICS.load("qwk")
    truth = np.array([0, 1, 2, 3, 4] * 4)
    near, far = np.clip(truth + 1, 0, 4), np.where(truth < 2, 4, 0)
    assert qwk.fn(truth, truth) == 1.0 and qwk.fn(truth, near) > 0.5 > 0 > qwk.fn(truth, far)
