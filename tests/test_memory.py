"""Memory is freed between folds (five folds, RSS growth after the first under 200 MB), and a
training step's batch shrinks to fit train.max_memory."""
import json

import pytest

from tests.conftest import comp_subprocess


@pytest.mark.slow  # five folds in a new process: ~30 s on 2 cores, and CI's run stays under 20 minutes
def test_rss_does_not_grow_across_folds(workdir):
    result = comp_subprocess("run", "stage=baseline", "experiment=smoke", "split.folds=5", "train.epochs=2",
                             "split.duplicate_aware=false", cwd=workdir)
    assert result.returncode == 0, result.stderr
    rss = [json.loads((workdir / f"runs/digits/baseline/fold_{k}/done.json").read_text())["rss_mb_after"]
           for k in range(5)]
    assert all(r > 0 for r in rss)
    assert max(rss[1:]) - rss[0] < 200, rss


def test_the_batch_shrinks_to_fit_max_memory_and_the_lr_with_it(comp, workdir):
    """small_cnn on 8x8 digits holds ~0.074 MiB of layer outputs per example (a little more
    with the augmentation layers in front); under train.max_memory=0.002 (2 MiB) a step fits
    about 21 examples, so the batch of 64 is cut, the LR scaled linearly with it, and the
    folds train at that batch."""
    import re

    import pandas as pd

    from comp.api import InputSpec
    from comp.tasks import TaskSource, make_task
    from comp.training.memory import TRAIN_FACTOR, activation_bytes
    from comp.training.model import build_model

    labels = pd.DataFrame({"label": [str(c) for c in range(10)]})
    task = make_task("classification", TaskSource(labels, labels.assign(id="x")[["id", "label"]], "id", ("label",)))
    per_example = activation_bytes(build_model(InputSpec((8, 8, 1)), task, "small_cnn", {})[0])
    without_augmentation = int(0.002 * 2**30 / (TRAIN_FACTOR * per_example))

    code, out, err = comp("run", "stage=baseline", "experiment=smoke", "train.max_memory=0.002")
    assert code == 0, err
    said = re.search(r"batch (\d+) instead of train.batch_size=64: a step's activations kept within "
                     r"train.max_memory=0.002; LR 0.003 -> ([0-9.e-]+) \(train.lr_scaling=linear\)", out)
    assert said, out
    batch = int(said.group(1))
    assert 0.8 * without_augmentation <= batch <= without_augmentation < 64
    fold = json.loads((workdir / "runs/digits/baseline/fold_0/done.json").read_text())
    assert abs(fold["lr"] - 0.003 * batch / 64) < 1e-9
    assert f"{fold['lr']:.3g}" == said.group(2)
