"""The inspect report as Markdown: problems first, then the numbers and pictures."""
from __future__ import annotations


def render_markdown(report: dict) -> str:
    lines = [f"# Inspection of {report['competition']}", ""]
    lines += ["## Problems", ""]
    lines += [f"- {p}" for p in report["problems"]] or ["- none found"]
    lines += ["", "## Overview", "",
              f"- task: {report['task']}, metric: {report['metric']}",
              f"- rows: {report['rows']['train']} train, {report['rows']['test']} test"]
    if "classes" in report:
        lines += [f"- classes: {len(report['classes'])}, imbalance ratio (largest/smallest): {report['imbalance_ratio']}",
                  "", "| class | train images |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in report["classes"].items()]
        lines += ["", "![class counts](class_counts.png)"]
    if "target" in report:
        lines += ["", "## Target", ""] + [f"- {k}: {v}" for k, v in report["target"].items()]
    if "images" in report:
        im = report["images"]
        lines += ["", "## Images", "",
                  "- sizes: " + ", ".join(f"{k} ({v})" for k, v in im["sizes"].items()),
                  "- channels: " + ", ".join(f"{k} ({v})" for k, v in im["channels"].items()),
                  f"- model input: {im['model_input']}, value range {im['value_range']}, mean {im['mean']}",
                  "", "![examples per class](contact_sheet.png)"]
    if "features" in report:
        lines += ["", "## Features", "", "| feature | dtype | missing | distinct | constant | summary |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {f['feature']} | {f['dtype']} | {f['missing_rate']:.2%} | {f['distinct']} | "
                  f"{'yes' if f['constant'] else ''} | {f['summary']} |" for f in report["features"]]
    dup = report["duplicates"]
    lines += ["", "## Duplicates", "", "Detectors: " + "; ".join(dup["detectors"]) + ".", "",
              f"- groups: {len(dup['groups'])}, train/test leaks: {len(dup['leaks'])}, "
              f"conflicting labels: {len(dup['conflicts'])}", ""]
    for chain in dup.get("refused_chains", []):
        lines += [f"- refused (look-alikes chained, not grouped): {len(chain)} images: {', '.join(chain[:20])}"
                  + (", ..." if len(chain) > 20 else ""), ""]
    if dup["groups"]:
        lines += ["| group | kind | members (split id [label]) |", "|---|---|---|"]
        for g in dup["groups"][:200]:
            members = ", ".join(f"{s} {i}" + (f" [{l}]" if l else "") for i, s, l in zip(g["ids"], g["splits"], g["labels"]))
            lines.append(f"| {g['group']} | {g['kind']} | {members} |")
    shift = report.get("shift")
    if shift:
        lines += ["", "## Train/test shift (adversarial validation)", ""]
        if shift["auc"] is None:
            lines.append(f"- {shift['note']}")
        else:
            lines += [f"- a classifier tells train from test with cross-validated AUC {shift['auc']} (0.5 = alike)",
                      "- most different: " + (", ".join(f"{d['feature']} (AUC -{d['auc_drop']} when shuffled)"
                                                       for d in shift["differs"]) or "no single feature"),
                      "- train rows most like test: " + ", ".join(shift["train_most_like_test"]),
                      "- test rows least like train: " + ", ".join(shift["test_least_like_train"]),
                      "- every row's P(test): adversarial.csv"]
    if report["outliers"]:
        lines += ["", "## Outliers (most unusual first)", "", "| id | split | score | why |", "|---|---|---|---|"]
        lines += [f"| {o['id']} | {o['split']} | {o['score']:.1f} | {o['reasons']} |" for o in report["outliers"]]
    return "\n".join(lines) + "\n"
