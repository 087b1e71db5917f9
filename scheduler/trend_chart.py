"""The trend chart of a digest: is it getting better or worse? One column per week (the last
eight full weeks), the tasks due that week stacked by how they stood at the week's end: done
(green), excused (blue-grey), overdue (warning red, on top where the eye lands). Above each
column its completion rate and, in red, its overdue count. Columns share one scale, so the
red area of a week is in proportion to its overdue count. Weeks before anything was due say
so instead of showing an empty column. 1,080 px wide, like the status chart.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from bot.core.i18n import format_number, format_percent, translator
from scheduler.charts import BAR_COLOR, DPI, EXCUSED_COLOR, FONT, OVERDUE_COLOR, WIDTH_PX
from scheduler.trend import Week

HEIGHT_PX = 900
MUTED = "#757575"
LABEL_RED = "#b71c1c"  # the overdue count's text: darker than the bars, never counted as bar


def week_label(week: Week) -> str:
    """ "23/11\n–29/11": two short lines fit under a column at phone width."""
    return f"{week.start:%d/%m}\n–{week.end:%d/%m}"


def trend_chart(weeks: list[Week], title: str, path: Path, locale: str = "vi") -> Path:
    """Write the chart; `title` may hold two lines (what, then the period)."""
    # Imported here: matplotlib costs seconds at start-up and only digests need it.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    _ = translator(locale)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [wrapped for line in title.splitlines() for wrapped in textwrap.wrap(line, 68)]
    height = (HEIGHT_PX + 34 * max(len(lines) - 2, 0)) / DPI  # the plot keeps its size
    figure = Figure(figsize=(WIDTH_PX / DPI, height), dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    positions = list(range(len(weeks)))

    def part(name: str) -> list[int]:
        return [getattr(week.counts, name) if week.counts else 0 for week in weeks]

    done, excused, overdue = part("done"), part("excused"), part("overdue")
    tallest = max([a + b + c for a, b, c in zip(done, excused, overdue, strict=True)] + [1])
    bar = {"width": 0.66, "linewidth": 0}
    axes.bar(positions, done, color=BAR_COLOR, label=_("done"), **bar)
    axes.bar(positions, excused, bottom=done, color=EXCUSED_COLOR, label=_("excused"), **bar)
    below = [a + b for a, b in zip(done, excused, strict=True)]
    axes.bar(positions, overdue, bottom=below, color=OVERDUE_COLOR, label=_("overdue"), **bar)
    step = tallest * 0.075
    for position, week, top in zip(
        positions, weeks, [a + b for a, b in zip(below, overdue, strict=True)], strict=True
    ):
        if week.counts is None:
            continue
        if not week.counts.total:
            axes.text(
                position,
                step,
                _("nothing\ndue"),
                ha="center",
                va="bottom",
                fontsize=FONT - 4,
                color=MUTED,
            )
            continue
        rate = format_percent(week.counts.rate, locale) if week.counts.expected else "—"
        axes.text(
            position,
            top + step * 0.25,
            rate,
            ha="center",
            va="bottom",
            fontsize=FONT,
            fontweight="bold",
        )
        if week.counts.overdue:
            axes.text(
                position,
                top + step * 1.45,
                format_number(week.counts.overdue, locale),
                ha="center",
                va="bottom",
                fontsize=FONT,
                fontweight="bold",
                color=LABEL_RED,
            )
    before = sum(1 for week in weeks if week.counts is None)
    if before:
        # The weeks before the record began: one shaded band and one label, not a column of
        # zeros (nothing was missed there; the bot was not yet tracking).
        axes.axvspan(-0.5, before - 0.5, color="#f3f3f3", linewidth=0)
        axes.text(
            (before - 1) / 2,
            tallest * 0.5,
            _("no records yet"),
            ha="center",
            va="center",
            fontsize=FONT,
            color=MUTED,
        )
    axes.set_xticks(positions, labels=[week_label(week) for week in weeks], fontsize=FONT - 4)
    axes.set_xlim(-0.6, len(weeks) - 0.4)
    axes.set_ylim(0, tallest * 1.32)
    axes.yaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
    axes.set_yticks(
        axes.get_yticks(), labels=[format_number(int(t), locale) for t in axes.get_yticks()]
    )
    axes.set_ylim(0, tallest * 1.32)
    axes.tick_params(axis="y", labelsize=FONT - 4, colors="#555555")
    axes.tick_params(axis="x", length=0)
    axes.set_ylabel(_("tasks due in the week"), fontsize=FONT - 4, color="#555555")
    axes.grid(axis="y", color="#eeeeee")
    axes.set_axisbelow(True)
    figure.suptitle("\n".join(lines), x=0.015, ha="left", fontsize=FONT + 2, fontweight="bold")
    handles, names = axes.get_legend_handles_labels()
    figure.legend(
        handles,
        names,
        loc="lower center",
        ncols=3,
        fontsize=FONT - 2,
        frameon=False,
        handlelength=1.0,
        handleheight=1.0,
    )
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    figure.tight_layout(rect=(0, 0.6 / height, 1, 1))
    figure.savefig(path, format="png")
    return path
