"""Pieces of the run report's HTML (``comp.report`` lays them out): notes, embedded pictures
and tables. Every picture is a data URI, so the page needs nothing else."""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any, Callable

import pandas as pd


def note(text: str) -> str:
    return f"<p class='note'>{html.escape(text)}</p>"


def missing(stage: str) -> str:
    return note(f"stage {stage} has not run (comp run stage={stage})")


def png(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'>"


def figure(draw: Callable[[Any], None], alt: str, size=(6, 4)) -> str:
    """A matplotlib figure drawn by ``draw(fig)``, embedded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=size)
    try:
        draw(fig)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=90)
    finally:
        plt.close(fig)
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}'>"


def table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, float_format=lambda v: f"{v:.5g}", na_rep="", border=0, escape=True)


def escape(text: Any) -> str:
    return html.escape(str(text))
