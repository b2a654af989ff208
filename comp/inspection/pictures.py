"""Pictures for the inspect report: class counts as bars, a contact sheet of examples."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from comp.files import atomic_path


def class_bars(counts: pd.Series, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(4, 0.35 * len(counts) + 2), 3))
    ax.bar([str(c) for c in counts.index], counts.to_numpy(), color="#4477aa")
    ax.set_title(title)
    ax.set_ylabel("train images")
    ax.tick_params(axis="x", labelrotation=90 if len(counts) > 20 else 0)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def contact_sheet(pixels: np.ndarray, labels: pd.Series, path: Path, per_class: int, cell: int = 48) -> None:
    """One row per class (label on the left), up to ``per_class`` examples each."""
    classes = sorted(labels.unique(), key=str)[:60]
    label_w = 80
    sheet = np.full((cell * len(classes), label_w + cell * per_class, 3), 255, dtype=np.uint8)
    for r, cls in enumerate(classes):
        cv2.putText(sheet, str(cls)[:8], (4, r * cell + cell // 2 + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    (0, 0, 0), 1, cv2.LINE_AA)
        for c, i in enumerate(np.flatnonzero((labels == cls).to_numpy())[:per_class]):
            im = pixels[i]
            im = np.repeat(im, 3, axis=2) if im.shape[2] == 1 else im
            tile = cv2.resize(im, (cell - 2, cell - 2), interpolation=cv2.INTER_NEAREST)
            y, x = r * cell + 1, label_w + c * cell + 1
            sheet[y:y + cell - 2, x:x + cell - 2] = tile
    with atomic_path(path) as tmp:
        ok, data = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
        tmp.write_bytes(data.tobytes())
