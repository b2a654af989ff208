"""`comp export`: a finished run's final ensemble as one Keras model and a TensorFlow SavedModel.

The model takes the competition's raw inputs (uint8 images, or the table's columns) and
returns the blend that stage ``predict`` computes: every member's fold models, each through
its kept test-time views (``comp.layers.AffineView``), weighted as the ensemble chose
(``comp.layers.WeightedSum``). Its output is the blend of the models' head outputs:
probabilities for classification, multilabel and sequences; for regression the standardised
value, which ``task.predictions`` maps back. Written to ``runs/<run>/export/`` as
``model.keras`` (loads with ``safe_mode=True`` once ``comp.layers`` is imported) and
``saved_model/`` (Keras's ``Model.export``: a ``serve`` signature, no Python needed).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from comp.errors import CompError, ConfigError

EXPORT_DIR = "export"


def export_run(cfg) -> Path:
    """Export the run named by ``cfg`` (competition, run, paths.runs, predict.source)."""
    from comp.competition import open_competition
    from comp.rundir import RunDir
    from comp.records import members_of
    from comp.stages.predict import member_stages, source_views

    competition, task, _ = open_competition(cfg)
    rundir = RunDir(Path(cfg.paths.runs) / (cfg.run or competition.name))
    source = "ensemble" if cfg.predict.source == "auto" else cfg.predict.source
    if not rundir.record(source):
        raise CompError(f"{rundir.path / source} is missing: run `comp run stage={source}` (or stage=all) first, "
                        "then export")
    result = rundir.result(source)  # a damaged file is named, not exported
    stale = rundir.outdated(source)
    if stale:  # its members' models were replaced: the export would not be what predict computed
        raise CompError(f"export: {rundir.path / source} was built before {', '.join(stale)} was run again; run "
                        f"`comp run stage={source}` (or stage=all) to bring it up to date, then export")
    if not result.fold_models:
        raise ConfigError(f"export: stage {source} kept no fold models for every fold; set predict.source=baseline")
    if (result.extra.get("stack") or {}).get("kept"):
        raise ConfigError(f"export: {rundir.path / source} combines its members with a level-2 "
                          f"{result.extra['stack']['model']}, which the exported Keras graph does not hold; set "
                          "ensemble.stack=false and run stage=ensemble again, or export one stage (predict.source=STAGE)")
    members = members_of(source, result, source_views(cfg, result, task))
    for stage in sorted(member_stages(members)):
        rundir.verify(stage)
    model = ensemble_model(rundir.path, members, task)
    target = rundir.path / EXPORT_DIR
    scratch = rundir.path / f".{EXPORT_DIR}.tmp"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    model.save(scratch / "model.keras")
    _saved_model(model, scratch / "saved_model")
    # Replace a previous export only once the new one is complete.
    old = rundir.path / f".{EXPORT_DIR}.old"
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(scratch, target)
    shutil.rmtree(old, ignore_errors=True)
    return target


def ensemble_model(run_path: Path, members: list, task):
    """One Keras model computing the weighted blend of ``members`` (see ``comp.stages.predict``)."""
    import keras

    import comp.layers  # noqa: F401  registers AffineView and WeightedSum
    from comp.api import InputSpec
    from comp.augmentation import views_for
    from comp.layers import WeightedSum
    from comp.stages.predict import member_models

    inputs, outputs, weights = None, [], []
    total = sum(m.weight for m in members)
    for i, member in enumerate(members):
        refs = [ref for fold in member.models for ref in fold]
        # Each fold counts once, however many models it has (stage bag's folds may differ).
        share = [1 / len(member.models) / len(fold) for fold in member.models for _ in fold]
        for j, (ref, fold_model) in enumerate(member_models(run_path, refs, reuse=False)):
            if not fold_model.is_keras:
                raise ConfigError(f"export: ensemble member {member.name} is not a Keras model; only Keras "
                                  "members export (set ensemble.candidates without variants, or "
                                  "predict.source=baseline)")
            model = fold_model.model
            model.name = f"m{i}_{j}_{model.name}"  # unique inside the ensemble
            if inputs is None:
                inputs = keras.tree.map_structure(
                    lambda t: keras.Input(shape=t.shape[1:], dtype=t.dtype, name=t.name.split(":")[0]), model.input)
            views = []
            if member.views:
                spec = InputSpec(tuple(member.input_shape))
                views = views_for(member.augmentations, spec, task.kind, member.views)
                for view in views:
                    view.name = f"m{i}_{j}_{view.name}"
            for view in [None, *views]:
                # training=False recorded in the graph: Keras's random augmentation layers default to
                # training=True when called without it (a served model would augment its inputs)
                outputs.append(model(view(inputs) if view is not None else inputs, training=False))
                weights.append(member.weight / total * share[j] / (1 + len(views)))
    if inputs is None:
        raise ConfigError("export: the ensemble has no members")
    return keras.Model(inputs, WeightedSum(weights, name="blend")(outputs), name="comp_ensemble")


def _saved_model(model, path: Path) -> None:
    """A SavedModel whose ``serve`` endpoint runs the model in inference mode."""
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(model)
    signature = keras.tree.map_structure(lambda t: tf.TensorSpec(t.shape, t.dtype, name=t.name.split(":")[0]),
                                         model.input)
    archive.add_endpoint(name="serve", fn=lambda x: model(x, training=False), input_signature=[signature])
    archive.write_out(str(path), verbose=False)
