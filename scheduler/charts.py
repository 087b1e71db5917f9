"""Digest charts: per commune (or per PAPI dimension) how its tasks ended, as a PNG.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no display, no global state),
so it can run in a worker thread. Each row is one bar of its whole count: done (green), excused
(blue-grey), overdue (red), and what is still open (the grey track); the completion rate is
written at its end (done over what had to be done: excused tasks are not counted as missing).
"""

from __future__ import annotations

from pathlib import Path

from bot.core.services.status import StatusCounts

BAR_COLOR = "#2e7d32"  # done
EXCUSED_COLOR = "#5c7fa3"
OVERDUE_COLOR = "#c62828"
TRACK_COLOR = "#d9d9d9"  # open
WIDTH_INCHES = 8.0
DPI = 100


def status_chart(
    rows: list[tuple[str, StatusCounts]], title: str, legend: tuple[str, str, str, str], path: Path
) -> Path:
    """Write a horizontal stacked bar chart, first row at the top. `legend` names the four
    parts: done, excused, overdue, open."""
    # Imported here: matplotlib costs seconds at start-up and only digests need it.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path.parent.mkdir(parents=True, exist_ok=True)
    height = 1.8 + 0.45 * max(len(rows), 1)
    figure = Figure(figsize=(WIDTH_INCHES, height), dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    labels = [label for label, _counts in rows]
    positions = list(range(len(rows)))

    def share(part: str) -> list[float]:
        return [
            100 * getattr(counts, part) / counts.total if counts.total else 0.0
            for _label, counts in rows
        ]

    done, excused, overdue = share("done"), share("excused"), share("overdue")
    axes.barh(positions, [100] * len(rows), color=TRACK_COLOR, height=0.6, label=legend[3])
    axes.barh(positions, done, color=BAR_COLOR, height=0.6, label=legend[0])
    axes.barh(positions, excused, left=done, color=EXCUSED_COLOR, height=0.6, label=legend[1])
    starts = [a + b for a, b in zip(done, excused, strict=True)]
    axes.barh(positions, overdue, left=starts, color=OVERDUE_COLOR, height=0.6, label=legend[2])
    for position, (_label, counts) in zip(positions, rows, strict=True):
        label = f"{counts.rate:.0%}" if counts.expected else "—"  # nothing had to be done
        axes.text(101, position, label, va="center", fontsize=9)
    axes.set_yticks(positions, labels=labels, fontsize=9)
    axes.invert_yaxis()
    axes.set_xlim(0, 112)
    axes.set_xticks([0, 25, 50, 75, 100], labels=["0", "25", "50", "75", "100%"])
    axes.set_title(title, fontsize=11)
    handles, names = axes.get_legend_handles_labels()
    order = [1, 2, 3, 0]  # done, excused, overdue, open
    figure.legend(
        [handles[i] for i in order],
        [names[i] for i in order],
        loc="lower center",
        ncols=4,
        fontsize=8,
        frameon=False,
        handlelength=1.0,
    )
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    figure.tight_layout(rect=(0, 0.08, 1, 1))
    figure.savefig(path, format="png")
    return path
