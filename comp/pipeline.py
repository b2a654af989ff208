"""Run stages in order: plan, skip what is unchanged, run the rest, publish atomically."""
from __future__ import annotations

import difflib
import hashlib
import json
import os
import sys
import time
import uuid
from pathlib import Path

import yaml

from comp import clock, run_plan
from comp.artifacts import PROVENANCE
from comp.budget import Budget
from comp.competition import open_competition
from comp.config import Config, parse_duration
from comp.context import StageContext
from comp.errors import ConfigError, PartsFailed
from comp.failures import FAILURES_LOG, is_part_failure
from comp.provenance import git_revision, package_versions
from comp.files import write_text
from comp.rundir import RunDir, RunLock
from comp.stages import PLANNED, STAGES, TRAINING


def run(cfg: Config, argv: list[str] | None = None, wait: bool = False, started: float | None = None) -> dict:
    """Run ``cfg.stage`` (and the stale stages before it); return what it published: the last
    stage's ``record``, the ``run_dir``, the ``report`` written (or None) and the ``failures``
    left out. ``started``: when the command began (``comp.clock``; default now): a budget
    counts from it.

    Everything that can be checked is checked before anything is written; then the run
    directory is locked (``wait``: queue behind a command holding it)."""
    budget = Budget(parse_duration(cfg.budget) if cfg.budget else None, start=started)
    targets = _targets(cfg.stage)
    competition, task, notes = open_competition(cfg)
    task.check_submission_format(competition.sample)
    rundir, submissions = _run_location(cfg, competition.name)
    _check_writable(rundir.path, submissions, cfg)
    print(f"competition {competition.name} ({competition.root}) -> run {rundir.path}", flush=True)
    for note in notes:
        print(f"inferred: {note}", flush=True)
    print(f"submission: {task.submission_format()}", flush=True)

    available = {name for name in STAGES if rundir.record(name)}
    plan = _plan(targets, cfg, available)
    _start_devices(cfg)  # before validation: checking a model plugin's knobs builds layers, which starts TensorFlow
    for name in plan:  # every input problem is found before anything is written
        if hasattr(STAGES[name], "validate"):
            STAGES[name].validate(cfg, competition, task)

    if os.environ.get("KERASTUNER_ORACLE_IP") and "chief" not in os.environ.get("KERASTUNER_TUNER_ID", "chief"):
        # A keras-tuner worker: trials only, read from the chief's run directory, no lock held.
        searching = [name for name, module in STAGES.items() if hasattr(module, "work")]
        if len(targets) != 1 or targets[0] not in searching:
            raise ConfigError(f"KERASTUNER_TUNER_ID={os.environ['KERASTUNER_TUNER_ID']} makes this a keras-tuner "
                              f"worker, which runs stage={' or stage='.join(searching)} only (the chief runs the "
                              "other stages)")
        STAGES[targets[0]].work(run_plan.planned_config(cfg, run_plan.stored(rundir.path)), competition, task, rundir)
        return {"record": {}}

    command = "comp " + " ".join(argv if argv is not None else sys.argv[1:])
    lock = RunLock(rundir.path / ".lock", command)
    lock.acquire(wait)
    try:
        failures: list[str] = []
        record = _run_stages(cfg, plan, targets, competition, task, rundir, budget, submissions, command, failures)
        report = None
        if cfg.stage == "all" and cfg.report:
            from comp.report import write_report

            report = write_report(rundir.path, competition, task)
            print(f"report: {report}", flush=True)
        if failures:
            line = (f"{len(failures)} part(s) of the run failed and were left out ({'; '.join(failures[:3])}"
                    f"{'; ...' if len(failures) > 3 else ''}); tracebacks in each stage's failures.log")
            if cfg.strict:
                raise PartsFailed(f"{line} (strict=true)")
            print(f"warning: {line}", flush=True)
        return {"record": record, "run_dir": str(rundir.path), "report": str(report) if report else None,
                "failures": failures}
    finally:
        lock.release()


def _run_stages(cfg, plan, targets, competition, task, rundir, budget, submissions, command,
                failures: list[str]) -> dict:
    """Run ``plan``'s stages; what failed and was left out is appended to ``failures``."""
    available = {name for name in STAGES if rundir.record(name)}  # again: under the lock
    failed: set[str] = set()
    for notice in rundir.notices:
        print(f"notice: {notice}", flush=True)
    fingerprint = competition.fingerprint()
    record: dict = {}
    line = budget.plan({name: STAGES[name].TIME for name in plan})
    if line:
        print(line, flush=True)
    main = next((name for name in plan if getattr(STAGES[name], "MAIN", False)), None)
    stage_cfg = cfg  # from the main stage on: with the run plan's input size (comp.run_plan)
    for name in plan:
        module = STAGES[name]
        if name == main:
            stage_cfg = run_plan.planned_config(cfg, run_plan.stored(rundir.path))
        upstream = module.inputs(stage_cfg, available, TRAINING)
        lost = [dep for dep in upstream.values() if dep in failed]
        if lost:
            if not getattr(module, "OPTIONAL", False):  # the submission needs it: nothing to go on with
                raise PartsFailed(f"stage {name} reads stage {lost[0]}, which failed ({'; '.join(failures)}); "
                                  f"its traceback is in {rundir.path / (lost[0] + '.partial')}/failures.log")
            print(f"[{name}] not run: it reads stage {lost[0]}, which failed", flush=True)
            budget.finished(name)
            failed.add(name)
            available.discard(name)  # an older publication of it is not what this command would have read
            continue

        def key_of(stage_cfg):
            derived = module.key_values(stage_cfg, competition, task) if hasattr(module, "key_values") else None
            return _stage_key(name, stage_cfg, fingerprint, {role: rundir.record(dep)["output_id"]
                                                             for role, dep in upstream.items()}, derived)

        key = key_of(stage_cfg)
        previous = rundir.record(name)
        if previous and previous.get("key") == key and not (stage_cfg.overwrite and name in targets):
            print(f"[{name}] unchanged since {previous['finished']}, skipped (overwrite=true reruns it)", flush=True)
            failures.extend(f"{name}: {f['what']}: {f['reason']}" for f in previous.get("failures", []))
            record = previous
            budget.finished(name)
            continue
        made = None
        if name == main:
            stage_cfg, made = _plan_run(cfg, competition, task, rundir, budget, name, plan)
            key = key_of(stage_cfg)
        cfg_used = stage_cfg
        for dep in upstream.values():  # what this stage reads is what was published
            rundir.verify(dep)
        began = time.time()
        work = rundir.partial(name, key)
        planned = budget.planned(name)
        box = budget.box(name, module.TIME)
        ctx = StageContext(name, cfg_used, competition, task, rundir, work, budget, upstream, submissions,
                           cfg.run or competition.name, time=box)
        if planned:  # what each training stage got and used (docs/recipe.md 10)
            given = round(box.end - box.start, 1)  # as recorded, so log and record agree
            print(f"[budget] {name} gets {given:.0f}s", flush=True)
        (work / FAILURES_LOG).unlink(missing_ok=True)  # an earlier attempt's: this record starts clean
        try:
            result = module.run(ctx)
        except Exception as exc:
            # What the command was asked for is not contained: stage=tune that fails, fails.
            if not _containable(module, exc) or (cfg.stage != "all" and name in targets):
                raise
            # A search stage only improves on what the stages before it published: its failure
            # costs itself (left unpublished, as a kill would leave it), not the run.
            reason = ctx.failed(f"stage {name}", exc, published=False)
            print(f"[{name}] not published; the run goes on with the stages before it", flush=True)
            failures.append(f"stage {name}: {reason}")
            failed.add(name)
            available.discard(name)  # an older publication of it is not what this command would have read
            budget.finished(name)
            continue
        failures.extend(f"{name}: {f['what']}: {f['reason']}" for f in ctx.failures)
        if ctx.failures:
            result["failures"] = ctx.failures
        if ctx.failed_folds:  # every stage after it leaves them out too (``read_folds``)
            result["failed_folds"] = ctx.failed_folds
        budget.finished(name)
        if made:
            result["run_plan"] = made
        if planned:
            used = round(clock.now() - box.start, 1)
            result["budget"] = {"given_s": given, "used_s": used}
            print(f"[budget] {name} used {used:.0f}s of {given:.0f}s; the command is at "
                  f"{budget.elapsed():.0f}s of {budget.seconds:.0f}s", flush=True)
        record = {
            **result,
            "stage": name,
            "key": key,
            "output_id": uuid.uuid4().hex,
            "inputs": upstream,
            "read": {dep: rundir.record(dep)["output_id"] for dep in upstream.values()},  # what it was built from
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(began)),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "seconds": round(time.time() - began, 2),
        }
        # Provenance belongs to what it produced: written with the stage, published with it.
        provenance = _provenance(cfg_used, command)
        write_text(work / PROVENANCE, provenance)
        rundir.publish(name, record)
        write_text(rundir.path / PROVENANCE, provenance)  # the command behind the latest published stage
        available.add(name)
    if "score" in record:
        print(f"OOF {record['metric']} = {record['score']:.5f} ({record.get('source', record['stage'])})", flush=True)
    if "submission" in record:
        print(f"submission: {record['submission']}", flush=True)
    return record


def _containable(module, exc: Exception) -> bool:
    """Whether ``module``'s stage may fail alone: a search stage (``OPTIONAL``) whose failure
    is its own (``comp.failures.is_part_failure``)."""
    return getattr(module, "OPTIONAL", False) and is_part_failure(exc)


def _plan_run(cfg: Config, competition, task, rundir: RunDir, budget: Budget, main: str,
              plan: list[str]) -> tuple[Config, dict | None]:
    """The run plan for the main stage about to run (``comp.run_plan``), printed and stored;
    (the config the main stage and those after it run with, the plan)."""
    if not budget.limited:
        (rundir.path / run_plan.PLAN).unlink(missing_ok=True)  # nothing to plan: the config as given
        return cfg, None
    later = {name: STAGES[name] for name in plan[plan.index(main) + 1:]
             if hasattr(STAGES[name], "least_seconds") or hasattr(STAGES[name], "reserve_seconds")}
    made, why = run_plan.make(cfg, competition, task, rundir, budget, main, later)
    if made is None:
        print(f"run plan: none; {why}", flush=True)
        (rundir.path / run_plan.PLAN).unlink(missing_ok=True)
        return cfg, None
    for line in made["lines"]:
        print(line, flush=True)
    run_plan.save(rundir.path, made)
    return run_plan.planned_config(cfg, made), made


def _run_location(cfg: Config, competition_name: str) -> tuple[RunDir, Path]:
    """runs/<run>/ and submissions/; a non-chief worker of a multi-worker run gets scratch
    folders inside the run directory instead, so only the chief publishes results."""
    from comp.training.strategy import worker_role

    run_path = Path(cfg.paths.runs) / (cfg.run or competition_name)
    index, count = worker_role()
    if index == 0:
        return RunDir(run_path), Path(cfg.paths.submissions)
    scratch = run_path / f".worker-{index}"
    print(f"worker {index} of {count}: writing scratch results to {scratch}", flush=True)
    return RunDir(scratch), scratch / "submissions"


def _start_devices(cfg: Config) -> None:
    """Device set-up TensorFlow only accepts before its first operation."""
    import os

    from comp.training.strategy import configure_devices, get_strategy

    configure_devices(cfg.train.logical_cpus)
    if cfg.train.xla == "on" and ((cfg.train.logical_cpus or 0) > 1 or os.environ.get("TF_CONFIG")):
        import tensorflow as tf

        if not tf.config.list_physical_devices("GPU"):
            # TensorFlow cannot compile a replicated step's cross-device merge for CPUs
            raise ConfigError("train.xla=on: XLA compiles the train step on GPUs or one CPU, not for several CPU "
                              "devices or CPU workers; use train.xla=auto (off on CPU) or off")
    if os.environ.get("TF_CONFIG") and cfg.train.strategy in ("auto", "multi_worker"):
        get_strategy("multi_worker")  # collectives must be set up at program start


def _targets(stage: str) -> list[str]:
    if stage == "all":
        return list(STAGES)
    if stage in STAGES:
        return [stage]
    if stage in PLANNED:
        raise ConfigError(f"stage={stage} is not in this version of comp yet; available: all, {', '.join(STAGES)}")
    close = difflib.get_close_matches(stage, list(STAGES) + ["all"], n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise ConfigError(f"unknown stage={stage!r}; {hint}available: all, {', '.join(STAGES)}")


def _plan(targets: list[str], cfg: Config, available: set[str]) -> list[str]:
    """The targets and every stage they read from, in pipeline order."""
    needed: set[str] = set()

    def visit(name: str) -> None:
        if name not in needed:
            needed.add(name)
            for dep in STAGES[name].inputs(cfg, available | needed, TRAINING).values():
                visit(dep)

    for name in targets:
        visit(name)
    return [name for name in STAGES if name in needed]


def _stage_key(name: str, cfg: Config, fingerprint: str, upstream_outputs: dict[str, str],
               derived: dict | None = None) -> str:
    """Changes whenever the stage's config, the competition data or an input stage's output do,
    or what the stage resolves from them (``derived``: its module's ``key_values``)."""
    payload = {
        "stage": name,
        "config": cfg.digest(STAGES[name].CONFIG),
        "data": fingerprint,
        "upstream": upstream_outputs,
    }
    if derived:  # only where the stage resolves something: every other key stays as it was
        payload["derived"] = derived
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _provenance(cfg: Config, command: str) -> str:
    info = {
        "command": command,
        "config": cfg.to_dict(),
        "seed": cfg.seed,
        "versions": package_versions(),
        "git": git_revision(),
    }
    return yaml.safe_dump(info, sort_keys=False)


def _check_writable(run_path: Path, submissions: Path, cfg: Config) -> None:
    """runs/ and submissions/ must be (or become) writable folders: checked before any work."""
    for path, key in ((run_path.parent, "paths.runs"), (submissions, "paths.submissions")):
        existing = next((p for p in [path, *path.parents] if p.exists()), None)
        if existing is not None and not existing.is_dir():
            raise ConfigError(f"{existing} is a file, not a folder; move it away or set {key}=ANOTHER_FOLDER")
        if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
            raise ConfigError(f"{existing} is not writable; fix its permissions or set {key}=ANOTHER_FOLDER")
