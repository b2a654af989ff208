"""`comp run stage=... key=value ...` and `comp plugins`: a thin layer over the pipeline."""
from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from comp import __version__
from comp.errors import CompError
from comp.failures import WRITE_ERRORS


DESCRIPTION = """\
comp: from a competition folder (Kaggle layout) to an honest, validated submission.

  comp run stage=all                      the bundled digits demo, end to end
  comp run stage=all competition=PATH     your competition
  comp export run=NAME                    the run's final ensemble as model.keras and a SavedModel
  comp report run=NAME                    runs/<run>/report.html from what the stages published
  comp plugins                            installed models, augmentations, metrics and task kinds
  comp check-plugin model=NAME            gradient check of a model plugin
"""

CHECK_PLUGIN_EPILOG = """\
Builds the plugin for 8x8x1 images and 3 classes in float64, with dropout and
augmentation off, and compares the loss gradient from tf.GradientTape with central
differences on a sample of weight entries (docs/recipe.md 4). Relative error
|a - n| / max(|a|, |n|): PASS < 1e-7 (safe); WARN 1e-7..1e-2, where 1e-4..1e-2 is
suspicious (a ReLU or max-pool kink crossed by the finite difference can cause it);
FAIL > 1e-2 (a wrong gradient).
Exit codes: 0 PASS or WARN, 3 FAIL, 2 a problem with the arguments, 1 an internal error."""


def _run_epilog() -> str:
    from comp.config import describe_keys
    from comp.stages import PLANNED, STAGES

    stages = "\n".join(f"  {name:<10} {module.HELP}" for name, module in STAGES.items())
    planned = f"\n  (planned, not in this version: {', '.join(PLANNED)})" if PLANNED else ""
    return f"""\
stages (in order; stage=all runs them all, stage=X also runs stale stages X reads from):
{stages}{planned}

keys (key=value; dotted keys reach into sections; an unknown key names the closest one):
{describe_keys()}

config groups: experiment=NAME merges configs/experiment/NAME.yaml, model=NAME picks
configs/model/NAME.yaml or else just the model plugin NAME.

A stage whose config, data and inputs are unchanged is skipped; overwrite=true reruns it.
Outputs: runs/<run>/ (config.yaml, folds, OOF predictions, fold models, stage.json) and
submissions/<run>-<stage>-<metric>=<score>.csv (never overwritten).
Exit codes: 0 ok, 2 a problem with the input or config (the message says what to do),
1 an internal error."""


def _parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="comp", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"comp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser("run", help="run a stage (or all) on a competition",
                         description="Run a stage of the pipeline on one competition.",
                         epilog=_run_epilog() if argv[:1] == ["run"] else None,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("overrides", nargs="*", metavar="key=value",
                     help="stage=NAME|all, competition=PATH, run=NAME, budget=15m, any config key")
    run.add_argument("--wait", action="store_true",
                     help="if another comp command is using the run directory, wait for it instead of stopping")
    export = sub.add_parser("export", help="write a finished run's final ensemble as one .keras model and a "
                                           "TensorFlow SavedModel",
                            description="Write runs/<run>/export/model.keras and runs/<run>/export/saved_model/: "
                                        "the ensemble that stage predict applies, as one model on the raw inputs.")
    export.add_argument("overrides", nargs="*", metavar="key=value",
                        help="competition=PATH, run=NAME, paths.runs=DIR, predict.source=auto|STAGE")
    report = sub.add_parser("report", help="write runs/<run>/report.html, a self-contained page about the run",
                            description="Write runs/<run>/report.html from what the run's stages published "
                                        "(stage=all writes it at its end too).")
    report.add_argument("overrides", nargs="*", metavar="key=value",
                        help="competition=PATH, run=NAME, paths.runs=DIR")
    plugins = sub.add_parser("plugins", help="list installed models, augmentations, metrics and task kinds",
                             description="List plugins from the comp.models, comp.augmentations, comp.metrics "
                                         "and comp.tasks entry-point groups.")
    plugins.add_argument("pattern", nargs="?", default="*", help="wildcard filter on names")
    plugins.add_argument("--check", action="store_true", help="import every plugin and report failures")
    check = sub.add_parser("check-plugin", help="gradient check of a model plugin (float64)",
                           description="Gradient check of a model plugin: analytic vs numerical.",
                           epilog=CHECK_PLUGIN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    check.add_argument("overrides", nargs="*", metavar="key=value",
                       help="model=NAME (default: model.name), model.hp.KEY=VALUE, seed=N")
    check.add_argument("--weights", type=int, default=20, help="weight entries to check (default 20)")
    check.add_argument("--examples", type=int, default=4, help="random images in the loss (default 4)")
    return parser


def entry() -> None:
    """The `comp` console script: native TF logs go to a file unless COMP_NATIVE_LOG=stderr."""
    import os

    if os.environ.get("COMP_NATIVE_LOG", "") != "stderr":
        from comp.paths import cache_root
        from comp.native_log import redirect_native_stderr

        try:
            redirect_native_stderr(Path(os.environ.get("COMP_NATIVE_LOG") or cache_root() / "native.log"))
        except (OSError, CompError) as exc:  # the log is a convenience: never a reason to fail
            print(f"notice: TensorFlow's native log stays on stderr ({exc})", file=sys.stderr)
    from comp.clock import process_start

    sys.exit(main(started=process_start()))  # the budget counts the interpreter's start too


def main(argv: list[str] | None = None, started: float | None = None) -> int:
    """Entry point of the `comp` console script; returns the exit code. ``started``: when the
    command began on ``comp.clock`` (default: now), where a ``budget=`` starts counting."""
    from comp.clock import now

    started = now() if started is None else started
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser(argv)
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return _cmd_run(args.overrides, argv, args.wait, started)
        if args.command == "plugins":
            return _cmd_plugins(args.pattern, args.check)
        if args.command == "export":
            return _cmd_export(args.overrides)
        if args.command == "report":
            return _cmd_report(args.overrides)
        if args.command == "check-plugin":
            return _cmd_check_plugin(args.overrides, args.weights, args.examples)
        parser.print_help()
        return 0
    except CompError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume", file=sys.stderr)
        return 130
    except OSError as exc:
        if exc.errno not in WRITE_ERRORS:
            raise
        # Everything is written to a temporary name and renamed, so finished stages and
        # submissions are untouched; rerunning resumes.
        where = exc.filename or "a file"
        print(f"error: cannot write {where}: {exc.strerror}; {WRITE_ERRORS[exc.errno]}, then rerun the same "
              "command (finished stages and saved epochs are kept)", file=sys.stderr, flush=True)
        return 2
    except Exception:  # an internal bug: show everything, with a distinct exit code
        traceback.print_exc()
        return 1


def _cmd_run(overrides: list[str], argv: list[str], wait: bool = False, started: float | None = None) -> int:
    from comp.interface import run_words

    run_words(overrides, argv, wait, started)
    return 0


def _run_config(command: str, overrides: list[str], allowed: tuple[str, ...]):
    """The config of a command that reads a finished run: only the keys that locate it."""
    from comp.config import load_config
    from comp.errors import ConfigError

    for word in overrides:
        if word.split("=", 1)[0].strip() not in allowed:
            raise ConfigError(f"{command} takes {', '.join(k + '=' for k in allowed)}, not {word!r}")
    return load_config(_run_own(overrides))


def _run_own(overrides: list[str]) -> list[str]:
    """``overrides`` plus the named run's own competition, task and metric (from its config.yaml)
    when the command names no competition (one that does means that competition, as given):
    the run directory knows what it was run on."""
    import yaml

    given = {word.split("=", 1)[0].strip(): word.split("=", 1)[1] for word in overrides if "=" in word}
    if "run" not in given or "competition" in given:
        return overrides
    saved = Path(given.get("paths.runs", "runs")) / given["run"] / "config.yaml"
    try:
        recorded = (yaml.safe_load(saved.read_text()) or {}).get("config", {})
    except (OSError, yaml.YAMLError):
        return overrides  # no record (or an unreadable one): the defaults, as before
    own = [f"{key}={recorded[key]}" for key in ("competition", "task", "metric")
           if key not in given and recorded.get(key) is not None]
    return own + overrides


LOCATE = ("competition", "run", "paths.runs", "paths.cache", "task", "metric")


def _cmd_report(overrides: list[str]) -> int:
    from comp.competition import open_competition
    from comp.errors import CompError
    from comp.report import write_report

    cfg = _run_config("report", overrides, LOCATE)
    competition, task, _ = open_competition(cfg)
    run_path = Path(cfg.paths.runs) / (cfg.run or competition.name)
    if not run_path.is_dir():
        raise CompError(f"{run_path} does not exist: run `comp run stage=all` first (or name the run with run=NAME)")
    print(f"report: {write_report(run_path, competition, task)}", flush=True)
    return 0


def _cmd_export(overrides: list[str]) -> int:
    from comp.export import export_run

    target = export_run(_run_config("export", overrides, LOCATE + ("predict.source",)))
    print(f"exported {target / 'model.keras'} and {target / 'saved_model'}", flush=True)
    return 0


def _cmd_plugins(pattern: str, check: bool) -> int:
    from comp.registry import REGISTRIES

    failures = 0
    for kind, registry in REGISTRIES.items():
        print(f"{kind}:")
        rows = registry.list(pattern)
        if not rows:
            print("  (none)")
        for info in rows:
            status, about = "", ""
            if check:
                try:
                    about = _about(registry.load(info.name))
                    status = "  ok"
                except CompError as exc:
                    failures += 1
                    status = f"  FAILED: {exc}"
            print(f"  {info.name:<20} {info.distribution:<24} {info.value}{status}")
            if about:
                print(f"  {'':<20} {about}")
    return 2 if failures else 0


def _about(plugin) -> str:
    """A loaded plugin's description, and an augmentation's strength knob."""
    about = getattr(plugin, "description", "") or ""
    if getattr(plugin, "strength", None) is not None:
        low, high = plugin.strength_range
        unit = f" {plugin.strength_unit}" if plugin.strength_unit else ""
        about += f" (strength {plugin.strength:g}{unit}, {low:g}-{high:g})"
    return about


def _cmd_check_plugin(overrides: list[str], weights: int, examples: int) -> int:
    from comp.config import load_config
    from comp.errors import ConfigError

    for word in overrides:
        key = word.split("=", 1)[0].strip()
        if key not in ("model", "seed") and not key.startswith("model.hp."):
            raise ConfigError(f"check-plugin takes model=NAME, model.hp.KEY=VALUE and seed=N, not {word!r}")
    if weights < 1 or examples < 1:
        raise ConfigError("check-plugin: --weights and --examples must be at least 1")
    cfg = load_config(overrides)
    from comp.training.gradcheck import check_plugin
    from comp.training.sanity import FAIL

    name = "small_cnn" if cfg.model.name == "auto" else cfg.model.name  # auto: the image classifier's default
    result = check_plugin(name, cfg.model.hp, examples=examples, entries=weights, seed=cfg.seed)
    print(f"model plugin '{name}' (hp: {cfg.model.hp or 'defaults'}), {examples} random "
          f"8x8x1 images, 3 classes", flush=True)
    print(result.line(), flush=True)
    return 3 if result.status == FAIL else 0


if __name__ == "__main__":
    sys.exit(main())
