"""Digest charts: completion rate per commune (or per PAPI dimension) as a PNG.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no display, no global state),
so it can run in a worker thread. Each row is a grey track (100 %) with a green bar over it.
"""

from __future__ import annotations

from pathlib import Path

BAR_COLOR = "#2e7d32"
TRACK_COLOR = "#d9d9d9"
WIDTH_INCHES = 8.0
DPI = 100


def completion_chart(rows: list[tuple[str, float]], title: str, path: Path) -> Path:
    """Write a horizontal bar chart of (label, rate 0..1), first row at the top."""
    # Imported here: matplotlib costs seconds at start-up and only digests need it.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path.parent.mkdir(parents=True, exist_ok=True)
    height = 1.2 + 0.45 * max(len(rows), 1)
    figure = Figure(figsize=(WIDTH_INCHES, height), dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    labels = [label for label, _rate in rows]
    rates = [max(0.0, min(rate, 1.0)) * 100 for _label, rate in rows]
    positions = list(range(len(rows)))
    axes.barh(positions, [100] * len(rows), color=TRACK_COLOR, height=0.6)
    axes.barh(positions, rates, color=BAR_COLOR, height=0.6)
    for position, rate in zip(positions, rates, strict=True):
        axes.text(101, position, f"{rate:.0f}%", va="center", fontsize=9)
    axes.set_yticks(positions, labels=labels, fontsize=9)
    axes.invert_yaxis()
    axes.set_xlim(0, 112)
    axes.set_xticks([0, 25, 50, 75, 100], labels=["0", "25", "50", "75", "100%"])
    axes.set_title(title, fontsize=11)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path
