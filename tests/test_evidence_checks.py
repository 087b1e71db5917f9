"""Evidence worth trusting: reused, old, future-dated, far-away and screenshot photos are flagged.

Photos are made by Pillow: a "photo" (shapes on a background, blurred like a camera's), the same
photo re-encoded, resized and slightly cropped, a different photo, EXIF with old and future
times and with GPS, a phone-screen-sized PNG. The journeys run through the real chat flow on
Telegram and Zalo OA (tests/helpers/drivers.py), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import io
import random
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFilter
from sqlmodel import select

from bot.core.config import Settings
from bot.core.db import Database
from bot.core.framework import Framework, FrameworkError
from bot.core.models import (
    Evidence,
    EvidenceFlag,
    ImageFingerprint,
    Occurrence,
    Report,
    User,
    utcnow,
)
from bot.core.services.evidence_checks import (
    CheckPolicy,
    flagged_report_counts,
    haversine_km,
    load_check_policy,
)
from bot.core.services.fingerprints import (
    Fingerprint,
    bands,
    distance,
    fingerprint,
    near_duplicates,
)
from tests.helpers.drivers import ChannelDriver, Sent, make_driver, small_world
from tests.test_journeys import OFFICER, VILLAGE_HEAD, arg, buttons, register, task_list

HOME = (12.2500, 109.1833)  # Nha Trang
FAR_AWAY = (12.6800, 109.1833)  # about 48 km north


def photo(seed: int, size: tuple[int, int] = (1600, 1200)) -> Image.Image:
    rnd = random.Random(seed)
    image = Image.new("RGB", size, tuple(rnd.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(40):
        x, y = rnd.randrange(size[0]), rnd.randrange(size[1])
        box = [x, y, x + rnd.randrange(50, 600), y + rnd.randrange(50, 400)]
        draw.rectangle(box, fill=tuple(rnd.randrange(256) for _ in range(3)))
    return image.filter(ImageFilter.GaussianBlur(2))


def encode(
    image: Image.Image,
    *,
    quality: int = 90,
    taken: datetime | None = None,
    gps: tuple[float, float] | None = None,
    camera: bool = True,
    fmt: str = "JPEG",
) -> bytes:
    exif = Image.Exif()
    if camera:
        exif[0x010F], exif[0x0110] = "samsung", "SM-A525F"
    if taken is not None:
        exif[0x0132] = taken.strftime("%Y:%m:%d %H:%M:%S")
    if gps is not None:
        lat, lon = gps
        exif[0x8825] = {1: "N", 2: (lat, 0.0, 0.0), 3: "E", 4: (lon, 0.0, 0.0)}
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.save(buffer, "JPEG", quality=quality, exif=exif)
    else:
        image.save(buffer, fmt)
    return buffer.getvalue()


def copies_of(image: Image.Image) -> list[bytes]:
    """What a reused photo looks like after a chat app has had it: re-encoded, resized, cropped."""
    width, height = image.size
    return [
        encode(image, quality=55),
        encode(image.resize((800, 600))),
        encode(image.crop((int(width * 0.03), int(height * 0.03), width, height))),
    ]


# --------------------------------------------------------------------------- the index


async def stored_evidence_ids(db: Database, settings, framework, how_many: int) -> list[int]:
    """Evidence rows (one report of one village) for fingerprints to belong to."""
    world = await small_world(settings, db, framework)
    async with db.session() as session:
        occurrence = (await session.exec(select(Occurrence).limit(1))).one()
        user = User(role=VILLAGE_HEAD, unit_id=occurrence.unit_id, name="Trưởng thôn")
        session.add(user)
        await session.flush()
        done = Report(occurrence_id=occurrence.id, user_id=user.id, kind="done", status="submitted")
        session.add(done)
        await session.flush()
        connection = await session.connection()
        await connection.execute(
            Evidence.__table__.insert(),
            [
                {
                    "report_id": done.id,
                    "sha256": f"{i:064x}",
                    "path": f"evidence/{i}",
                    "size": 1,
                    "mime": "image/jpeg",
                    "created_at": utcnow(),
                }
                for i in range(how_many)
            ],
        )
        rows = await session.exec(select(Evidence.id).order_by(Evidence.id))
        ids = list(rows.all())
        await session.commit()
    assert world.villages
    return ids


async def test_near_duplicates_are_found_by_index_probes_exactly_as_a_full_scan_would(
    db, settings, framework
):
    original = fingerprint(encode(photo(1)))
    rnd = random.Random(7)
    stored: dict[int, int] = {}
    ids = await stored_evidence_ids(db, settings, framework, 3000)
    async with db.session() as session:
        for n, evidence_id in enumerate(ids, start=1):
            if n % 300 == 0:  # some near the original, at every distance from 3 to 12
                value = original.phash
                for bit in rnd.sample(range(64), n // 300 + 2):
                    value ^= 1 << bit
            else:
                value = rnd.getrandbits(64)
            stored[evidence_id] = value
            b0, b1, b2, b3 = bands(value)
            signed = value - (1 << 64) if value >= 1 << 63 else value
            session.add(
                ImageFingerprint(
                    evidence_id=evidence_id, phash=signed, band0=b0, band1=b1, band2=b2, band3=b3
                )
            )
        await session.commit()
        for max_distance in (0, 4, 8, 11):
            found = await near_duplicates(session, original.phash, max_distance)
            expected = sorted(
                (evidence_id, distance(value, original.phash))
                for evidence_id, value in stored.items()
                if distance(value, original.phash) <= max_distance
            )
            assert sorted(found) == expected
        assert len(await near_duplicates(session, original.phash, 11)) == 9  # 3 … 11 bits


def test_copies_stay_within_the_threshold_and_other_photos_far_beyond_it():
    original = fingerprint(encode(photo(1))).phash
    threshold = CheckPolicy().reuse_max_distance
    assert all(distance(fingerprint(c).phash, original) <= threshold for c in copies_of(photo(1)))
    others = [fingerprint(encode(photo(seed))).phash for seed in range(2, 12)]
    assert min(distance(other, original) for other in others) > 2 * threshold


def test_the_checks_policy_is_data_and_a_typo_names_the_file(tmp_path: Path):
    settings = Settings(_env_file=None, data_dir=tmp_path)
    policy = load_check_policy(settings)
    assert policy.for_task("cong-khai-danh-sach-ho-ngheo") == (set(policy.checks), True)
    overrides = tmp_path / "overrides"
    overrides.mkdir()
    (overrides / "evidence_checks.yaml").write_text("checks: [reused, stael]\n")
    broken = Settings(_env_file=None, data_dir=tmp_path, framework_overrides=overrides)
    with pytest.raises(FrameworkError, match=r"evidence_checks.yaml.*stael"):
        load_check_policy(broken)


def test_haversine_gives_a_degree_of_latitude_as_111_km():
    assert round(haversine_km(12.0, 109.0, 13.0, 109.0), 1) == 111.2


def test_a_phone_screenshot_has_no_camera_and_a_phone_screen_shape():
    shot = fingerprint(encode(photo(3, (1080, 2340)), fmt="PNG", camera=False))
    assert (shot.width, shot.height, shot.camera) == (1080, 2340, False)
    assert isinstance(shot, Fingerprint) and fingerprint(encode(photo(3))).camera


# --------------------------------------------------------------------------- the journeys


@pytest.fixture(params=["telegram", "zalo_oa"])
async def driver(
    request: pytest.FixtureRequest, settings: Settings, db: Database, framework: Framework
) -> AsyncIterator[ChannelDriver]:
    async with make_driver(request.param, settings, db, framework) as channel_driver:
        yield channel_driver


async def report(d: ChannelDriver, occurrence_id: int, photos: list[bytes]) -> tuple[int, Sent]:
    """✅ on a task, the photos, a note; returns the report id and the review card (not sent)."""
    await d.tap("head", f"done:{occurrence_id}")
    report_id = arg(buttons(await d.messages("head"), "next:")[-1])
    for data in photos:
        await d.photo("head", data)
    await d.tap("head", f"next:{report_id}")
    await d.say("head", "Đã niêm yết tại nhà văn hóa")
    card = (await d.messages("head"))[-1]
    assert f"send:{report_id}" in card.buttons, card.text
    return report_id, card


async def flags_of(d: ChannelDriver, report_id: int) -> list[EvidenceFlag]:
    async with d.world.db.session() as session:
        rows = await session.exec(select(EvidenceFlag).where(EvidenceFlag.report_id == report_id))
        return list(rows.all())


async def open_cards(d: ChannelDriver) -> list[int]:
    cards = [arg(payload) for payload in buttons(await task_list(d, "head"), "done:")]
    assert len(cards) >= 2, "the world gives several tasks"
    return cards


async def test_a_reused_photo_is_shown_on_the_review_card_and_flagged_when_sent(
    driver: ChannelDriver,
) -> None:
    d = driver
    await register(d, "head", d.world.villages[0], VILLAGE_HEAD)
    first, second = (await open_cards(d))[:2]
    original = photo(1)
    first_report, card = await report(d, first, [encode(original)])
    assert f"more:{first_report}" not in card.buttons and "⚠️" not in card.text
    await d.tap("head", f"send:{first_report}")
    assert await flags_of(d, first_report) == []

    # The same photo again, as a chat app re-sends it, for another task.
    second_report, card = await report(d, second, [copies_of(original)[2]])
    assert "⚠️" in card.text and f"more:{second_report}" in card.buttons
    await d.tap("head", f"more:{second_report}")  # a way to add a newer photo
    await d.photo("head", encode(photo(2)))
    await d.tap("head", f"next:{second_report}")
    await d.say("head", "Ảnh mới")
    await d.tap("head", f"send:{second_report}")
    flags = await flags_of(d, second_report)
    assert [(f.kind, f.detail["occurrence_id"], f.detail["relation"]) for f in flags] == [
        ("reused", first, "other_task")
    ]
    assert flags[0].detail["distance"] <= CheckPolicy().reuse_max_distance


async def test_fresh_photos_raise_no_flag_and_old_or_future_ones_do(driver: ChannelDriver) -> None:
    d = driver
    await register(d, "head", d.world.villages[0], VILLAGE_HEAD)
    first, second = (await open_cards(d))[:2]
    now = datetime.now()
    fresh = encode(photo(5), taken=now - timedelta(hours=2), gps=HOME)
    fresh_report, card = await report(d, first, [fresh])
    assert "⚠️" not in card.text
    await d.tap("head", f"send:{fresh_report}")
    assert await flags_of(d, fresh_report) == []

    old = encode(photo(6), taken=datetime(2020, 1, 1, 9, 0))
    future = encode(photo(7), taken=now + timedelta(days=10))
    dated_report, card = await report(d, second, [old, future])
    assert card.text.count("⚠️") == 2
    await d.tap("head", f"send:{dated_report}")
    kinds = sorted(f.kind for f in await flags_of(d, dated_report))
    assert kinds == ["future", "stale"]


async def test_a_screenshot_and_a_far_away_photo_are_flagged(driver: ChannelDriver) -> None:
    d = driver
    await register(d, "head", d.world.villages[0], VILLAGE_HEAD)
    cards = await open_cards(d)
    now = datetime.now()
    # Three reports' worth of photos at home make the unit's history (one report, three photos
    # of another village's unit would not count: the history is this unit's own).
    history = [encode(photo(10 + i), taken=now - timedelta(hours=1), gps=HOME) for i in range(3)]
    home_report, _card = await report(d, cards[0], history)
    await d.tap("head", f"send:{home_report}")
    assert await flags_of(d, home_report) == []

    screenshot = encode(photo(20, (1080, 2340)), fmt="PNG", camera=False)
    away = encode(photo(21), taken=now - timedelta(hours=1), gps=FAR_AWAY)
    odd_report, card = await report(d, cards[1], [screenshot, away])
    await d.tap("head", f"send:{odd_report}")
    flags = {f.kind: f.detail for f in await flags_of(d, odd_report)}
    assert sorted(flags) == ["far", "screenshot"]
    assert 40 < flags["far"]["km"] < 55


async def test_the_share_of_flagged_reports_is_counted_per_unit(driver: ChannelDriver) -> None:
    d = driver
    village = d.world.villages[0]
    await register(d, "head", village, VILLAGE_HEAD)
    first, second = (await open_cards(d))[:2]
    original = photo(1)
    sent, _card = await report(d, first, [encode(original)])
    await d.tap("head", f"send:{sent}")
    again, _card = await report(d, second, [copies_of(original)[0]])
    await d.tap("head", f"send:{again}")
    async with d.world.db.session() as session:
        counts = await flagged_report_counts(
            session, [village.id, d.world.villages[1].id], utcnow() - timedelta(days=1)
        )
    assert counts == {village.id: (2, 1), d.world.villages[1].id: (0, 0)}


async def test_the_commune_sees_the_flag_when_reviewing_and_its_acceptance_is_recorded(
    driver: ChannelDriver,
) -> None:
    d = driver
    await register(d, "head", d.world.villages[0], VILLAGE_HEAD)
    officer = await register(d, "officer", d.world.commune, OFFICER)
    first, second = (await open_cards(d))[:2]
    original = photo(1)
    sent, _card = await report(d, first, [encode(original)])
    await d.tap("head", f"send:{sent}")
    reused, _card = await report(d, second, [copies_of(original)[1]])
    await d.tap("head", f"send:{reused}")

    await d.say("officer", "/tinhhinh")  # → the village → its report, as an officer would
    await d.tap("officer", f"vil:{d.world.villages[0].id}")
    await d.tap("officer", f"rv:{reused}")
    card = next(m for m in reversed(await d.messages("officer")) if f"rva:{reused}" in m.buttons)
    assert "⚠️" in card.text  # the reviewer is shown what the checks found
    await d.tap("officer", f"rva:{reused}")
    (flag,) = await flags_of(d, reused)
    assert flag.accepted_by_user_id == officer.id and flag.accepted_at is not None
