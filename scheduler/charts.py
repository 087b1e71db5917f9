"""Digest charts: per commune (or per PAPI dimension) how its tasks stand, as PNGs sized for
a phone (1,080 px wide, read at full width in the chat).

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no display, no global state),
so it can run in a worker thread. Each row is one bar of its whole count, stacked: done
(green), excused (blue-grey), overdue (warning red), and what is still open (the grey track).
At its end: the completion rate (done over what had to be done: excused tasks are not counted
as missing) and, in red, the overdue count. Rows keep the order they are given (the digest's
text order). More than `MAX_ROWS` rows are split across charts rather than shrunk.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from bot.core.i18n import format_number, format_percent
from bot.core.services.status import StatusCounts

BAR_COLOR = "#2e7d32"  # done
EXCUSED_COLOR = "#5c7fa3"
OVERDUE_COLOR = "#d50000"  # a warning red, apart from every other part
TRACK_COLOR = "#d9d9d9"  # open
WIDTH_PX = 1080
DPI = 100
MAX_ROWS = 12  # per chart: more and the bars get too thin to read on a phone
FONT = 17


def split_rows(rows: list, limit: int = MAX_ROWS) -> list[list]:
    """Rows in charts of at most `limit`, as even as can be (13 rows: 7 and 6)."""
    if len(rows) <= limit:
        return [rows]
    parts = -(-len(rows) // limit)
    size = -(-len(rows) // parts)
    return [rows[start : start + size] for start in range(0, len(rows), size)]


def status_charts(
    rows: list[tuple[str, StatusCounts]],
    title: str,
    legend: tuple[str, str, str, str],
    path: Path,
    locale: str = "vi",
) -> list[Path]:
    """Write one chart, or several (`name-1.png`, `name-2.png`…) when there are many rows."""
    parts = split_rows(rows)
    if len(parts) == 1:
        return [status_chart(rows, title, legend, path, locale)]
    return [
        status_chart(
            part,
            f"{title} ({index}/{len(parts)})",
            legend,
            path.with_name(f"{path.stem}-{index}{path.suffix}"),
            locale,
        )
        for index, part in enumerate(parts, start=1)
    ]


def bar_label(
    counts: StatusCounts, legend: tuple[str, str, str, str], locale: str = "vi"
) -> tuple[str, bool]:
    """The text at a bar's end, and whether it is news (bold).

    The rate of what had to be done, with the counts behind it: "0%" of 1 task and of 60 are
    not the same news. A unit whose tasks are all still open and none late has no rate to
    report yet: "8 chưa xong", quietly, rather than a bold "0%" that reads as failure.
    "—" when it had nothing to do."""
    if not counts.expected:
        return "—", False
    if not counts.done and not counts.overdue:
        return f"{format_number(counts.open, locale)} {legend[3]}", False
    done, expected = format_number(counts.done, locale), format_number(counts.expected, locale)
    return f"{format_percent(counts.rate, locale)} ({done}/{expected})", True


def status_chart(
    rows: list[tuple[str, StatusCounts]],
    title: str,
    legend: tuple[str, str, str, str],
    path: Path,
    locale: str = "vi",
) -> Path:
    """Write a horizontal stacked bar chart, first row at the top. `legend` names the four
    parts: done, excused, overdue, open. `title` may hold two lines (what, then the period)."""
    # Imported here: matplotlib costs seconds at start-up and only digests need it.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path.parent.mkdir(parents=True, exist_ok=True)
    height = 2.9 + 0.75 * max(len(rows), 1)
    figure = Figure(figsize=(WIDTH_PX / DPI, height), dpi=DPI)
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
    bar = {"height": 0.62, "linewidth": 0}
    axes.barh(positions, [100] * len(rows), color=TRACK_COLOR, label=legend[3], **bar)
    axes.barh(positions, done, color=BAR_COLOR, label=legend[0], **bar)
    axes.barh(positions, excused, left=done, color=EXCUSED_COLOR, label=legend[1], **bar)
    starts = [a + b for a, b in zip(done, excused, strict=True)]
    axes.barh(positions, overdue, left=starts, color=OVERDUE_COLOR, label=legend[2], **bar)
    for position, (_label, counts) in zip(positions, rows, strict=True):
        label, bold = bar_label(counts, legend, locale)
        axes.text(
            102,
            position - 0.14,
            label,
            va="center",
            fontsize=FONT,
            fontweight="bold" if bold else "normal",
            color="#000000" if bold else "#555555",
        )
        if counts.overdue:
            axes.text(
                102,
                position + 0.22,
                f"{format_number(counts.overdue, locale)} {legend[2]}",
                va="center",
                fontsize=FONT - 3,
                color="#b71c1c",
            )
    axes.set_yticks(positions, labels=labels, fontsize=FONT)
    axes.invert_yaxis()
    axes.set_xlim(0, 136)
    ticks = [0, 25, 50, 75, 100]
    axes.set_xticks(ticks, labels=[format_percent(t / 100, locale) for t in ticks])
    axes.tick_params(axis="x", labelsize=FONT - 4, colors="#555555")
    axes.tick_params(axis="y", length=0)
    # A figure-level title from the left edge, wrapped: a long district name must not run off
    # the right edge (an axes title starts at the bars, after the commune names).
    lines = [wrapped for line in title.splitlines() for wrapped in textwrap.wrap(line, 62)]
    figure.suptitle("\n".join(lines), x=0.015, ha="left", fontsize=FONT + 2, fontweight="bold")
    handles, names = axes.get_legend_handles_labels()
    order = [1, 2, 3, 0]  # done, excused, overdue, open
    figure.legend(
        [handles[i] for i in order],
        [names[i] for i in order],
        loc="lower center",
        ncols=4,
        fontsize=FONT - 2,
        frameon=False,
        handlelength=1.0,
        handleheight=1.0,
    )
    for side in ("top", "right", "bottom"):
        axes.spines[side].set_visible(False)
    figure.tight_layout(rect=(0, 0.6 / height, 1, 1))
    figure.savefig(path, format="png")
    return path
