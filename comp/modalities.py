"""Input modalities (images, tables): everything that depends on what the inputs are.

As a task kind owns what depends on the target, a modality owns what depends on the inputs:
how they are read and checked, described in the log, fed to a model, inspected, searched
(an image's resolution), regularised (image augmentation), seen through test-time views and
shown in the report's gallery. Stages, the training library and the report ask
``modality_of(competition)`` (or ``MODALITIES[name]``); none of them branches on the name.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from comp.api import IMAGE, TABULAR, Column, InputSpec


@dataclass
class Inspected:
    """What a modality found about the inputs for stage inspect: the report's entries, the
    problems, duplicate pairs (with the detectors' notes and the chains refused), outliers,
    bad files by row, and the features for adversarial validation (None: not run)."""

    report: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    pairs: list = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    refused: list = field(default_factory=list)
    outliers: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["row", "score", "reasons"]))
    bad: dict = field(default_factory=dict)
    shift_features: pd.DataFrame | None = None


class Modality:
    """The protocol; the defaults fit inputs with none of the image-only parts."""

    name: str
    test_views = False  # test-time views (predict.tta) exist for these inputs
    augmentable = False  # batch mixing and augmentation strengths apply (stage regularize)

    def read(self, competition, split: str, reading, geometry=None):
        """(inputs, notes on how they were read) of ``split``; ``comp.data.loading``."""
        from comp.data.loading import load_inputs

        return load_inputs(competition, split, reading, geometry)

    def check_readable(self, competition, split: str, reading) -> None:
        """Raise the one-line error for an unreadable input before any work (unless the reading skips them)."""

    def unreadable(self, competition, split: str, reading, geometry=None) -> list[int]:
        """Rows whose input cannot be read (skipped by the reading's policy; otherwise the
        one-line error): left out of the folds, predicted from a blank input."""
        return []

    def describe(self, inputs) -> str:
        """The inputs in a few words, for the log."""
        raise NotImplementedError

    def input_shape(self, inputs) -> list[int] | None:
        """What the models take, kept in a training stage's record when it pins the test inputs."""
        return None

    def probe_spec(self) -> InputSpec:
        """A stand-in input for a probe build of a model plugin (its knobs)."""
        raise NotImplementedError

    def model_inputs(self, input_spec: InputSpec):
        """(keras inputs, the tensor a plugin's body takes): the model's first layers."""
        raise NotImplementedError

    def search_knobs(self, image_size) -> list:
        """Knobs of the inputs that stage tune searches (``comp.tuning.space.Knob``)."""
        return []

    def smaller_input(self, image_size) -> dict | str:
        """Stage regularize's "smaller input": the config change, or why it does not apply."""
        return "not images"

    def planned_sizes(self, input_shape) -> tuple:
        """The input sizes the run plan (``comp.planner``) may train at, the data's own first;
        empty for inputs that have no size."""
        return ()

    def probe_size(self, input_shape) -> tuple[int, int] | None:
        """A smaller size at which stage check times the model (the run plan scales its speed to
        the sizes it weighs), or None to check at the data's own."""
        return None

    def data_key(self, reading) -> tuple:
        """What distinguishes two readings' inputs (a search loads each once)."""
        return ()

    def inspect(self, competition, reading, settings, groups: pd.Series | None, work, where, ids) -> Inspected:
        """Stage inspect's look at the inputs (pictures and tables written into ``work``)."""
        raise NotImplementedError

    def gallery(self, competition, reading, order: np.ndarray, captions: list[str]) -> str:
        """The report's view of some train rows (worst errors first), as HTML."""
        raise NotImplementedError


PLANNED_PIXELS = 32 * 32  # the fewest pixels the run plan lowers images to
PROBE_PIXELS = 64 * 64  # stage check times the model on larger images at a smaller size (Images.probe_size)


class Images(Modality):
    name = IMAGE
    test_views = True
    augmentable = True

    def check_readable(self, competition, split, reading) -> None:
        if reading.on_bad_image == "error":
            from comp.data.loading import image_set

            image_set(competition, split, reading)

    def unreadable(self, competition, split, reading, geometry=None) -> list[int]:
        from comp.data.loading import image_set

        return sorted(image_set(competition, split, reading, geometry=geometry).bad)

    def describe(self, inputs) -> str:
        return f"{len(inputs)} images {inputs.spec().shape}"

    def input_shape(self, inputs) -> list[int]:
        return list(inputs.spec().shape)

    def probe_spec(self) -> InputSpec:
        return InputSpec((32, 32, 3))

    def model_inputs(self, input_spec):
        import keras

        inputs = keras.Input(shape=input_spec.shape, dtype="uint8", name="image")
        return inputs, keras.layers.Rescaling(1.0 / 255, name="scale")(inputs)

    def search_knobs(self, image_size) -> list:
        from comp.tuning.space import Knob

        if not image_size or min(image_size) < 32:
            return []
        h, w = image_size
        return [Knob("data.image_size", choices=(f"{h}x{w}", f"{round(h * 0.75)}x{round(w * 0.75)}"),
                     default=f"{h}x{w}")]

    def planned_sizes(self, input_shape) -> tuple:
        from comp.planner import candidate_sizes

        # Down to 32x32's pixels (or the data's own, if fewer): 16x64 street numbers still read
        # (a hand-written recipe reached 0.867 exact match there), 28x28 digits stay as they are.
        return candidate_sizes(tuple(input_shape[:2]), PLANNED_PIXELS) if input_shape else ()

    def probe_size(self, input_shape) -> tuple[int, int] | None:
        # Checks at 300x300 took twice their share of a 5-minute budget before any timing
        # was made, and training then ran at the full size. At 64x64 they still did not fit
        # the LR range test into the share on 256x256 digits at budget=5m (the overfit check's
        # 84 steps took 17 of its 30 s), and training fell back to LR 1e-3: 0.9663 OOF where
        # train.lr=0.004 (about what the test suggests for small_cnn) scored 0.9725. So images
        # larger than PROBE_PIXELS are checked at the smallest size the plan weighs, the one a
        # short budget trains at, and the plan scales that speed up to the larger sizes (linear
        # in the pixels: on the safe side, as small inputs use the cores least).
        sizes = self.planned_sizes(input_shape)
        return sizes[-1] if len(sizes) > 1 and sizes[0][0] * sizes[0][1] > PROBE_PIXELS else None

    def smaller_input(self, image_size) -> dict | str:
        if not image_size:
            return "not images"
        h, w = image_size
        if min(h, w) < 32:
            return f"images of {h}x{w} are already small"
        return {"data.image_size": [int(round(h * 0.75)), int(round(w * 0.75))]}

    def data_key(self, reading) -> tuple:
        return tuple(reading.image_size or ())

    def inspect(self, competition, reading, settings, groups, work, where, ids) -> Inspected:
        from comp.data.loading import image_set
        from comp.data.rows import stacked
        from comp.inspection import duplicates as dup
        from comp.inspection import shift as adversarial
        from comp.inspection.outliers import image_outliers
        from comp.inspection.pictures import contact_sheet

        train_set = image_set(competition, "train", reading, strict=False)
        test_set = image_set(competition, "test", reading, geometry=train_set.geometry, strict=False)
        pixels = stacked(train_set.pixels, test_set.pixels)  # read in place when they live on disk
        shapes = train_set.shapes + test_set.shapes
        n_train = len(train_set.shapes)
        bad = {**train_set.bad, **{n_train + k: v for k, v in test_set.bad.items()}}
        found = dup.find_pairs(pixels, settings.near_distance, settings.near_ratio, settings.phash_distance,
                               settings.max_group_share, skip=set(bad))
        groups = groups if groups is not None else pd.Series(["all"] * n_train)
        contact_sheet(train_set.pixels, groups.reset_index(drop=True), work / "contact_sheet.png",
                      settings.examples_per_class)
        problems = []
        if bad:
            problems.append(f"{len(bad)} corrupt image file(s): "
                            + ", ".join(f"{where[i]} {ids[i]}" for i in sorted(bad)[:10]))
        return Inspected({"images": _image_stats(pixels, shapes, bad, train_set.geometry)}, problems, found.pairs,
                         found.notes, found.refused, image_outliers(pixels, shapes, bad), bad,
                         adversarial.image_features(pixels, shapes) if settings.adversarial else None)

    def gallery(self, competition, reading, order, captions) -> str:
        import base64
        import html

        import cv2

        from comp.data.loading import image_set
        from comp.html import note

        if not len(order):
            return note("no OOF errors")
        pixels = image_set(competition, "train", reading).pixels
        figures = []
        for i, caption in zip(order, captions):
            image = pixels[i]
            image = np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image
            ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            src = base64.b64encode(data.tobytes()).decode()
            figures.append(f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{src}'>"
                           f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        return f"<div class='gallery'>{''.join(figures)}</div>"


class Tables(Modality):
    name = TABULAR

    def describe(self, inputs) -> str:
        return f"{len(inputs)} rows, {inputs.spec().shape[0]} columns"

    def probe_spec(self) -> InputSpec:
        return InputSpec((1,), TABULAR, (Column("x", "x", "numeric"),))

    def model_inputs(self, input_spec):
        from comp.layers import table_inputs

        inputs = table_inputs(input_spec)
        return inputs, inputs

    def inspect(self, competition, reading, settings, groups, work, where, ids) -> Inspected:
        from comp.files import write_csv
        from comp.inspection import duplicates as dup
        from comp.inspection import shift as adversarial
        from comp.inspection.tabular import duplicate_row_digests, feature_summary

        features = competition.feature_cols
        summary = feature_summary(competition.train, features)
        write_csv(work / "features.csv", summary)
        constant = summary.loc[summary["constant"], "feature"].tolist()
        problems = [f"constant feature column(s): {', '.join(constant)}"] if constant else []
        rows = pd.concat([competition.train[features], competition.test[features]], ignore_index=True)
        pairs = dup.exact_pairs(duplicate_row_digests(rows, features))
        shift_features = None
        used = [c for c in features if c not in reading.exclude]
        if settings.adversarial and used and competition.test is not None:
            from comp.data.tabular import read_table

            train_in, test_in, _ = read_table(competition.train, competition.test, used)
            shift_features = adversarial.table_features(train_in, test_in)
        return Inspected({"features": summary.to_dict("records")}, problems, pairs, ["exact duplicate feature rows"],
                         shift_features=shift_features)

    def gallery(self, competition, reading, order, captions) -> str:
        from comp.html import table

        frame = competition.train.iloc[order].copy()
        frame.insert(0, "why", captions)
        return table(frame.head(len(order)))


MODALITIES: dict[str, Modality] = {m.name: m for m in (Images(), Tables())}


def modality_of(competition) -> Modality:
    """The modality of a competition's inputs."""
    return MODALITIES[competition.modality]


def _image_stats(pixels, shapes, bad, geometry) -> dict:
    from comp.inspection.outliers import chunks

    sizes = pd.Series([f"{s[0]}x{s[1]}" for s in shapes if s]).value_counts()
    channels = pd.Series([s[2] for s in shapes if s]).value_counts()
    good = np.array([i not in bad for i in range(len(pixels))])
    low, high, total, count = 255, 0, 0.0, 0
    for rows, part in chunks(pixels):  # the set may not fit in memory twice
        part = part[good[rows]]
        if part.size:
            low, high = min(low, int(part.min())), max(high, int(part.max()))
            total, count = total + float(part.sum(dtype=np.float64)), count + part.size
    return {
        "sizes": {k: int(v) for k, v in sizes.items()},
        "channels": {int(k): int(v) for k, v in channels.items()},
        "model_input": list(geometry),
        "value_range": [low, high],
        "mean": round(total / max(count, 1), 2),
    }
