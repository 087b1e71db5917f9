"""Province analysis: the work done on each PAPI dimension this year beside the province's
published PAPI scores (framework_data/papi_scores.yaml, each year with its source), so the
province sees its weakest dimensions next to what is being done about them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml
from aiohttp import web
from pydantic import BaseModel, ConfigDict

from bot.core.models import Level
from bot.core.services.rollup import Counts, count_occurrences
from bot.web.dashboard import periods
from bot.web.dashboard.visit import OutOfScope, Visit, page

SCORES_FILE = "papi_scores.yaml"


class PublishedYear(BaseModel):
    model_config = ConfigDict(extra="forbid")
    year: int
    total: float
    rank: str = ""
    dimensions: dict[str, float] = {}
    source: str


class PublishedScores(BaseModel):
    model_config = ConfigDict(extra="forbid")
    province: str
    years: list[PublishedYear]


def load_scores(framework_dir: Path, overrides: Path | None) -> PublishedScores | None:
    """The province's file if it has one (override folder first), else the shipped one."""
    for folder in (overrides, framework_dir):
        if folder is not None and (Path(folder) / SCORES_FILE).is_file():
            with (Path(folder) / SCORES_FILE).open(encoding="utf-8") as handle:
                return PublishedScores.model_validate(yaml.safe_load(handle))
    return None


@dataclass
class DimensionRow:
    number: int
    name: str
    counts: Counts = field(default_factory=Counts)
    scores: dict[int, float] = field(default_factory=dict)


def decimal(value: float | None) -> str:
    """Scores as the reports print them: 3,99 (Vietnamese decimal comma)."""
    if value is None:
        return "—"
    return f"{value:.4f}".rstrip("0").rstrip(".").replace(".", ",")


@page
async def analysis_page(request: web.Request, visit: Visit) -> web.Response:
    scope = visit.scope
    if scope.root.level != Level.province:
        raise OutOfScope
    settings = visit.ctx.settings
    scores = load_scores(settings.framework_dir, settings.framework_overrides)
    year = periods.parse(request.query.get("p") or str(visit.today.year), visit.today)
    if year is None or year.kind != "year":
        year = periods.current("year", visit.today)
    since, until = year.bounds(settings.tz)
    found = await count_occurrences(visit.session, since, until, None, scope.task_keys)
    dimensions = sorted(visit.ctx.framework.dimensions.values(), key=lambda d: d.number)
    rows = {d.key: DimensionRow(d.number, d.name) for d in dimensions}
    for (_unit_id, key), counts in found.items():
        if key in rows:
            rows[key].counts.merge(counts)
    years = scores.years if scores else []
    for published in years:
        for key, value in published.dimensions.items():
            if key in rows:
                rows[key].scores[published.year] = value
    return visit.render(
        "analysis.html",
        title=visit._("Province analysis"),
        unit=scope.root,
        trail=scope.trail(scope.root.id),
        tab="analysis",
        rows=list(rows.values()),
        years=years,
        period=year,
        decimal=decimal,
    )
