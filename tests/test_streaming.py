"""Images kept on disk (``DiskRows``): read like the array, and train exactly as in memory."""
import numpy as np
import pytest
from sklearn.datasets import load_digits

from comp.data.rows import DiskRows, MemoryRows, StackedRows, stacked
from tests.conftest import PLAIN_TRAINING


@pytest.fixture(scope="module")
def digit_images():
    digits = load_digits()
    return (digits.images * 255 / 16).astype(np.uint8)[..., None], digits.target


def test_disk_rows_read_like_the_array(tmp_path, digit_images):
    images, _ = digit_images
    np.save(tmp_path / "pixels.npy", images)
    rows = DiskRows.open(tmp_path / "pixels.npy")
    assert rows.shape == images.shape and len(rows) == len(images)
    assert np.array_equal(rows[5], images[5]) and np.array_equal(rows[-1], images[-1])
    assert np.array_equal(rows[10:400:3], images[10:400:3])
    picks = np.random.default_rng(0).integers(0, len(images), 300)  # unsorted, with repeats
    assert np.array_equal(rows[picks], images[picks])
    fold = np.random.default_rng(1).permutation(len(images))[:1000]
    view = rows.subset(fold).subset(np.arange(0, 1000, 7))
    assert np.array_equal(np.asarray(view), images[fold][::7])
    assert np.array_equal(np.stack(list(rows)), images)
    mask = np.arange(len(images)) % 3 == 0
    assert np.array_equal(rows[mask], images[mask]) and np.array_equal(rows[[-2, 0]], images[[-2, 0]])
    with pytest.raises(IndexError):
        rows[len(images)]
    with pytest.raises(IndexError):
        rows.subset([len(images)])

    joined = stacked(rows, images[:50])
    assert isinstance(joined, StackedRows) and len(joined) == len(images) + 50
    assert np.array_equal(joined[len(images) - 5:len(images) + 5],
                          np.concatenate([images[-5:], images[:5]]))
    assert np.array_equal(joined[len(images) + 3], images[3])

    with open(tmp_path / "pixels.npy", "r+b") as f:  # a cache file cut short
        f.truncate(f.seek(0, 2) - 10)
    with pytest.raises(OSError, match="short read"):
        DiskRows.open(tmp_path / "pixels.npy")[-1]


def test_a_fold_of_an_in_memory_set_is_a_view_not_a_copy(digit_images):
    """Sets below data.in_memory_mb: a fold's rows are a view of the whole array, and every
    fold's batches are gathered from one host tensor of it (no copy per fold)."""
    import tensorflow as tf

    from comp.data.inputs import ImageInputs
    from comp.training.feeding import batches

    digit_images = digit_images[0]
    inputs = ImageInputs(digit_images)
    rng = np.random.default_rng(0)
    a, b = np.sort(rng.choice(len(digit_images), 300, replace=False)), rng.permutation(len(digit_images))[:50]
    fold_a, fold_b = inputs.rows(a), inputs.rows(b)
    assert isinstance(fold_a, MemoryRows) and fold_a.array is digit_images  # the same memory
    np.testing.assert_array_equal(fold_a[:], digit_images[a])
    np.testing.assert_array_equal(fold_b.subset([3, -1])[:], digit_images[b[[3, -1]]])
    np.testing.assert_array_equal(np.concatenate(list(batches(fold_b, 16).as_numpy_iterator())), digit_images[b])
    assert fold_a.host_tensor() is fold_b.host_tensor()  # made once, inside or outside a tf.data map
    assert isinstance(fold_a.host_tensor(), tf.Tensor) and fold_a.host_tensor().shape == digit_images.shape


def test_training_from_disk_equals_training_from_memory(tmp_path, digit_images):
    """A fold read batch by batch from the disk cache trains bit for bit as the same fold
    held in memory: same batches, same losses, same validation outputs."""
    import keras
    import pandas as pd
    import tensorflow as tf

    from comp.tasks import make_task
    from comp.tasks.base import TaskSource
    from comp.training.trainer import Trainer
    from comp.training.spec import TrainSpec

    images, target = digit_images
    frame = pd.DataFrame({"y": target.astype(str)})
    task = make_task("classification", TaskSource(frame, pd.DataFrame({"id": ["a"], "y": ["0"]}), "id", ("y",), {}))
    y = task.encode(frame)
    np.save(tmp_path / "pixels.npy", images)
    on_disk = DiskRows.open(tmp_path / "pixels.npy")
    order = np.random.default_rng(0).permutation(len(images))
    fit, val = order[:1400], order[1400:]

    def build():
        inputs = keras.Input(images.shape[1:])
        x = keras.layers.Rescaling(1 / 255)(inputs)
        x = keras.layers.Conv2D(8, 3, activation="relu")(x)
        x = keras.layers.Flatten()(x)
        return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))

    def train(x_fit, x_val):
        keras.utils.set_random_seed(0)
        trainer = Trainer(tf.distribute.get_strategy(), build, task, TrainSpec(lr=1e-2, epochs=3, patience=3, **PLAIN_TRAINING), 1e-2,
                          steps_per_epoch=22)
        result = trainer.fit((x_fit, y[fit]), (x_val, y[val]), epochs=3, global_batch=64, seed=0)
        return result.history, trainer.outputs(x_val, 64)

    memory_history, memory_outputs = train(images[fit], images[val])
    disk_history, disk_outputs = train(on_disk.subset(fit), on_disk.subset(val))
    assert disk_history["loss"] == memory_history["loss"]
    assert np.array_equal(disk_outputs, memory_outputs)
    assert memory_history["val_score"][-1] > 0.8  # it learned: the comparison is not of two failures
