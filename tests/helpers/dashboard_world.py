"""A world for the dashboard: the sample units (two districts, two communes each), six weeks
of planned history with done, excused and overdue items, the demo people, a village
head's photo with EXIF time and GPS, and a commune officer of another district."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from PIL import Image
from sqlmodel import col, select

from bot.app.demo import COMMUNE_OFFICER, DISTRICT_OFFICER, VILLAGE_HEAD, seed_demo
from bot.core.config import Settings
from bot.core.context import AppContext
from bot.core.db import Database
from bot.core.framework import Framework
from bot.core.models import Evidence, Occurrence, OccurrenceStatus, Report, Unit, User
from bot.core.services.evidence import store_photo
from bot.core.services.framework_sync import sync_task_definitions
from bot.core.services.occurrences import subtree_ids
from bot.core.services.people import add_user
from bot.core.units import read_units_csv, upsert_units
from scheduler.planner import plan
from tests.helpers.world import SAMPLE_UNITS_CSV, sample_subset

PHOTO_TAKEN = datetime(2026, 11, 20, 9, 15, 0)
PHOTO_GPS = (12.2388, 109.1967)  # Nha Trang


def jpeg_with_exif(colour: tuple[int, int, int] = (40, 120, 200)) -> bytes:
    image = Image.new("RGB", (640, 480), colour)
    exif = Image.Exif()
    exif[0x0132] = PHOTO_TAKEN.strftime("%Y:%m:%d %H:%M:%S")
    gps = exif.get_ifd(0x8825)

    def dms(value: float) -> tuple[float, float, float]:
        degrees = int(value)
        minutes = int((value - degrees) * 60)
        seconds = round(((value - degrees) * 60 - minutes) * 60, 2)
        return (float(degrees), float(minutes), seconds)

    gps[1], gps[2] = "N", dms(PHOTO_GPS[0])
    gps[3], gps[4] = "E", dms(PHOTO_GPS[1])
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    return buffer.getvalue()


@dataclass
class DashboardWorld:
    app: AppContext
    district: Unit
    commune: Unit
    village: Unit
    other_commune: Unit  # in the other district
    village_head: User
    commune_officer: User
    district_officer: User
    foreign_officer: User  # commune officer of other_commune
    done_occurrence: Occurrence
    overdue_occurrence: Occurrence
    foreign_occurrence: Occurrence
    evidence: Evidence
    foreign_evidence: Evidence


async def _user(session, who) -> User:  # noqa: ANN001
    return (await session.exec(select(User).where(User.name == who.name))).one()


async def build_dashboard_world(
    settings: Settings, db: Database, framework: Framework
) -> DashboardWorld:
    today = date.today()
    app = AppContext(settings=settings, db=db, framework=framework)
    async with db.session() as session:
        await upsert_units(session, sample_subset(read_units_csv(SAMPLE_UNITS_CSV)))
        await sync_task_definitions(session, framework)
        await plan(
            session, framework, settings, today - timedelta(days=40), today + timedelta(days=1)
        )
        await session.commit()
    await seed_demo(app)
    now = datetime.now(UTC)
    async with db.session() as session:
        head = await _user(session, VILLAGE_HEAD)
        officer = await _user(session, COMMUNE_OFFICER)
        district_officer = await _user(session, DISTRICT_OFFICER)
        village = await session.get(Unit, head.unit_id)
        commune = await session.get(Unit, officer.unit_id)
        district = await session.get(Unit, district_officer.unit_id)
        other_commune = (
            await session.exec(
                select(Unit)
                .where(Unit.level == "commune", Unit.parent_id != district.id)
                .order_by(col(Unit.code))
            )
        ).first()
        foreign = await add_user(session, other_commune, "commune_committee", "Võ Thị Em")
        past = (
            await session.exec(
                select(Occurrence)
                .where(col(Occurrence.due_at) < now)
                .order_by(col(Occurrence.due_at), col(Occurrence.id))
            )
        ).all()
        # In every unit, of what came due: the first done, the second excused, the rest overdue.
        seen: dict[int, int] = {}
        for occurrence in past:
            index = seen.get(occurrence.unit_id, 0)
            seen[occurrence.unit_id] = index + 1
            occurrence.status = (
                OccurrenceStatus.done
                if index == 0
                else OccurrenceStatus.excused
                if index == 1
                else OccurrenceStatus.overdue
            )
            if index == 0:
                occurrence.done_at, occurrence.done_by_user_id = now, None
            session.add(occurrence)
        mine = [o for o in past if o.unit_id == village.id]
        foreign_units = set(await subtree_ids(session, other_commune.id))
        theirs = [o for o in past if o.unit_id in foreign_units]
        done, overdue = mine[0], next(o for o in mine if o.status == OccurrenceStatus.overdue)
        foreign_done = theirs[0]
        evidence = await _photo(session, settings, done, head, (40, 120, 200))
        foreign_evidence = await _photo(session, settings, foreign_done, foreign, (200, 60, 40))
        await session.commit()
    return DashboardWorld(
        app, district, commune, village, other_commune, head, officer, district_officer,
        foreign, done, overdue, foreign_done, evidence, foreign_evidence,
    )  # fmt: skip


async def _photo(session, settings, occurrence, user, colour) -> Evidence:  # noqa: ANN001
    stored = store_photo(jpeg_with_exif(colour), settings.data_dir)
    report = Report(
        occurrence_id=occurrence.id,
        user_id=user.id,
        kind="done",
        status="submitted",
        note="Đã niêm yết tại nhà văn hóa thôn",
        submitted_at=datetime.now(UTC),
    )
    session.add(report)
    await session.flush()
    evidence = Evidence(
        report_id=report.id,
        sha256=stored.sha256,
        path=stored.path,
        size=stored.size,
        mime=stored.mime,
        width=stored.width,
        height=stored.height,
        taken_at=stored.taken_at,
        gps_lat=stored.gps_lat,
        gps_lon=stored.gps_lon,
    )
    session.add(evidence)
    await session.flush()
    return evidence
