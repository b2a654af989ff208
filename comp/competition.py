"""Read a competition folder in Kaggle layout into a typed description.

Layout: ``train.csv`` (id + target columns), ``train/`` and ``test/`` holding
``<id>.<ext>`` images, optional ``test.csv``, ``sample_submission.csv`` (fixes the ids,
their order and the columns of a submission) and an optional ``comp.yaml``. Image
competitions may instead come as class folders, ``train/<class>/<file>`` with no
``train.csv`` (each image's class is its folder's name, its id its path under ``train/``),
and test images may be named by the sample submission's ids with or without their extension.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from comp.errors import DataError
from comp.tasks import infer_task
from comp.tasks.evidence import metrics_named
from comp.tasks.base import Setting, is_text

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


@dataclass
class Competition:
    root: Path
    train: pd.DataFrame  # every column read as strings, so '07' stays '07'
    sample: pd.DataFrame
    id_col: str
    target_cols: list[str]  # train.csv's target columns
    submission_cols: list[str]  # sample_submission's columns after the id (class names for per-class probabilities)
    task_kind: str
    metric: str | None
    train_images: list[Path]  # empty for tabular competitions
    test_ids: list[str]
    test_images: list[Path]
    test: pd.DataFrame | None = None  # test.csv when present, rows in sample_submission order
    notes: list[str] = field(default_factory=list)  # what was inferred, for the user
    settings: dict = field(default_factory=dict)  # comp.yaml
    digest_index: Path | None = None  # size/mtime -> sha256 of image files, so commands rehash only what changed
    _digests: dict[str, list[str]] = field(default_factory=dict, repr=False)

    @property
    def modality(self) -> str:
        return "image" if self.train_images else "tabular"

    @property
    def feature_cols(self) -> list[str]:
        """Tabular feature columns: train.csv's columns other than the id, targets and image paths."""
        skip = {self.id_col, *self.target_cols, self.settings.get("image_column")}
        return [c for c in self.train.columns if c not in skip]

    def task_source(self):
        """What a task kind is built from (see ``comp.tasks.make_task``)."""
        from comp.tasks.base import TaskSource

        return TaskSource(self.train[self.target_cols], self.sample, self.id_col, tuple(self.submission_cols),
                          self.settings)

    def digests(self, split: str) -> list[str]:
        """sha256 of each train or test image file, computed once (and, with a digest index,
        read again only for files whose size or modification time changed)."""
        if split not in self._digests:
            from comp.data.cache import file_digests

            paths = self.train_images if split == "train" else self.test_images
            self._digests[split] = file_digests(paths, self.digest_index)
        return self._digests[split]

    @property
    def name(self) -> str:
        return self.root.name

    def fingerprint(self) -> str:
        """Content hash of the tables, every image, comp.yaml and the description files that
        name the metric: stage caches depend on it."""
        from comp.tasks.evidence import DESCRIPTION_FILES

        h = hashlib.sha256()
        names = ["train.csv", "sample_submission.csv", "test.csv", "comp.yaml", *DESCRIPTION_FILES]
        for path in [self.root / name for name in names]:
            if path.is_file():
                h.update(path.name.encode() + path.read_bytes())
        if not (self.root / "train.csv").is_file():  # class folders: the labels are the folders' names
            h.update(self.train.to_csv(index=False).encode())
        for split in ("train", "test"):
            h.update("".join(self.digests(split)).encode())
        return h.hexdigest()[:16]


def open_competition(cfg) -> tuple[Competition, object, list[str]]:
    """The competition a config names (a folder, or demo:NAME) with its task, and what was
    inferred on the way: where every command (run, report, export) starts."""
    from comp.demo import resolve
    from comp.paths import cache_root
    from comp.tasks import make_task

    cache = cache_root(cfg.paths.cache)
    competition = load_competition(resolve(cfg.competition, cache), task=cfg.task, metric=cfg.metric, cache=cache)
    notes = list(competition.notes)
    task = make_task(competition.task_kind, competition.task_source(), competition.metric, competition.root, notes)
    return competition, task, notes


def load_competition(root: str | Path, task: str | None = None, metric: str | None = None,
                     cache: Path | None = None) -> Competition:
    """Read and check ``root``; ``task``/``metric`` override comp.yaml and inference; with a
    ``cache`` folder image file digests are kept there between commands."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise DataError(f"competition folder {root} does not exist; pass competition=PATH")
    settings = _read_settings(root / "comp.yaml")
    sample = _read_csv(root / "sample_submission.csv")
    notes: list[str] = []
    folder_images = None  # the class-folder layout's train images, in train's row order
    if not (root / "train.csv").is_file() and class_folders(root / "train"):
        train, folder_images = _from_class_folders(root, sample, settings)
        notes.append(f"class folders: {len(train)} train images in {train.iloc[:, 1].nunique()} classes "
                     f"(train/<class>/..., no train.csv); each image's id is its path under train/")
    else:
        train = _read_csv(root / "train.csv")

    id_col = settings.get("id_column") or sample.columns[0]
    if "id_column" not in settings:
        notes.append(f"id column '{id_col}' (first column of sample_submission.csv)")
        first = train.columns[0]
        if id_col != first and first in sample.columns and id_col in train.columns:
            raise DataError(f"{root / 'sample_submission.csv'}: its first column is '{id_col}', but train.csv's "
                            f"first (id) column '{first}' comes later; put the id column first in "
                            "sample_submission.csv, or set id_column in comp.yaml")
    for name, frame in (("sample_submission.csv", sample), ("train.csv", train)):
        if id_col not in frame.columns:
            raise DataError(f"{root / name}: missing id column '{id_col}' (columns: {', '.join(frame.columns)})")
    submission_cols = [c for c in sample.columns if c != id_col]
    if not submission_cols:
        raise DataError(f"{root / 'sample_submission.csv'}: no target column after the id column '{id_col}'")
    targets = settings.get("target_columns")
    if targets is None:
        targets = _class_column(train, submission_cols, id_col)
        if targets:
            notes.append(f"target column {targets[0]} (sample_submission.csv has one column per class of it)")
        else:
            targets = submission_cols
            notes.append(f"target column(s) {', '.join(targets)} (the other columns of sample_submission.csv)")
    targets = [targets] if isinstance(targets, str) else list(targets)
    for col in targets:
        if col not in train.columns:
            raise DataError(f"{root / 'train.csv'}: missing column '{col}' (columns: {', '.join(train.columns)})")
    per_class = set(targets).isdisjoint(submission_cols)
    if per_class:  # one column per class (or label) of the target: they must be its values
        known = {token for col in targets for value in train[col].dropna().astype(str)
                 for token in (value, *value.split())}
        strangers = [c for c in submission_cols if c not in known]
        if strangers:
            raise DataError(f"{root / 'sample_submission.csv'}: has no target column {', '.join(targets)} and its "
                            f"column(s) {', '.join(strangers[:5])} are not classes of it; name the column(s) as in "
                            "train.csv, or set target_columns in comp.yaml")
    for col in ([] if per_class else targets):
        if col not in sample.columns:
            raise DataError(f"{root / 'sample_submission.csv'}: missing column '{col}'")
    _check_ids(train, id_col, root / "train.csv")
    _check_ids(sample, id_col, root / "sample_submission.csv")

    kind = task or settings.get("task")
    if kind is None:
        kind, why = infer_task(train[targets], [e.metric for e in metrics_named(root)])
        notes.append(f"task {kind} (from the target values: {why}; set task in comp.yaml to change)")
    metric = metric or settings.get("metric")

    test_ids = list(sample[id_col])
    test = None
    if (root / "test.csv").is_file():
        test = _read_csv(root / "test.csv")
        if id_col not in test.columns:
            raise DataError(f"{root / 'test.csv'}: missing id column '{id_col}'")
        _check_ids(test, id_col, root / "test.csv")
        known = set(test[id_col])
        absent = [i for i in test_ids if i not in known]
        if absent:
            raise DataError(
                f"{root / 'sample_submission.csv'}: id {absent[0]!r} is not in test.csv "
                f"({len(absent)} such ids); the two files must list the same test ids"
            )
        test = test.set_index(id_col, drop=False).loc[test_ids].reset_index(drop=True)

    image_col = settings.get("image_column")
    if folder_images is not None:
        train_images = folder_images
        test_images = _image_paths(root, "test", sample, id_col, None, root / "sample_submission.csv")
    elif image_col or (root / "train").is_dir():
        train_images = _image_paths(root, "train", train, id_col, image_col, root / "train.csv")
        if image_col and test is None:
            raise DataError(f"{root}: comp.yaml names image_column '{image_col}', so test.csv must list the test images")
        test_frame = test if image_col else sample
        test_images = _image_paths(root, "test", test_frame, id_col, image_col,
                                   root / ("test.csv" if image_col else "sample_submission.csv"))
    else:
        if test is None:
            raise DataError(f"{root}: no train/ image folder and no test.csv; an image competition needs "
                            "train/ and test/, a tabular one needs test.csv with the feature columns")
        features = [c for c in train.columns if c != id_col and c not in targets]
        missing = [c for c in features if c not in test.columns]
        if not features:
            raise DataError(f"{root / 'train.csv'}: no feature columns besides '{id_col}' and the targets, "
                            "and no train/ image folder")
        if missing:
            raise DataError(f"{root / 'test.csv'}: missing feature column '{missing[0]}' that train.csv has")
        train_images, test_images = [], []
        notes.append(f"tabular competition with {len(features)} feature columns (no train/ folder)")
    digest_index = None
    if cache is not None:
        digest_index = Path(cache) / "digests" / (hashlib.sha1(str(root).encode()).hexdigest()[:16] + ".json")
    return Competition(
        root=root,
        digest_index=digest_index,
        train=train,
        sample=sample,
        id_col=id_col,
        target_cols=targets,
        submission_cols=submission_cols,
        task_kind=kind,
        metric=metric,
        train_images=train_images,
        test_ids=test_ids,
        test_images=test_images,
        test=test,
        notes=notes,
        settings=settings,
    )


def class_folders(train_dir: Path) -> list[Path]:
    """The class folders of ``train/`` when it holds images only in subfolders (one per class,
    images at any depth below it), else []."""
    if not train_dir.is_dir():
        return []
    entries = [p for p in train_dir.iterdir() if not p.name.startswith((".", "__"))]
    if any(p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS for p in entries):
        return []
    folders = sorted(p for p in entries if p.is_dir() and any(_images_below(p)))
    return folders if len(folders) >= 2 else []


def _images_below(folder: Path):
    return (p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
            and not any(part.startswith((".", "__")) for part in p.relative_to(folder).parts))


def _from_class_folders(root: Path, sample: pd.DataFrame, settings: dict) -> tuple[pd.DataFrame, list[Path]]:
    """train.csv as the class folders say it: the id column (sample_submission's first, or
    comp.yaml's ``id_column``) holding each image's path under ``train/``, and the target
    column (comp.yaml's ``target_columns``, sample_submission's one other column, or ``label``
    when its columns are the classes) holding its folder's name."""
    id_col = settings.get("id_column") or sample.columns[0]
    others = [c for c in sample.columns if c != id_col]
    target = (settings.get("target_columns") or [None])[0] or (others[0] if len(others) == 1 else "label")
    if target == id_col:
        raise DataError(f"{root / 'sample_submission.csv'}: the target column and the id column are both "
                        f"'{id_col}'; set target_columns in comp.yaml")
    ids, labels, paths = [], [], []
    for folder in class_folders(root / "train"):
        for path in sorted(_images_below(folder)):
            _check_inside(path, root)
            ids.append(path.relative_to(root / "train").as_posix())
            labels.append(folder.name)
            paths.append(path)
    if others == [target] and target in set(labels) and "positive_class" not in settings:
        settings["positive_class"] = target  # sample 'id,cat' over folders cat/ and dog/: the column is P(cat)
    return pd.DataFrame({id_col: ids, target: labels}, dtype=str), paths


def _class_column(train: pd.DataFrame, submission_cols: list[str], id_col: str) -> list[str] | None:
    """The train column whose classes are sample_submission's columns (per-class probabilities)."""
    if len(submission_cols) < 2 or not set(submission_cols).isdisjoint(train.columns):
        return None
    wanted = set(submission_cols)
    for col in train.columns:
        if col != id_col and train[col].nunique() == len(wanted) and set(train[col].dropna()) == wanted:
            return [col]
    return None


def _read_settings(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid YAML ({type(exc).__name__}); fix the file") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a mapping of keys (task, metric, id_column, ...), "
                        f"got {type(data).__name__}")
    settings = {**COMP_YAML_KEYS, **_task_settings()}
    unknown = sorted(set(data) - set(settings))
    if unknown:
        raise DataError(f"{path}: unknown key '{unknown[0]}'; known keys: {', '.join(sorted(settings))}")
    for key, value in data.items():
        if not settings[key].check(value):
            raise DataError(f"{path}: {key}={value!r} is not {settings[key].help}")
        data[key] = settings[key].convert(value)
    return data


def _task_settings() -> dict[str, Setting]:
    """The comp.yaml keys the installed task kinds declare (``Task.settings``)."""
    from comp.registry import TASKS

    declared: dict[str, Setting] = {}
    for info in TASKS.list():
        declared.update(getattr(TASKS.load(info.name), "settings", {}))
    return declared


COMP_YAML_KEYS = {  # the task kinds add their own keys (Task.settings)
    "task": Setting(lambda v: isinstance(v, str), "a task kind name"),
    "metric": Setting(lambda v: isinstance(v, str), "a metric name"),
    "id_column": Setting(is_text, "a column name", str),
    "image_column": Setting(is_text, "a column name", str),
    "target_columns": Setting(lambda v: is_text(v) or (isinstance(v, list) and bool(v) and all(is_text(x) for x in v)),
                              "a column name or a list of column names",
                              lambda v: [str(x) for x in v] if isinstance(v, list) else [str(v)]),
}


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path} is missing: a competition folder needs train.csv and sample_submission.csv")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start}); re-save the file as UTF-8") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty; it needs a header row and at least one data row") from None
    except pd.errors.ParserError:
        frame = None  # a ragged row: _check_ragged names it
    if frame is None:
        _check_ragged(path, len(pd.read_csv(path, nrows=0, dtype=str).columns))
        raise DataError(f"{path}: not a readable CSV table; check its quoting")
    if frame.empty:
        raise DataError(f"{path} has a header but no rows")
    _check_ragged(path, len(frame.columns))
    _check_header(path)
    return frame


def _check_header(path: Path) -> None:
    """Each column named once: pandas renames a repeat ('label' -> 'label.1'), and the error
    would then name a column of another file."""
    import csv

    with open(path, newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh))
    repeated = [name for name in dict.fromkeys(header) if name.strip() and header.count(name) > 1]
    if repeated:
        raise DataError(f"{path}: column '{repeated[0]}' appears {header.count(repeated[0])} times in the header; "
                        "give each column its own name")


def _check_ragged(path: Path, width: int) -> None:
    """Every row has as many fields as the header (pandas would pad short rows with blanks)."""
    import csv

    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        for row in reader:
            if row and len(row) != width:
                raise DataError(f"{path} line {reader.line_num}: {len(row)} fields where the header has {width}; "
                                "fix that row (a stray comma, a missing value, an unquoted text)")


def _check_ids(frame: pd.DataFrame, id_col: str, path: Path) -> None:
    ids = frame[id_col]
    if ids.isna().any():
        row = int(ids.isna().to_numpy().nonzero()[0][0]) + 2
        raise DataError(f"{path} row {row}: empty id in column '{id_col}'")
    dup = ids.duplicated(keep="first")
    if dup.any():
        row = int(dup.to_numpy().nonzero()[0][0])
        raise DataError(f"{path} row {row + 2}: duplicate id {ids.iloc[row]!r}; ids must be unique")


def _image_paths(root: Path, folder: str, frame: pd.DataFrame, id_col: str, image_col: str | None,
                 source: Path) -> list[Path]:
    """Image file of every row: ``<folder>/<id>.<ext>`` (at any depth below ``folder``), or the
    path in ``image_col``."""
    if image_col:
        if image_col not in frame.columns:
            raise DataError(f"{source}: missing image column '{image_col}' named in comp.yaml")
        paths = []
        for row, rel in enumerate(frame[image_col].fillna("")):
            path = (root / rel).resolve()
            if not rel or Path(rel).is_absolute() or not path.is_relative_to(root):
                raise DataError(f"{source} row {row + 2}: image path {rel!r} leaves the competition folder; "
                                "use a path relative to it")
            if not path.is_file():
                raise DataError(f"{source} row {row + 2}: image file {rel!r} does not exist")
            paths.append(path)
        return paths
    directory = root / folder
    if not directory.is_dir():
        raise DataError(f"{directory} is missing: images go in {folder}/<id>.png or .jpg")
    by_stem: dict[str, list[Path]] = {}
    by_name: dict[str, list[Path]] = {}
    # At any depth: downloads nest images (train/train/<id>.jpg, train/<class>/<id>.jpg).
    named_like_images = (p for p in directory.iterdir() if p.is_dir() and p.suffix.lower() in IMAGE_EXTENSIONS)
    for path in [*_images_below(directory), *named_like_images]:  # a folder 'x.png' is refused when read
        by_stem.setdefault(path.stem, []).append(path)
        by_name.setdefault(path.name, []).append(path)
    paths = []
    for row, image_id in enumerate(frame[id_col]):
        if "/" in image_id or "\\" in image_id or image_id in (".", "..") or Path(image_id).is_absolute():
            raise DataError(f"{source} row {row + 2}: id {image_id!r} is not a plain file name; ids may not contain path separators")
        found = sorted(by_stem.get(image_id, []))
        if not found and Path(image_id).suffix.lower() in IMAGE_EXTENSIONS:
            found = sorted(by_name.get(image_id, []))  # ids that are file names, extension included ('0021e90e4.png')
        if not found:
            raise DataError(
                f"{source} row {row + 2}: no image for id {image_id!r} in {directory} "
                f"(looked for {image_id}{{{','.join(IMAGE_EXTENSIONS)}}})"
            )
        if len(found) > 1:
            raise DataError(f"{source} row {row + 2}: id {image_id!r} has {len(found)} images "
                            f"({', '.join(p.relative_to(directory).as_posix() for p in found)}) in {directory}; "
                            "keep one of them")
        path = found[0]
        _check_inside(path, root)
        paths.append(path)
    return paths


def _check_inside(path: Path, root: Path) -> None:
    """An image file must be inside the competition folder, not a link out of it."""
    if not path.resolve().is_relative_to(root):
        raise DataError(f"{path} is a link to {path.resolve()}, outside the competition folder; "
                        "copy the image into the folder instead")
