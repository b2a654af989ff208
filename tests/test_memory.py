"""Memory is freed between folds: five folds, RSS growth after the first under 200 MB."""
import json

from tests.conftest import comp_subprocess


def test_rss_does_not_grow_across_folds(workdir):
    result = comp_subprocess("run", "stage=baseline", "experiment=smoke", "split.folds=5", "train.epochs=2",
                             "split.duplicate_aware=false", cwd=workdir)
    assert result.returncode == 0, result.stderr
    rss = [json.loads((workdir / f"runs/digits/baseline/fold_{k}/done.json").read_text())["rss_mb_after"]
           for k in range(5)]
    assert all(r > 0 for r in rss)
    assert max(rss[1:]) - rss[0] < 200, rss
