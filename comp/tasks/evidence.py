"""What a competition folder says about its metric: a description or overview file beside
the data naming it (ROC-AUC, log loss, RMSE, ...).

Competition pages state their metric in an "Evaluation" paragraph; the first metric named
from that paragraph on wins (from the top of the file when there is no such paragraph).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

DESCRIPTION_FILES = ("description.md", "overview.md", "evaluation.md", "description.txt", "overview.txt",
                     "evaluation.txt", "README.md", "README.txt")

# More specific names first: RMSLE before RMSE, macro F1 before F1.
PATTERNS: tuple[tuple[str, str], ...] = (
    ("rmsle", r"\bRMSLE\b|root[- ]mean[- ]squared?[- ]log(?:arithmic)?[- ]error"),
    ("roc_auc", r"\bROC[- ]?AUC\b|\bAUC\b|\bAUROC\b|area under the (?:ROC|receiver)"),
    ("logloss", r"\blog[- ]?loss\b|\blogarithmic loss\b|\bcross[- ]?entropy\b"),
    ("rmse", r"\bRMSE\b|root[- ]mean[- ]squared?[- ]error"),
    ("mae", r"\bMAE\b|mean[- ]absolute[- ]error"),
    ("f1_macro", r"\bmacro[- ](?:averaged[- ])?F1\b|\bF1[- ]macro\b"),
    ("f1_micro", r"\bmicro[- ](?:averaged[- ])?F1\b|\bF1[- ]micro\b"),
    ("f1_samples", r"\b(?:mean|samples?[- ]averaged)[- ]F1\b"),
    ("f1", r"\bF1\b|\bF[- ]?score\b|\bF[- ]measure\b"),
    ("r2", r"\bR\^?2\b|\bR-squared\b|coefficient of determination"),
    ("qwk", r"quadratic(?:ally)?[- ]weighted[- ](?:cohen'?s[- ])?kappa|\bQWK\b"),
    ("exact_match", r"\bexact[- ]match\b"),
    ("accuracy", r"\baccuracy\b"),
    # Named often, computed by no built-in plugin: the inferred line says so instead of
    # silently scoring by something else.
    ("map_at_k", r"\bMAP@\d+\b|\bmean average precision\b"),
    ("dice", r"\bDice (?:coefficient|score)\b"),
    ("iou", r"\bIoU\b|\bintersection over union\b|\bJaccard\b"),
    ("spearman", r"\bSpearman"),
    ("smape", r"\bSMAPE\b"),
    ("mape", r"\bMAPE\b|mean absolute percentage error"),
)


@dataclass(frozen=True)
class MetricEvidence:
    metric: str
    file: str
    text: str  # the words that named it

    def __str__(self) -> str:
        return f'{self.file}: "{self.text}"'


def metrics_named(root: Path) -> list[MetricEvidence]:
    """Metrics named in the folder's description files, most likely first."""
    found: list[MetricEvidence] = []
    for name in DESCRIPTION_FILES:
        path = root / name
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        evaluation = re.search(r"evaluat", text, re.IGNORECASE)
        start = evaluation.start() if evaluation else 0
        hits = []
        for metric, pattern in PATTERNS:
            match = re.search(pattern, text[start:], re.IGNORECASE)
            if match:
                hits.append((match.start(), -len(match.group(0)), metric, match.group(0)))
        for _, _, metric, words in sorted(hits):
            found.append(MetricEvidence(metric, name, words))
    return found
