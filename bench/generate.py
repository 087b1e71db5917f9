"""Synthetic data at province or national scale, written straight into SQLite or PostgreSQL.

    python -m bench.generate --scale province --url sqlite+aiosqlite:///bench/results/p.sqlite
    python -m bench.generate --scale national --history-months 24 \
        --url postgresql+asyncpg://postgres@127.0.0.1:5432/papibot_bench_national_m24

What it builds (the schema by the real migrations, `Database.upgrade()`):

- units: provinces › districts › communes › villages, plus the framework's provincial agencies
  under the first province (the framework is one province's, so its agency codes exist once);
- one user per unit, holding the unit's executing role, with a Telegram identity;
- task definitions, synchronised from framework_data/ as `papibot init` does;
- occurrences for every periodic task, unit and period due in the last `history_months` months,
  and the live planning window (what `plan(today)` makes): as a system that has run until
  `as_of` would hold them. Outcomes are drawn per (task, period) from a seeded generator, so the
  live rows are the same whatever the history length: about 80 % done before the due date,
  2 % excused, 8 % done late (after reminders and escalations), 10 % never done (escalated);
- `reminders`: every reminder stage whose moment came while the occurrence was still open
  (as the minute sweep records them), `escalations`: every step that came while it was late,
  and an `outbox` history (one sent message per person and month).

So a sweep at `as_of` finds nothing to do, and one at the next 08:00 finds that day's work.
Reports and evidence are not generated: none of the benchmarked paths reads them.

Rows are written with the drivers' bulk paths (sqlite3 executemany in one transaction, asyncpg
COPY), the indexes and unique keys the migrations made read from the catalog, dropped during the
load and rebuilt after (SQLite cannot drop a UNIQUE written into its table, so reminders',
escalations' and outbox's stay; occurrences' key is an index and goes), foreign-key checks off
for the load (the data is consistent by construction). PostgreSQL gets VACUUM ANALYZE at the end
(what autovacuum would have done); SQLite is left as a deployment leaves it (no ANALYZE).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sqlite3
import sys
import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import repeat
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bot.core.config import Settings
from bot.core.db import Database
from bot.core.framework import Framework, load_framework
from bot.core.framework.schema import role_matches
from bot.core.services.framework_sync import sync_task_definitions
from bot.core.timeutil import DUE_CLOCK
from scheduler.periods import periods_between
from scheduler.planner import OPEN_CLOCK, UnitIndex, units_for_task
from scheduler.policy import Policies, load_policies

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MINUTE = 60_000_000  # microseconds
HOUR = 60 * MINUTE
DAY = 24 * HOUR
NEVER = np.int64(2**62)
PLAN_LEAD = timedelta(days=62)  # an occurrence is created when its window is this close

BUSY_LOOKAHEAD = timedelta(days=7)  # where the data set looks for its busy moment
BUSY_AFTER = timedelta(minutes=5)  # the busy sweep runs this long after the reminders' moment
# The data set's own "now" when none is given: a fixed moment, so a figure never depends on the
# day the benchmark runs.
DEFAULT_AS_OF = "2026-11-16T07:30"
SHARE_ON_TIME = 0.80
SHARE_EXCUSED = 0.02
SHARE_LATE_DONE = 0.08  # the rest (10 %) is never done


@dataclass(frozen=True)
class Scale:
    provinces: int
    districts: int
    communes: int
    villages: int


SCALES = {
    "province": Scale(provinces=1, districts=9, communes=140, villages=1_400),
    "national": Scale(provinces=63, districts=700, communes=10_000, villages=100_000),
}

LEVEL_ROLE = {
    "province": "province_committee",
    "district": "district_committee",
    "commune": "commune_committee",
    "village": "village_head",
}


def us_of(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def schema_fingerprint() -> str:
    """The models' tables and columns: a data set generated on another schema is stale."""
    import hashlib

    from sqlmodel import SQLModel

    import bot.core.models  # noqa: F401  (the tables)

    names = sorted(
        f"{table.name}.{column.name}"
        for table in SQLModel.metadata.tables.values()
        for column in table.columns
    )
    return hashlib.sha256("|".join(names).encode()).hexdigest()[:16]


def default_as_of(tz) -> datetime:  # noqa: ANN001
    """A fixed morning at 07:30 local: the morning sweep's work (08:00) is still to come."""
    return datetime.fromisoformat(DEFAULT_AS_OF).replace(tzinfo=tz)


# --- the administrative tree -------------------------------------------------------------------


@dataclass
class Tree:
    ids: np.ndarray  # unit id = index + 1
    codes: list[str]
    names: list[str]
    levels: list[str]
    parent: np.ndarray  # parent unit id, 0 for none
    agency_codes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.codes)

    def level_of(self, unit_id: int) -> str:
        return self.levels[unit_id - 1]

    def ancestor_at(self, unit_ids: np.ndarray, level: str) -> np.ndarray:
        """For each unit, the nearest ancestor (not itself) at `level`, 0 when none."""
        found = np.zeros(len(unit_ids), dtype=np.int64)
        levels = np.array(self.levels)
        current = unit_ids.copy()
        for _ in range(5):
            current = np.where(current > 0, self.parent[np.maximum(current, 1) - 1], 0)
            hit = (found == 0) & (current > 0) & (levels[np.maximum(current, 1) - 1] == level)
            found = np.where(hit, current, found)
        return found


def build_tree(scale: Scale, framework: Framework, scale_name: str) -> Tree:
    codes: list[str] = []
    names: list[str] = []
    levels: list[str] = []
    parents: list[int] = []

    def add(code: str, name: str, level: str, parent: int) -> int:
        codes.append(code)
        names.append(name)
        levels.append(level)
        parents.append(parent)
        return len(codes)

    province_ids = []
    for i in range(scale.provinces):
        if scale_name == "province":
            province_ids.append(add("56", "Tỉnh Khánh Hòa", "province", 0))
        else:
            province_ids.append(add(f"P{i + 1:02d}", f"Tỉnh {i + 1:02d}", "province", 0))
    agency_codes = []
    for agency in framework.agencies.values():
        add(agency.key, agency.name, "agency", province_ids[0])
        agency_codes.append(agency.key)
    district_ids = [
        add(
            f"D{i + 1:04d}",
            f"Huyện {i + 1}",
            "district",
            province_ids[i * scale.provinces // scale.districts],
        )
        for i in range(scale.districts)
    ]
    commune_ids = [
        add(
            f"C{i + 1:05d}",
            f"Xã {i + 1}",
            "commune",
            district_ids[i * scale.districts // scale.communes],
        )
        for i in range(scale.communes)
    ]
    for i in range(scale.villages):
        add(
            f"V{i + 1:06d}",
            f"Thôn {i + 1}",
            "village",
            commune_ids[i * scale.communes // scale.villages],
        )
    return Tree(
        ids=np.arange(1, len(codes) + 1, dtype=np.int64),
        codes=codes,
        names=names,
        levels=levels,
        parent=np.array(parents, dtype=np.int64),
        agency_codes=agency_codes,
    )


# --- writing ---------------------------------------------------------------------------------


class Sink:
    """Bulk writes to one database; values arrive as Python objects, datetimes as UTC µs."""

    sqlite = False

    def __init__(self) -> None:
        self._times: dict[int, object] = {}

    def t(self, value: int | None) -> object:
        """One UTC microsecond count as the driver wants it (cached: values repeat a lot)."""
        if value is None:
            return None
        found = self._times.get(value)
        if found is None:
            moment = datetime(1970, 1, 1) + timedelta(microseconds=int(value))
            found = moment.isoformat(" ", "microseconds")
            if not self.sqlite:
                found += "+00"
            if len(self._times) > 2_000_000:
                self._times.clear()
            self._times[value] = found
        return found

    def times(self, values: Sequence[int | None]) -> list[object]:
        get = self._times.get
        out = []
        for value in values:
            found = get(value) if value is not None else None
            if found is None and value is not None:
                found = self.t(value)
            out.append(found)
        return out

    async def begin(self) -> None: ...
    async def write(self, table: str, columns: Sequence[str], rows: Iterable[tuple]) -> None: ...
    async def finish(self, progress: bool) -> None: ...
    async def close(self) -> None: ...


class SqliteSink(Sink):
    sqlite = True

    def __init__(self, path: str) -> None:
        super().__init__()
        self.connection = sqlite3.connect(path, isolation_level=None)
        self.indexes: list[tuple[str, str]] = []

    async def begin(self) -> None:
        c = self.connection
        c.execute("PRAGMA journal_mode=OFF")
        c.execute("PRAGMA synchronous=OFF")
        c.execute("PRAGMA foreign_keys=OFF")
        c.execute("PRAGMA cache_size=-2000000")  # 2 GB page cache for this load only
        c.execute("PRAGMA temp_store=MEMORY")
        self.indexes = c.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            " AND tbl_name IN ('occurrences', 'reminders', 'escalations', 'outbox')"
        ).fetchall()
        for name, _sql in self.indexes:
            c.execute(f'DROP INDEX "{name}"')
        c.execute("BEGIN")

    async def write(self, table: str, columns: Sequence[str], rows: Iterable[tuple]) -> None:
        marks = ", ".join("?" * len(columns))
        self.connection.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows
        )

    async def finish(self, progress: bool) -> None:
        c = self.connection
        c.execute("COMMIT")
        for _name, sql in tqdm(self.indexes, desc="indexes", disable=not progress):
            c.execute(sql)
        c.execute("PRAGMA journal_mode=WAL")

    async def close(self) -> None:
        self.connection.close()


class PostgresSink(Sink):
    TABLES = ("occurrences", "reminders", "escalations", "outbox")

    def __init__(self, dsn: str) -> None:
        super().__init__()
        self.dsn = dsn
        self.connection = None
        self.indexes: list[str] = []
        self.constraints: list[tuple[str, str, str]] = []
        self.buffers: dict[tuple[str, tuple[str, ...]], list[tuple]] = {}

    async def begin(self) -> None:
        import asyncpg

        self.connection = c = await asyncpg.connect(self.dsn)
        await c.execute("SET session_replication_role = replica")  # no FK triggers for the load
        await c.execute("SET synchronous_commit = off")
        await c.execute("SET maintenance_work_mem = '1GB'")
        tables = list(self.TABLES)
        self.constraints = [
            (r["tbl"], r["conname"], r["def"])
            for r in await c.fetch(
                "SELECT conrelid::regclass::text AS tbl, conname, pg_get_constraintdef(oid) AS def"
                " FROM pg_constraint WHERE contype = 'u' AND conrelid::regclass::text = ANY($1)",
                tables,
            )
        ]
        self.indexes = [
            r["indexdef"]
            for r in await c.fetch(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY($1)"
                " AND indexname NOT IN (SELECT conname FROM pg_constraint)",
                tables,
            )
        ]
        names = await c.fetch(
            "SELECT indexname FROM pg_indexes WHERE tablename = ANY($1)"
            " AND indexname NOT IN (SELECT conname FROM pg_constraint)",
            tables,
        )
        for table, name, _definition in self.constraints:
            await c.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        for row in names:
            await c.execute(f'DROP INDEX "{row["indexname"]}"')

    BATCH = 250_000  # rows per COPY: each call also looks the columns up

    async def write(self, table: str, columns: Sequence[str], rows: Iterable[tuple]) -> None:
        key = (table, tuple(columns))
        buffer = self.buffers.setdefault(key, [])
        buffer.extend(rows)
        if len(buffer) >= self.BATCH:
            await self._flush(key)

    async def _flush(self, key: tuple[str, tuple[str, ...]]) -> None:
        """COPY … FROM STDIN in text format: asyncpg's binary records path costs ~10 µs a row
        in the client here, these text lines ~1 µs."""
        records = self.buffers.pop(key, [])
        if not records:
            return
        text = "\n".join(["\t".join(map(str, record)) for record in records]) + "\n"
        # The generated values hold no tab, newline or backslash; None is PostgreSQL's \N, and
        # True/False are read as booleans as they are.
        for _ in range(2):  # twice: two None side by side share a tab
            text = text.replace("\tNone\t", "\t\\N\t")
        data = text.replace("\tNone\n", "\t\\N\n").encode()
        await self.connection.copy_to_table(
            key[0], source=io.BytesIO(data), columns=key[1], format="text"
        )

    async def finish(self, progress: bool) -> None:
        for key in list(self.buffers):
            await self._flush(key)
        c = self.connection
        steps = [f'ALTER TABLE {t} ADD CONSTRAINT "{n}" {d}' for t, n, d in self.constraints]
        steps += self.indexes
        for statement in tqdm(steps, desc="indexes", disable=not progress):
            await c.execute(statement)
        for table in (
            "units",
            "users",
            "channel_identities",
            "occurrences",
            "reminders",
            "escalations",
            "outbox",
        ):
            await c.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                f" coalesce((SELECT max(id) FROM {table}), 0) + 1, false)"
            )
        await c.execute("SET session_replication_role = origin")

    async def vacuum(self) -> None:
        await self.connection.execute("VACUUM ANALYZE")

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()


def sink_for(url: str) -> Sink:
    if url.startswith("sqlite"):
        return SqliteSink(url.split("///", 1)[1])
    dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    return PostgresSink(dsn)


# --- occurrences and what happened to them ------------------------------------------------------


@dataclass
class Counts:
    units: int = 0
    users: int = 0
    occurrences: int = 0
    live_occurrences: int = 0
    reminders: int = 0
    escalations: int = 0
    outbox: int = 0


@dataclass(frozen=True)
class Block:
    """One (task, period): its occurrences at every unit the task reaches."""

    task_key: str
    supervisor: str
    roles: tuple[str, ...]
    period: str
    opens: date
    due: date
    unit_ids: np.ndarray


def months_before(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, 28))


def plan_blocks(
    framework: Framework, tree: Tree, today: date, horizon_days: int, history_months: int
) -> list[Block]:
    index = UnitIndex(
        [
            (int(unit_id), code, level, int(parent) or None)
            for unit_id, code, level, parent in zip(
                tree.ids, tree.codes, tree.levels, tree.parent, strict=True
            )
        ]
    )
    first_due = months_before(today, history_months)
    last_open = today + timedelta(days=horizon_days)
    blocks = []
    for task in framework.tasks.values():
        rule = framework.schedules[task.schedule]
        if rule.kind != "periodic":
            continue
        units = np.array(sorted(units_for_task(task, framework, index)), dtype=np.int64)
        if not len(units):
            continue
        for period in periods_between(rule, first_due, last_open):
            blocks.append(
                Block(
                    task.key,
                    task.supervisor,
                    tuple(task.roles),
                    period.key,
                    period.opens,
                    period.due,
                    units,
                )
            )
    blocks.sort(key=lambda b: (b.opens, b.due, b.task_key))
    return blocks


class Generator:
    def __init__(
        self,
        sink: Sink,
        framework: Framework,
        policies: Policies,
        tree: Tree,
        as_of: datetime,
        seed: int,
    ) -> None:
        self.sink = sink
        self.framework = framework
        self.policies = policies
        self.tree = tree
        self.as_of = as_of
        self.as_of_us = us_of(as_of)
        self.tz = policies.tz
        self.seed = seed
        self.counts = Counts()
        self.next_occurrence = 1
        # Reminder moments after as_of and how many occurrences each would reach: the data
        # set's busy moment is read from these.
        self.upcoming: dict[datetime, int] = {}
        self.next_reminder = 1
        self.next_escalation = 1
        self.levels = np.array(tree.levels)
        self.district_of = tree.ancestor_at(tree.ids, "district")
        self.commune_of = tree.ancestor_at(tree.ids, "commune")
        self.province_of = tree.ancestor_at(tree.ids, "province")
        self.agency_id = {
            code: i + 1 for i, code in enumerate(tree.codes) if tree.levels[i] == "agency"
        }

    def role_of(self, unit_id: int) -> str:
        level = self.tree.levels[unit_id - 1]
        return (
            f"province_agency:{self.tree.codes[unit_id - 1]}"
            if level == "agency"
            else LEVEL_ROLE[level]
        )

    def local_us(self, day: date, clock) -> int:  # noqa: ANN001
        return us_of(datetime.combine(day, clock, tzinfo=self.tz))

    def note_upcoming(
        self, due_day: date, window_us: int, created_us: int, closed_at: np.ndarray
    ) -> None:
        for stage in self.policies.stages(due_day, self.as_of + BUSY_LOOKAHEAD):
            moment = us_of(stage.moment)
            if moment <= self.as_of_us or moment < window_us or moment < created_us:
                continue
            count = int((closed_at > moment).sum())
            if count:
                self.upcoming[stage.moment] = self.upcoming.get(stage.moment, 0) + count

    def busy_moment(self) -> tuple[datetime | None, int]:
        """The reminder moment with the most work in the week after as_of (the earliest of ties)."""
        if not self.upcoming:
            return None, 0
        moment = min(self.upcoming, key=lambda m: (-self.upcoming[m], m))
        return moment + BUSY_AFTER, self.upcoming[moment]

    # --- people ------------------------------------------------------------------------------

    async def write_people(self, started: datetime) -> None:
        tree, sink = self.tree, self.sink
        created = sink.t(us_of(started))
        rows = [
            (
                int(i),
                tree.codes[i - 1],
                tree.names[i - 1],
                tree.levels[i - 1],
                int(tree.parent[i - 1]) or None,
                False,
            )
            for i in tree.ids
        ]
        await sink.write("units", ("id", "code", "name", "level", "parent_id", "is_sample"), rows)
        users = []
        identities = []
        rng = np.random.default_rng(self.seed)
        last_seen = self.as_of_us - (rng.random(len(tree)) * 30 * DAY).astype(np.int64)
        last_seen = (last_seen // MINUTE) * MINUTE
        for i in tree.ids:
            i = int(i)
            level = tree.levels[i - 1]
            code = tree.codes[i - 1]
            role = f"province_agency:{code}" if level == "agency" else LEVEL_ROLE[level]
            users.append((i, f"Cán bộ {code}", role, i, "vi", True, created))
            identities.append(
                (
                    i,
                    i,
                    "telegram",
                    str(7_000_000_000 + i),
                    f"Cán bộ {code}",
                    False,
                    sink.t(int(last_seen[i - 1])),
                    created,
                )
            )
        await sink.write(
            "users", ("id", "name", "role", "unit_id", "locale", "active", "created_at"), users
        )
        await sink.write(
            "channel_identities",
            (
                "id",
                "user_id",
                "channel",
                "external_id",
                "display_name",
                "blocked",
                "last_interaction_at",
                "created_at",
            ),
            identities,
        )
        self.counts.units = self.counts.users = len(tree)

    # --- one block -----------------------------------------------------------------------------

    def supervisor_targets(self, block: Block, unit_ids: np.ndarray) -> np.ndarray:
        """Where the "supervisor" step goes (scheduler.escalation.supervisor_unit, three-tier)."""
        mapping = self.framework.supervisors.get(block.supervisor)
        parents = self.tree.parent[unit_ids - 1]
        provinces = np.where(self.province_of[unit_ids - 1] > 0, self.province_of[unit_ids - 1], 1)
        if mapping is None or mapping.target == "parent_district":
            found = np.where(
                self.district_of[unit_ids - 1] > 0, self.district_of[unit_ids - 1], provinces
            )
        elif mapping.target == "agency":
            found = np.full(
                len(unit_ids), self.agency_id.get(mapping.agency or "", 0), dtype=np.int64
            )
            found = np.where(found > 0, found, provinces)
        else:
            found = provinces
        return np.where(found == unit_ids, parents, found)

    async def write_block(self, block: Block) -> None:
        sink, pol = self.sink, self.policies
        units = block.unit_ids
        n = len(units)
        window_us = self.local_us(block.opens, OPEN_CLOCK)
        due_us = self.local_us(block.due, DUE_CLOCK)
        created_us = max(window_us - PLAN_LEAD // timedelta(microseconds=1), 0)
        rng = np.random.default_rng(
            [self.seed, zlib.crc32(f"{block.task_key}|{block.period}".encode())]
        )
        draw = rng.random(n)
        early = (rng.exponential(3.0, n) * DAY).astype(np.int64)
        late = (rng.uniform(1 / 24, 10.0, n) * DAY).astype(np.int64)
        on_time = np.maximum(due_us - early, window_us + HOUR)
        on_time = np.minimum(on_time, due_us - MINUTE)
        closed_at = np.where(draw < SHARE_ON_TIME + SHARE_EXCUSED, on_time, due_us + late)
        closed_at = np.where(
            draw >= SHARE_ON_TIME + SHARE_EXCUSED + SHARE_LATE_DONE, NEVER, closed_at
        )
        closed_at = (closed_at // MINUTE) * MINUTE
        excused = (draw >= SHARE_ON_TIME) & (draw < SHARE_ON_TIME + SHARE_EXCUSED)
        closed = closed_at <= self.as_of_us
        levels = self.levels[units - 1]
        self.note_upcoming(block.due, window_us, created_us, closed_at)

        # Escalation steps that came while the occurrence was late.
        due_day = block.due
        steps = []
        escalated_at = np.zeros(n, dtype=np.int64)
        for step in pol.escalation.steps:
            moment = us_of(pol.step_moment(step, due_day))
            if moment > self.as_of_us:
                continue
            applies = np.isin(levels, step.levels) & (closed_at > moment)
            if not applies.any():
                continue
            if step.target == "parent_commune":
                targets = self.commune_of[units - 1]
            else:
                targets = self.supervisor_targets(block, units)
            applies &= (targets > 0) & (targets != units)
            steps.append((step.step, moment, applies, targets))
            escalated_at = np.where(applies, np.maximum(escalated_at, moment), escalated_at)

        late_now = ~closed & (due_us < self.as_of_us)
        status = np.full(n, "open", dtype=object)
        status[late_now] = "overdue"
        status[late_now & (escalated_at > 0)] = "escalated"
        status[closed & ~excused] = "done"
        status[closed & excused] = "excused"
        updated = np.full(n, created_us, dtype=np.int64)
        updated = np.where(late_now, due_us + MINUTE, updated)
        updated = np.where(late_now & (escalated_at > 0), escalated_at + 30_000_000, updated)
        updated = np.where(closed, closed_at, updated)
        done = closed & ~excused

        first_id = self.next_occurrence
        ids = np.arange(first_id, first_id + n, dtype=np.int64)
        self.next_occurrence += n
        done_at = sink.times(
            [int(v) if d else None for v, d in zip(closed_at.tolist(), done.tolist(), strict=True)]
        )
        done_by = [
            int(u) if d else None for u, d in zip(units.tolist(), done.tolist(), strict=True)
        ]
        unit_list = units.tolist()
        await sink.write(
            "occurrences",
            (
                "id",
                "task_key",
                "unit_id",
                "period",
                "window_start",
                "due_at",
                "status",
                "event_id",
                "done_at",
                "done_by_user_id",
                "note",
                "created_at",
                "updated_at",
            ),
            list(
                zip(
                    ids.tolist(),
                    repeat(block.task_key),
                    unit_list,
                    repeat(block.period),
                    repeat(sink.t(window_us)),
                    repeat(sink.t(due_us)),
                    status.tolist(),
                    repeat(None),
                    done_at,
                    done_by,
                    repeat(""),
                    repeat(sink.t(created_us)),
                    sink.times(updated.tolist()),
                )
            ),
        )
        self.counts.occurrences += n
        if due_us >= self.local_us(self.as_of.astimezone(self.tz).date(), OPEN_CLOCK):
            self.counts.live_occurrences += n

        # Reminder stages recorded while it was open (as the minute sweep does). The one person
        # at a unit holds its level's role: a task of another role there (the commune police,
        # the people's inspection board …) reaches nobody, so the level above was told once.
        reachable = np.ones(n, dtype=bool)
        for level in set(levels.tolist()):
            at_level = levels == level
            if level == "agency":
                ok = [
                    role_matches(list(block.roles), self.role_of(int(u))) for u in units[at_level]
                ]
                reachable[at_level] = ok
            else:
                reachable[at_level] = role_matches(list(block.roles), LEVEL_ROLE[level])
        rows: list[tuple] = []
        told_above = np.zeros(n, dtype=np.int64)  # when the unreachable escalation happened
        for stage in pol.stages(due_day, self.as_of):
            moment = us_of(stage.moment)
            if moment < window_us or moment < created_us:
                continue
            hit = closed_at > moment
            count = int(hit.sum())
            if not count:
                continue
            told_above = np.where(hit & ~reachable & (told_above == 0), moment, told_above)
            first = self.next_reminder
            self.next_reminder += count
            sent = reachable[hit].tolist()
            rows.extend(
                zip(
                    range(first, first + count),
                    ids[hit].tolist(),
                    repeat(stage.key),
                    (
                        f"[{u}]" if ok else "[]"
                        for u, ok in zip(units[hit].tolist(), sent, strict=True)
                    ),
                    ("sent" if ok else "unreachable" for ok in sent),
                    repeat(sink.t(moment + 30_000_000)),
                )
            )
        if rows:
            await sink.write(
                "reminders",
                ("id", "occurrence_id", "stage", "user_ids", "outcome", "created_at"),
                rows,
            )
            self.counts.reminders += len(rows)

        rows = []
        unreachable = told_above > 0
        if unreachable.any():
            commune_level = levels == "commune"
            above = np.where(
                commune_level, self.district_of[units - 1], self.tree.parent[units - 1]
            )
            above = np.where(above > 0, above, self.province_of[units - 1])
            steps.append(("unreachable", told_above, unreachable & (above > 0), above))
        for name, moment, applies, targets in steps:
            count = int(applies.sum())
            first = self.next_escalation
            self.next_escalation += count
            target_list = targets[applies].tolist()
            rows.extend(
                zip(
                    range(first, first + count),
                    ids[applies].tolist(),
                    repeat(name),
                    target_list,
                    repeat("unreachable" if name == "unreachable" else "overdue"),
                    (f"[{t}]" for t in target_list),
                    (
                        repeat(sink.t(moment + 30_000_000))
                        if isinstance(moment, int)
                        else sink.times((moment[applies] + 30_000_000).tolist())
                    ),
                )
            )
        if rows:
            await sink.write(
                "escalations",
                (
                    "id",
                    "occurrence_id",
                    "step",
                    "target_unit_id",
                    "reason",
                    "notified_user_ids",
                    "created_at",
                ),
                rows,
            )
            self.counts.escalations += len(rows)

    # --- outbox history ---------------------------------------------------------------------

    async def write_outbox(self, first_due: date, progress: bool) -> None:
        """One sent message per person and month (the reminders of the 25th), compact payloads."""
        sink, tree = self.sink, self.tree
        months = []
        day = date(first_due.year, first_due.month, 18)
        today = self.as_of.astimezone(self.tz).date()
        while day < today:
            months.append(day)
            day = date(day.year + (day.month == 12), day.month % 12 + 1, 18)
        next_id = 1
        payload = json.dumps(
            {"text": "🔔 Nhắc việc: các việc cần báo cáo trước ngày 25."}, ensure_ascii=False
        )
        for day in tqdm(months, desc="outbox", disable=not progress):
            sent_us = self.local_us(day, self.policies.reminders.send_at) + MINUTE
            created, sent = sink.t(sent_us), sink.t(sent_us + 5_000_000)
            rows = [
                (
                    next_id + k,
                    f"remind:{int(u)}:{day:%Y%m%d}:bench",
                    int(u),
                    "telegram",
                    str(7_000_000_000 + int(u)),
                    payload,
                    "sent",
                    1,
                    created,
                    "",
                    str(1000 + k),
                    created,
                    sent,
                )
                for k, u in enumerate(tree.ids)
            ]
            next_id += len(rows)
            await sink.write(
                "outbox",
                (
                    "id",
                    "idempotency_key",
                    "user_id",
                    "channel",
                    "external_id",
                    "payload",
                    "status",
                    "attempts",
                    "next_attempt_at",
                    "last_error",
                    "platform_message_id",
                    "created_at",
                    "sent_at",
                ),
                rows,
            )
            self.counts.outbox += len(rows)


# --- the command -----------------------------------------------------------------------------


async def prepare_schema(url: str, framework: Framework) -> None:
    """Migrations, then the task definitions (as `papibot init` does)."""
    db = Database(url)
    try:
        await db.upgrade()
        async with db.session() as session:
            await sync_task_definitions(session, framework)
            await session.commit()
    finally:
        await db.dispose()


async def write_meta(url: str, meta: dict) -> None:
    db = Database(url)
    from sqlalchemy import text

    try:
        async with db.engine.begin() as connection:
            await connection.execute(
                text(
                    "CREATE TABLE IF NOT EXISTS bench_meta (key VARCHAR(64) PRIMARY KEY, value TEXT)"
                )
            )
            await connection.execute(text("DELETE FROM bench_meta"))
            for key, value in meta.items():
                await connection.execute(
                    text("INSERT INTO bench_meta (key, value) VALUES (:k, :v)"),
                    {"k": key, "v": json.dumps(value)},
                )
    finally:
        await db.dispose()


async def read_meta(url: str) -> dict | None:
    """What generated this database (None when it was not generated, or not finished)."""
    from sqlalchemy import text

    db = Database(url)
    try:
        async with db.engine.connect() as connection:
            rows = (await connection.execute(text("SELECT key, value FROM bench_meta"))).all()
    except Exception:  # noqa: BLE001  (no such table, no such database)
        return None
    finally:
        await db.dispose()
    return {key: json.loads(value) for key, value in rows}


async def generate(
    url: str,
    scale_name: str,
    history_months: int,
    as_of: datetime,
    seed: int = 3012,
    progress: bool = True,
) -> dict:
    settings = Settings(_env_file=None, database_url=url)
    framework = load_framework(settings.framework_dir)
    policies = load_policies(settings)
    started = time.monotonic()
    await prepare_schema(url, framework)
    tree = build_tree(SCALES[scale_name], framework, scale_name)
    today = as_of.astimezone(policies.tz).date()
    blocks = plan_blocks(framework, tree, today, settings.plan_horizon_days, history_months)
    sink = sink_for(url)
    generator = Generator(sink, framework, policies, tree, as_of, seed)
    try:
        phases: dict[str, float] = {}
        mark = time.monotonic()

        def lap(name: str) -> None:
            nonlocal mark
            now = time.monotonic()
            phases[name] = round(now - mark, 1)
            mark = now

        lap("schema")
        await sink.begin()
        system_start = datetime.combine(
            months_before(today, history_months) - PLAN_LEAD, datetime.min.time(), tzinfo=UTC
        )
        await generator.write_people(system_start)
        total = sum(len(b.unit_ids) for b in blocks)
        with tqdm(
            total=total, desc="occurrences", unit="occ", unit_scale=True, disable=not progress
        ) as bar:
            for block in blocks:
                await generator.write_block(block)
                bar.update(len(block.unit_ids))
        lap("rows")
        await generator.write_outbox(months_before(today, history_months), progress)
        lap("outbox")
        await sink.finish(progress)
        lap("indexes")
        if isinstance(sink, PostgresSink):
            await sink.vacuum()
            lap("vacuum")
    finally:
        await sink.close()
    counts = generator.counts
    busy_at, busy_due = generator.busy_moment()
    meta = {
        "scale": scale_name,
        "history_months": history_months,
        "as_of": as_of.isoformat(),
        # The busy sweep's "now" and how many occurrences have a reminder due at it.
        "busy_at": busy_at.isoformat() if busy_at else None,
        "busy_due": busy_due,
        "schema": schema_fingerprint(),
        "seed": seed,
        "seconds": round(time.monotonic() - started, 1),
        "phases": phases,
        "counts": counts.__dict__,
    }
    await write_meta(url, meta)
    return meta


async def create_postgres_database(url: str, drop: bool = True) -> None:
    """Create the database named in `url` (dropping it first) through the `postgres` one."""
    import asyncpg

    base, name = url.replace("postgresql+asyncpg://", "postgresql://", 1).rsplit("/", 1)
    connection = await asyncpg.connect(f"{base}/postgres")
    try:
        if drop:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def drop_postgres_database(url: str) -> None:
    import asyncpg

    base, name = url.replace("postgresql+asyncpg://", "postgresql://", 1).rsplit("/", 1)
    connection = await asyncpg.connect(f"{base}/postgres")
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def remove_sqlite(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


async def fresh(url: str) -> None:
    """An empty database at `url` (a new SQLite file, or a recreated PostgreSQL database)."""
    if url.startswith("sqlite"):
        remove_sqlite(Path(url.split("///", 1)[1]))
    else:
        await create_postgres_database(url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.generate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--scale", choices=sorted(SCALES), default="province")
    parser.add_argument(
        "--url",
        required=True,
        help="SQLAlchemy URL (sqlite+aiosqlite:///… or postgresql+asyncpg://…)",
    )
    parser.add_argument("--history-months", type=int, default=24)
    parser.add_argument(
        "--as-of",
        help="local ISO time the data runs until (default: the fixed " + DEFAULT_AS_OF + ")",
    )
    parser.add_argument("--seed", type=int, default=3012)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    tz = Settings(_env_file=None).tz
    as_of = datetime.fromisoformat(args.as_of) if args.as_of else default_as_of(tz)
    if as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=tz)

    async def run() -> dict:
        await fresh(args.url)
        return await generate(
            args.url, args.scale, args.history_months, as_of, args.seed, not args.quiet
        )

    meta = asyncio.run(run())
    print(json.dumps({"generated": args.url.rsplit("/", 1)[-1], **meta}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
