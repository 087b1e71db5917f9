"""The digest chart as a district officer sees it on a phone: 1,080 px wide, overdue in a
warning red in proportion to the overdue count, large districts split across two charts
rather than shrunk. The charts are written to tests/artifacts/ to be looked at."""

from __future__ import annotations

import shutil
from pathlib import Path

from PIL import Image, ImageColor

from bot.core.i18n import translator
from bot.core.models import Unit
from bot.core.services.status import StatusCounts
from scheduler.charts import (
    MAX_ROWS,
    OVERDUE_COLOR,
    WIDTH_PX,
    bar_label,
    split_rows,
    status_charts,
)
from scheduler.digests import chart_legend
from tests.helpers.scheduler_world import bar_shares

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
NAMES = [
    "Xã Ân Hảo",
    "Xã An Nhơn",
    "Phường Lộc Thọ",
    "Xã Bình Lộc",
    "Xã Diên An",
    "Xã Diên Điền",
    "Phường Vĩnh Hải",
    "Xã Đại Lãnh",
    "Xã Suối Hiệp",
    "Xã Suối Tiên",
    "Phường Phước Long",
    "Xã Cam Hải Tây",
    "Xã Ninh Xuân",
    "Xã Ninh Ích",
    "Phường Ninh Hiệp",
    "Xã Vạn Thắng",
    "Xã Vạn Hưng",
    "Xã Khánh Bình",
    "Xã Sơn Tân",
    "Xã Thành Hải",
]


def tallies(count: int) -> list[tuple[str, StatusCounts]]:
    rows = []
    for index, name in enumerate(NAMES[:count]):
        unit = Unit(id=index + 1, code=f"{index:05d}", name=name, level="commune")
        rows.append(
            (name, StatusCounts(unit, done=10 + index, excused=index % 3, overdue=index, open=4))
        )
    return sorted(rows, key=lambda row: -row[1].overdue)  # worst first, as the digest does


def red_pixels(path: Path) -> int:
    red = ImageColor.getrgb(OVERDUE_COLOR)
    image = Image.open(path).convert("RGB")
    return sum(1 for pixel in image.get_flattened_data() if pixel == red)


def test_a_large_district_is_split_across_two_phone_sized_charts(tmp_path):
    _ = translator("vi")
    rows = tallies(20)
    paths = status_charts(
        rows,
        "Tình hình thực hiện theo xã, phường — huyện Diên Khánh\nViệc đến hạn từ 30/08/2026",
        chart_legend(_),
        tmp_path / "weekly.png",
    )
    assert [p.name for p in paths] == ["weekly-1.png", "weekly-2.png"]
    ARTIFACTS.mkdir(exist_ok=True)
    shown = []
    for path in paths:
        shutil.copy(path, ARTIFACTS / f"chart-large-{path.name}")
        image = Image.open(path)
        assert image.size[0] == WIDTH_PX and image.format == "PNG"
        shares = bar_shares(path)
        shown += shares
    assert len(shown) == 20 and all(len(part) <= MAX_ROWS for part in split_rows(rows))
    # Each bar's red share is its overdue share, in the order given (worst first).
    for share, (_name, counts) in zip(shown, rows, strict=True):
        assert abs(share["overdue"] - counts.overdue / counts.total) < 0.02


def test_overdue_is_drawn_red_in_proportion_to_the_overdue_count(tmp_path):
    _ = translator("vi")
    unit = Unit(id=1, code="1", name="Xã An", level="commune")
    counts = {n: StatusCounts(unit, done=8, overdue=n, open=8 - n) for n in (0, 2, 4, 8)}
    pixels = {}
    for n, tally in counts.items():
        (path,) = status_charts(
            [("Xã An", tally)], "Xã An\nTháng 12/2026", chart_legend(_), tmp_path / f"{n}.png"
        )
        pixels[n] = red_pixels(path)
    legend_swatch = pixels[0]  # no overdue: only the legend's red square
    drawn = {n: pixels[n] - legend_swatch for n in (2, 4, 8)}
    assert drawn[2] > 0
    assert abs(drawn[4] / drawn[2] - 2) < 0.1 and abs(drawn[8] / drawn[2] - 4) < 0.15


def test_a_small_district_has_one_chart_at_phone_width(tmp_path):
    _ = translator("vi")
    (path,) = status_charts(tallies(3), "Ba xã\nTháng 12/2026", chart_legend(_), tmp_path / "a.png")
    assert path.name == "a.png" and Image.open(path).size[0] == WIDTH_PX


def test_a_commune_with_nothing_due_yet_shows_its_open_tasks_not_a_zero_rate():
    legend = chart_legend(translator("vi"))
    not_due_yet = StatusCounts(None, open=8)
    assert bar_label(not_due_yet, legend) == ("8 chưa xong", False)
    nothing_late_some_done = StatusCounts(None, done=2, open=6)
    assert bar_label(nothing_late_some_done, legend) == ("25% (2/8)", True)
    all_late = StatusCounts(None, overdue=8)
    assert bar_label(all_late, legend) == ("0% (0/8)", True)
    assert bar_label(StatusCounts(None, excused=3), legend) == ("—", False)
