"""Drill: `papibot backup` and `papibot restore` round-trip a database with evidence files."""

import io
import sqlite3
import tarfile
import uuid
from pathlib import Path

import asyncpg
import pytest
from PIL import Image
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlmodel import func, select

from bot.app.backup import BackupError, backup, restore
from bot.core.config import Settings
from bot.core.db import Database
from bot.core.models import Evidence, Occurrence, Report, Unit
from bot.core.services.evidence import store_photo
from bot.core.services.framework_sync import sync_task_definitions
from tests.conftest import POSTGRES_URL
from tests.helpers.world import build_world


def jpeg(colour: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), colour).save(buffer, "JPEG")
    return buffer.getvalue()


async def seed_with_evidence(settings: Settings, db: Database, framework) -> list[str]:
    world = await build_world(settings, db, framework)
    user = await world.person("Trưởng thôn", world.villages[0], "village_head")
    photos = [store_photo(jpeg(colour), settings.data_dir) for colour in ("red", "blue")]
    async with db.session() as session:
        occurrence = (
            await session.exec(select(Occurrence).where(Occurrence.unit_id == world.villages[0].id))
        ).first()
        report = Report(
            occurrence_id=occurrence.id, user_id=user.id, kind="done", status="submitted"
        )
        session.add(report)
        await session.flush()
        for photo in photos:
            session.add(
                Evidence(report_id=report.id, sha256=photo.sha256, path=photo.path, size=photo.size)
            )
        await session.commit()
    return [photo.path for photo in photos]


async def counts(db: Database) -> tuple[int, int, int]:
    async with db.session() as session:
        units = (await session.exec(select(func.count()).select_from(Unit))).one()
        occurrences = (await session.exec(select(func.count()).select_from(Occurrence))).one()
        evidence = (await session.exec(select(func.count()).select_from(Evidence))).one()
    return units, occurrences, evidence


async def test_sqlite_backup_and_restore_round_trip(tmp_path, framework):
    settings = Settings(_env_file=None, data_dir=tmp_path / "data")
    db = Database(settings.effective_database_url)
    await db.upgrade()
    paths = await seed_with_evidence(settings, db, framework)
    before = await counts(db)
    archive = backup(settings, tmp_path / "backup.tar.gz")
    assert archive.files == 3  # the database and two photos
    await db.dispose()

    # Lose everything, then restore into a fresh data directory.
    fresh = Settings(_env_file=None, data_dir=tmp_path / "restored")
    restore(fresh, tmp_path / "backup.tar.gz")
    restored_db = Database(fresh.effective_database_url)
    assert await counts(restored_db) == before
    for path in paths:
        assert (fresh.data_dir / path).read_bytes() == (settings.data_dir / path).read_bytes()
    await restored_db.dispose()


def test_a_tampered_backup_is_refused_and_changes_nothing(tmp_path):
    settings = Settings(_env_file=None, data_dir=tmp_path / "data")
    (settings.data_dir).mkdir(parents=True)
    sqlite3.connect(settings.data_dir / "papibot.db").execute(
        "create table t (x)"
    ).connection.commit()
    (settings.evidence_dir / "ab").mkdir(parents=True)
    (settings.evidence_dir / "ab" / "abcd").write_bytes(b"photo")
    backup(settings, tmp_path / "good.tar.gz")

    # Rewrite the archive with one evidence file altered.
    with (
        tarfile.open(tmp_path / "good.tar.gz") as good,
        tarfile.open(tmp_path / "bad.tar.gz", "w:gz") as bad,
    ):
        for member in good.getmembers():
            data = good.extractfile(member).read()
            if member.name.startswith("evidence/"):
                data = b"forged"
                member.size = len(data)
            bad.addfile(member, io.BytesIO(data))
    target = Settings(_env_file=None, data_dir=tmp_path / "target")
    with pytest.raises(BackupError, match="checksum"):
        restore(target, tmp_path / "bad.tar.gz")
    assert not (target.data_dir / "papibot.db").exists()


@pytest.mark.skipif(not POSTGRES_URL, reason="PAPIBOT_TEST_DATABASE_URL is not set: no PostgreSQL")
async def test_postgres_backup_and_restore_round_trip(tmp_path, framework):
    name = f"papibot_backup_{uuid.uuid4().hex[:8]}"
    admin_url = (
        make_url(POSTGRES_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
        settings = Settings(_env_file=None, data_dir=tmp_path / "data", database_url=url)
        db = Database(url)
        await db.upgrade()
        async with db.session() as session:
            await sync_task_definitions(session, framework)
            await session.commit()
        paths = await seed_with_evidence(settings, db, framework)
        before = await counts(db)
        backup(settings, tmp_path / "pg.tar.gz")
        # Lose the data: empty every table, and the evidence folder.
        async with db.engine.begin() as connection:
            await connection.execute(text("TRUNCATE units, task_definitions CASCADE"))
        assert (await counts(db))[0] == 0
        for path in paths:
            (settings.data_dir / path).unlink()
        await db.dispose()

        restore(settings, tmp_path / "pg.tar.gz")
        db = Database(url)
        assert await counts(db) == before
        assert all((settings.data_dir / path).exists() for path in paths)
        await db.dispose()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def test_restore_of_a_missing_file_says_so(tmp_path):
    with pytest.raises(BackupError, match="no such backup"):
        restore(Settings(_env_file=None, data_dir=tmp_path), Path(tmp_path / "nope.tar.gz"))
