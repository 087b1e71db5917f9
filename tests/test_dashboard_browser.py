"""The dashboard in a real Chromium (Playwright driving Debian's /usr/bin/chromium), on a PC
screen and on a phone (390×844): a district officer asks for a link in the chat simulator,
opens it, reads the overview, drills down to a village, opens a photo, marks a commune
followed up and downloads the overdue list as XLSX. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import io
import re
import socket
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from openpyxl import load_workbook
from sqlmodel import select

from bot.app.runtime import build_runtime
from bot.app.server import build_app
from bot.core.config import Settings
from bot.core.db import Database
from bot.core.framework import Framework
from bot.core.models import AuditLog, Unit
from bot.core.services.people import add_user
from bot.core.services.web_login import create_login_link
from scheduler.digests import FOLLOWED_UP
from tests.helpers.dashboard_world import build_dashboard_world

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORTS = {"pc": {"width": 1366, "height": 900}, "phone": {"width": 390, "height": 844}}

playwright_api = pytest.importorskip(
    "playwright.async_api", reason="playwright is not installed (pip install playwright)"
)
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="no browser: /usr/bin/chromium is missing (apt-get install -y chromium)",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def link_from_chat(base: str, user_id: int) -> str:
    chat = f"web-{user_id}"
    async with aiohttp.ClientSession() as client:
        async with client.post(f"{base}/sim/api/send", json={"chat": chat, "text": "/web"}) as r:
            assert r.status == 200
        async with client.get(f"{base}/sim/api/messages", params={"chat": chat}) as r:
            messages = (await r.json())["messages"]
    found = re.search(r"https?://\S+/dashboard/login/[A-Za-z0-9_-]+", messages[-1]["text"])
    assert found, messages[-1]["text"]
    return found.group(0)


async def province_link(world) -> str:  # noqa: ANN001
    async with world.app.db.session() as session:
        province = (await session.exec(select(Unit).where(Unit.level == "province"))).one()
        governor = await add_user(session, province, "province_committee", "UBND tỉnh")
        url = await create_login_link(session, governor, world.app.settings)
        await session.commit()
    return url


@pytest.mark.parametrize("screen", list(VIEWPORTS))
async def test_district_officer_from_chat_to_photo_follow_up_and_xlsx_in_chromium(
    screen: str, settings: Settings, db: Database, framework: Framework, tmp_path: Path
) -> None:
    port = free_port()
    settings.http_port = port
    world = await build_dashboard_world(settings, db, framework)
    runner = web.AppRunner(build_app(build_runtime(world.app)))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    ARTIFACTS.mkdir(exist_ok=True)

    async def shot(page, name: str) -> None:  # noqa: ANN001
        await page.screenshot(
            path=str(ARTIFACTS / f"dashboard-{screen}-{name}.png"), full_page=True
        )

    try:
        link = await link_from_chat(f"http://127.0.0.1:{port}", world.district_officer.id)
        async with playwright_api.async_playwright() as p:
            browser = await p.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS
            )
            context = await browser.new_context(
                viewport=VIEWPORTS[screen], accept_downloads=True, locale="vi-VN"
            )
            context.set_default_timeout(10_000)
            page = await context.new_page()
            await page.goto(link)
            await shot(page, "1-login")
            await page.get_by_role("button", name="Mở trang theo dõi").click()
            await page.wait_for_url(re.compile(r"/dashboard/$"))
            await page.get_by_role("heading", name="Tổng quan").wait_for()
            assert await page.get_by_text(world.district.name).first.is_visible()
            await shot(page, "2-overview")

            # Drill down: the commune, then the village of the photo.
            await page.get_by_role("link", name=world.commune.name, exact=True).first.click()
            await page.wait_for_url(re.compile(rf"/dashboard/u/{world.commune.id}\b"))
            await page.get_by_role("link", name=world.village.name, exact=True).first.click()
            await page.wait_for_url(re.compile(rf"/dashboard/u/{world.village.id}\b"))
            crumbs = await page.locator("nav.crumbs").inner_text()
            assert world.district.name in crumbs and world.commune.name in crumbs
            await shot(page, "3-village")

            # Its photos, the occurrence with the EXIF time and place, the full photo.
            await page.locator("nav.tabs").get_by_role("link", name="Ảnh", exact=True).click()
            await page.locator("ul.gallery img").first.click()
            await page.wait_for_url(re.compile(rf"/dashboard/o/{world.done_occurrence.id}\b"))
            evidence = page.locator(f"#ev-{world.evidence.id}")
            assert "20/11/2026 09:15" in await evidence.inner_text()
            assert await evidence.get_by_role("link", name="bản đồ").count() == 1
            loaded = await page.locator(f"#ev-{world.evidence.id} img").evaluate(
                "img => img.complete && img.naturalWidth"
            )
            assert loaded > 0
            await shot(page, "4-occurrence")
            async with page.expect_popup() as popup_info:
                await evidence.locator("a").first.click()
            photo = await popup_info.value
            await photo.wait_for_load_state()
            assert f"/dashboard/photo/{world.evidence.id}" in photo.url
            size = await photo.evaluate(
                "() => document.images[0] && document.images[0].naturalWidth"
            )
            assert size == 640
            await photo.close()

            # Back to the district: overdue, "Đã đôn đốc" for the commune.
            await page.locator("nav.crumbs a", has_text=world.district.name).click()
            await page.locator("nav.tabs").get_by_role("link", name="Quá hạn", exact=True).click()
            section = page.locator("section.group", has_text=world.commune.name).first
            await section.get_by_role("button", name="Đã đôn đốc").click()
            await page.get_by_text(
                f"Đã ghi nhận: anh/chị đã đôn đốc {world.commune.name}"
            ).wait_for()
            await shot(page, "5-followed-up")

            # The overdue list as XLSX, opened.
            async with page.expect_download() as download_info:
                await page.get_by_role("link", name="Tải về Excel (XLSX)").click()
            download = await download_info.value
            target = tmp_path / download.suggested_filename
            await download.save_as(target)
            book = load_workbook(io.BytesIO(target.read_bytes()))
            rows = list(book.active.iter_rows(values_only=True))
            assert rows[0][0] == "Quá hạn" and rows[1][0] == world.district.name
            assert str(rows[-1][0]).startswith("Tổng cộng:")

            # The province's page of published PAPI scores, in a second browser.
            other = await browser.new_context(viewport=VIEWPORTS[screen])
            governor = await other.new_page()
            await governor.goto(await province_link(world))
            await governor.get_by_role("button", name="Mở trang theo dõi").click()
            await governor.locator("nav.tabs").get_by_role("link", name="Điểm PAPI").click()
            await governor.get_by_text("39,14").wait_for()
            await shot(governor, "6-papi-scores")
            await browser.close()
    finally:
        await runner.cleanup()
    async with db.session() as session:
        entries = (await session.exec(select(AuditLog).where(AuditLog.action == FOLLOWED_UP))).all()
    assert [(e.subject, e.actor_user_id) for e in entries] == [
        (f"unit:{world.commune.id}", world.district_officer.id)
    ]
