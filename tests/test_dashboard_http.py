"""The dashboard over real HTTP on a real database (SQLite, and PostgreSQL when configured):
signing in with the link from chat, sessions, CSRF, scope (404 outside it), pages, exports."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer
from openpyxl import load_workbook
from sqlmodel import col, func, select

from bot.app.runtime import build_runtime
from bot.app.server import build_app
from bot.core.config import Settings
from bot.core.db import Database
from bot.core.framework import Framework
from bot.core.models import (
    AuditLog,
    Occurrence,
    Reminder,
    Unit,
    User,
    WebLoginLink,
    WebSession,
    utcnow,
)
from bot.core.services.occurrences import subtree_ids
from bot.core.services.people import add_user
from bot.core.services.web_login import create_login_link
from scheduler.digests import FOLLOWED_UP
from tests.helpers.dashboard_world import DashboardWorld, build_dashboard_world

LINK = re.compile(r"https?://\S+/dashboard/login/([A-Za-z0-9_-]+)")


@dataclass
class Dash:
    world: DashboardWorld
    client: TestClient

    @property
    def db(self) -> Database:
        return self.world.app.db

    async def link_for(self, user: User) -> str:
        async with self.db.session() as session:
            url = await create_login_link(session, user, self.world.app.settings)
            await session.commit()
        return url.rsplit("/", 1)[1]

    async def redeem(self, token: str) -> tuple[int, str]:
        response = await self.client.post(
            "/dashboard/login", data={"token": token}, allow_redirects=False
        )
        return response.status, response.headers.get("Set-Cookie", "")

    async def sign_in(self, user: User) -> dict[str, str]:
        status, cookie = await self.redeem(await self.link_for(user))
        assert status == 303, cookie
        value = cookie.split(";", 1)[0]
        return {"Cookie": value}

    async def get(self, path: str, headers: dict[str, str] | None = None, status: int = 200):
        response = await self.client.get(path, headers=headers or {}, allow_redirects=False)
        assert response.status == status, (path, response.status, (await response.text())[:300])
        return response

    async def csrf(self, headers: dict[str, str]) -> str:
        page = await (await self.get("/dashboard/sessions", headers)).text()
        return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


@pytest.fixture
async def dash(settings: Settings, db: Database, framework: Framework) -> AsyncIterator[Dash]:
    world = await build_dashboard_world(settings, db, framework)
    client = TestClient(TestServer(build_app(build_runtime(world.app)), host="127.0.0.1"))
    await client.start_server()
    try:
        yield Dash(world, client)
    finally:
        await client.close()


def unit_routes(unit_id: int) -> list[str]:
    base = f"/dashboard/u/{unit_id}"
    pages = [base, f"{base}/tasks", f"{base}/overdue", f"{base}/photos", f"{base}/people"]
    files = [
        f"{base}/{what}.{fmt}" for what in ("tasks", "overdue", "people") for fmt in ("xlsx", "csv")
    ]
    return pages + files


def item_routes(occurrence_id: int, evidence_id: int) -> list[str]:
    return [
        f"/dashboard/o/{occurrence_id}",
        f"/dashboard/photo/{evidence_id}",
        f"/dashboard/photo/{evidence_id}/thumb",
    ]


def is_file(path: str) -> bool:
    return "/photo/" in path or path.endswith((".xlsx", ".csv"))


async def audits(db: Database, action: str) -> list[AuditLog]:
    async with db.session() as session:
        rows = await session.exec(select(AuditLog).where(AuditLog.action == action))
        return list(rows.all())


# --- signing in ----------------------------------------------------------------------------


async def test_district_officer_types_web_in_chat_and_signs_in_with_the_link(dash: Dash) -> None:
    officer = dash.world.district_officer
    chat = f"web-{officer.id}"
    answer = await dash.client.post("/sim/api/send", json={"chat": chat, "text": "/web"})
    assert answer.status == 200
    messages = (await (await dash.client.get("/sim/api/messages", params={"chat": chat})).json())[
        "messages"
    ]
    assert messages[-1]["text"].startswith("Đường dẫn vào trang theo dõi của anh/chị: http")
    token = LINK.search(messages[-1]["text"]).group(1)
    # Opening the link (or a chat app drawing its preview) does not use it up.
    confirm = await dash.get(f"/dashboard/login/{token}")
    assert token in await confirm.text()
    assert confirm.headers["Referrer-Policy"] == "no-referrer"
    status, cookie = await dash.redeem(token)
    assert status == 303
    flags = cookie.lower()
    assert "httponly" in flags and "samesite=lax" in flags and "path=/dashboard" in flags
    assert "secure" not in flags  # the public URL is not https here
    headers = {"Cookie": cookie.split(";", 1)[0]}
    page = await (await dash.get("/dashboard/", headers)).text()
    assert dash.world.district.name in page and dash.world.commune.name in page
    async with dash.db.session() as session:
        link = (await session.exec(select(WebLoginLink))).one()
        web_session = (await session.exec(select(WebSession))).one()
    assert link.user_id == officer.id and link.used_at is not None
    assert link.token_hash != token and token not in cookie  # only hashes are stored
    assert web_session.user_id == officer.id and web_session.token_hash not in cookie
    assert [a.actor_user_id for a in await audits(dash.db, "web.link_created")] == [officer.id]
    assert [a.actor_user_id for a in await audits(dash.db, "web.login")] == [officer.id]


async def test_a_link_lasts_ten_minutes(dash: Dash) -> None:
    before = utcnow()
    await dash.link_for(dash.world.commune_officer)
    async with dash.db.session() as session:
        link = (await session.exec(select(WebLoginLink))).one()
    lifetime = link.expires_at - before
    assert timedelta(minutes=9, seconds=50) < lifetime <= timedelta(minutes=10, seconds=5)


async def test_a_used_expired_or_unknown_link_is_refused_and_no_session_is_made(
    dash: Dash,
) -> None:
    token = await dash.link_for(dash.world.commune_officer)
    assert (await dash.redeem(token))[0] == 303
    status, cookie = await dash.redeem(token)  # the second time
    assert status == 403 and not cookie
    late = await dash.link_for(dash.world.commune_officer)
    async with dash.db.session() as session:
        for link in (await session.exec(select(WebLoginLink))).all():
            if link.used_at is None:
                link.expires_at = utcnow() - timedelta(seconds=1)
                session.add(link)
        await session.commit()
    assert (await dash.redeem(late))[0] == 403
    assert (await dash.redeem("not-a-token-anyone-was-sent"))[0] == 403
    assert (await dash.redeem(""))[0] == 403
    async with dash.db.session() as session:
        assert (await session.exec(select(func.count()).select_from(WebSession))).one() == 1
    reasons = sorted(a.detail["reason"] for a in await audits(dash.db, "web.login_refused"))
    assert reasons == ["expired", "unknown", "unknown", "used"]


async def test_a_forged_cookie_or_none_gets_the_login_page_or_401(dash: Dash) -> None:
    w = dash.world
    routes = unit_routes(w.district.id) + item_routes(w.done_occurrence.id, w.evidence.id)
    routes += ["/dashboard/", "/dashboard/sessions"]
    for headers in ({}, {"Cookie": "papibot_dashboard=forged"}):
        for path in routes:
            response = await dash.get(path, headers, status=401 if is_file(path) else 303)
            if not is_file(path):
                assert response.headers["Location"] == "/dashboard/login"
        for path in (f"/dashboard/u/{w.district.id}/followup", "/dashboard/logout"):
            response = await dash.client.post(path, headers=headers, allow_redirects=False)
            assert response.status == 401
    page = await (await dash.get("/dashboard/login")).text()
    assert "/web" in page


async def test_sessions_end_on_logout_when_idle_at_their_age_limit_and_from_the_list(
    dash: Dash,
) -> None:
    officer = dash.world.district_officer
    first, second = await dash.sign_in(officer), await dash.sign_in(officer)
    page = await (await dash.get("/dashboard/sessions", first)).text()
    ids = re.findall(r"/dashboard/sessions/(\d+)/end", page)
    assert len(ids) == 2
    csrf = await dash.csrf(first)
    async with dash.db.session() as session:
        second_id = max(s.id for s in (await session.exec(select(WebSession))).all())
    response = await dash.client.post(
        f"/dashboard/sessions/{second_id}/end", data={"csrf": csrf}, headers=first,
        allow_redirects=False,
    )  # fmt: skip
    assert response.status == 303
    await dash.get("/dashboard/", second, status=303)  # ended from the other browser
    await dash.get("/dashboard/", first)
    # Idle for longer than allowed, then past the absolute limit.
    third = await dash.sign_in(officer)
    async with dash.db.session() as session:
        for row in (await session.exec(select(WebSession))).all():
            row.last_seen_at = utcnow() - timedelta(hours=3)
            session.add(row)
        await session.commit()
    await dash.get("/dashboard/", third, status=303)
    fourth = await dash.sign_in(officer)
    async with dash.db.session() as session:
        row = (await session.exec(select(WebSession).order_by(col(WebSession.id).desc()))).first()
        row.expires_at = utcnow() - timedelta(seconds=1)
        session.add(row)
        await session.commit()
    await dash.get("/dashboard/", fourth, status=303)
    fifth = await dash.sign_in(officer)
    csrf = await dash.csrf(fifth)
    response = await dash.client.post(
        "/dashboard/logout", data={"csrf": csrf}, headers=fifth, allow_redirects=False
    )
    assert response.status == 303 and "papibot_dashboard=" in response.headers["Set-Cookie"]
    await dash.get("/dashboard/", fifth, status=303)
    assert len(await audits(dash.db, "web.logout")) == 1
    assert len(await audits(dash.db, "web.session_ended")) == 1


# --- CSRF ----------------------------------------------------------------------------------


async def test_every_post_without_the_csrf_token_is_refused_and_changes_nothing(
    dash: Dash,
) -> None:
    w = dash.world
    headers = await dash.sign_in(w.district_officer)
    async with dash.db.session() as session:
        session_id = (await session.exec(select(WebSession.id))).one()
    posts = [
        (f"/dashboard/u/{w.district.id}/followup", {"commune": str(w.commune.id)}),
        (f"/dashboard/sessions/{session_id}/end", {}),
        ("/dashboard/logout", {}),
    ]
    for path, form in posts:
        for csrf in (None, "wrong"):
            data = dict(form, **({"csrf": csrf} if csrf else {}))
            response = await dash.client.post(
                path, data=data, headers=headers, allow_redirects=False
            )
            assert response.status == 403, path
    assert await audits(dash.db, FOLLOWED_UP) == []
    await dash.get("/dashboard/", headers)  # still signed in
    assert len(await audits(dash.db, "web.csrf_refused")) == 6


# --- scope ---------------------------------------------------------------------------------


async def test_an_officer_of_another_commune_gets_404_on_every_route(dash: Dash) -> None:
    w = dash.world
    headers = await dash.sign_in(w.foreign_officer)
    outside = unit_routes(w.district.id) + unit_routes(w.commune.id) + unit_routes(w.village.id)
    outside += item_routes(w.done_occurrence.id, w.evidence.id)
    outside += item_routes(w.overdue_occurrence.id, w.evidence.id)
    outside += ["/dashboard/analysis"]
    for path in outside:
        await dash.get(path, headers, status=404)
    own = unit_routes(w.other_commune.id) + item_routes(
        w.foreign_occurrence.id, w.foreign_evidence.id
    )
    for path in own:
        await dash.get(path, headers)
    csrf = await dash.csrf(headers)
    response = await dash.client.post(
        f"/dashboard/u/{w.district.id}/followup", data={"csrf": csrf, "commune": str(w.commune.id)},
        headers=headers, allow_redirects=False,
    )  # fmt: skip
    assert response.status == 404
    # A commune cannot mark itself followed up (the chat's rule).
    response = await dash.client.post(
        f"/dashboard/u/{w.other_commune.id}/followup",
        data={"csrf": csrf, "commune": str(w.other_commune.id)},
        headers=headers, allow_redirects=False,
    )  # fmt: skip
    assert response.status == 404
    assert await audits(dash.db, FOLLOWED_UP) == []
    response = await dash.client.post(
        f"/dashboard/u/{w.commune.id}/invite", data={"csrf": csrf, "village": str(w.village.id)},
        headers=headers, allow_redirects=False,
    )  # fmt: skip
    assert response.status == 404
    # The route list above is every dashboard route there is.
    tested = {re.sub(r"\d+", "{}", path) for path in outside + own}
    tested |= {"/dashboard/u/{}/followup", "/dashboard/u/{}/invite"}
    for resource in dash.client.server.app.router.resources():
        canonical = resource.canonical
        if canonical in ("/dashboard", "/dashboard/"):
            continue  # the overview of the person's own top unit
        if not canonical.startswith("/dashboard/") or canonical.startswith(
            ("/dashboard/login", "/dashboard/static", "/dashboard/sessions", "/dashboard/logout")
        ):
            continue
        shape = re.sub(r"\{[^}]+\}", "{}", canonical)
        if "{what" in canonical:
            continue  # the exports: tasks|overdue|people × xlsx|csv, listed above
        assert shape in tested, canonical


async def test_the_district_officer_cannot_open_another_districts_items(dash: Dash) -> None:
    w = dash.world
    headers = await dash.sign_in(w.district_officer)
    for path in unit_routes(w.other_commune.id) + item_routes(
        w.foreign_occurrence.id, w.foreign_evidence.id
    ):
        await dash.get(path, headers, status=404)
    for path in ("/dashboard/u/999999", "/dashboard/o/999999", "/dashboard/photo/999999"):
        await dash.get(path, headers, status=404)
    for path in unit_routes(w.village.id) + item_routes(w.done_occurrence.id, w.evidence.id):
        await dash.get(path, headers)


async def test_a_village_head_sees_their_own_village_only(dash: Dash) -> None:
    w = dash.world
    headers = await dash.sign_in(w.village_head)
    for path in unit_routes(w.village.id) + item_routes(w.done_occurrence.id, w.evidence.id):
        await dash.get(path, headers)
    for path in unit_routes(w.commune.id):
        await dash.get(path, headers, status=404)


async def test_so_noi_vu_sees_everything_and_another_agency_only_what_it_supervises(
    dash: Dash,
) -> None:
    w = dash.world
    async with dash.db.session() as session:
        noi_vu = (await session.exec(select(Unit).where(Unit.code == "so-noi-vu"))).one()
        tttt = (
            await session.exec(select(Unit).where(Unit.code == "so-thong-tin-va-truyen-thong"))
        ).one()
        reader = await add_user(session, noi_vu, "province_agency:so-noi-vu", "Sở Nội vụ")
        agency = await add_user(session, tttt, "province_agency:so-thong-tin-va-truyen-thong", "TT")
        await session.commit()
    headers = await dash.sign_in(reader)
    for path in item_routes(w.done_occurrence.id, w.evidence.id) + item_routes(
        w.foreign_occurrence.id, w.foreign_evidence.id
    ):
        await dash.get(path, headers)
    headers = await dash.sign_in(agency)
    supervised = {
        t.key
        for t in w.app.framework.tasks.values()
        if t.supervisor == "Sở Thông tin và Truyền thông"
    }
    async with dash.db.session() as session:
        rows = (await session.exec(select(Occurrence).limit(400))).all()
    theirs = [o for o in rows if o.task_key in supervised][:3]
    others = [o for o in rows if o.task_key not in supervised][:3]
    assert others
    for occurrence in others:
        await dash.get(f"/dashboard/o/{occurrence.id}", headers, status=404)
    for occurrence in theirs:
        await dash.get(f"/dashboard/o/{occurrence.id}", headers)


# --- pages ---------------------------------------------------------------------------------


async def test_the_overview_counts_done_excused_and_overdue_per_commune(dash: Dash) -> None:
    w = dash.world
    headers = await dash.sign_in(w.district_officer)
    page = await (await dash.get(f"/dashboard/u/{w.district.id}?p=year", headers)).text()
    assert "Tổng quan" in page  # Vietnamese first
    assert page.index(w.commune.name) > 0
    async with dash.db.session() as session:
        ids = await subtree_ids(session, w.commune.id)
        rows = await session.exec(
            select(Occurrence.status, func.count())
            .where(col(Occurrence.unit_id).in_(ids))
            .group_by(Occurrence.status)
        )
        counts = dict(rows.all())
    link = f'href="/dashboard/u/{w.commune.id}/tasks?p='
    row = page[page.index(f'href="/dashboard/u/{w.commune.id}?p=') :]
    row = row[: row.index("</tr>")]
    total_cell = row[row.rindex(link) :]
    numbers = [int(n) for n in re.findall(r'<span class="n [a-z]+">(\d+)</span>', total_cell)]
    # The year holds the whole three months of history planned for the world (or the part of
    # it in this year): the row's total is at most the commune's counts, and the photo's
    # village has one done and one excused.
    assert numbers[0] <= counts.get("done", 0) and numbers[1] <= counts.get("excused", 0)
    assert numbers[2] <= counts.get("overdue", 0)
    assert sum(numbers) > 0
    by_name = await (await dash.get(f"/dashboard/u/{w.district.id}?sort=name", headers)).text()
    names = [w.commune.name, w.district.name]
    assert all(name in by_name for name in names)


async def test_the_occurrence_page_shows_the_photo_its_exif_time_and_place(dash: Dash) -> None:
    w = dash.world
    headers = await dash.sign_in(w.district_officer)
    page = await (await dash.get(f"/dashboard/o/{w.done_occurrence.id}", headers)).text()
    assert f"/dashboard/photo/{w.evidence.id}/thumb" in page
    assert "20/11/2026 09:15" in page
    assert "openstreetmap.org/?mlat=12.238" in page
    assert w.village_head.name in page and "nhà văn hóa" in page
    photo = await dash.get(f"/dashboard/photo/{w.evidence.id}", headers)
    assert photo.headers["Content-Type"] == "image/jpeg"
    assert (await photo.read()).startswith(b"\xff\xd8")
    thumb = await dash.get(f"/dashboard/photo/{w.evidence.id}/thumb", headers)
    assert len(await thumb.read()) < w.evidence.size
    gallery = await (await dash.get(f"/dashboard/u/{w.district.id}/photos", headers)).text()
    assert f"/dashboard/photo/{w.evidence.id}/thumb" in gallery
    assert f"/dashboard/photo/{w.foreign_evidence.id}/thumb" not in gallery


async def test_followed_up_from_the_overdue_page_is_the_record_the_chat_writes(dash: Dash) -> None:
    w = dash.world
    headers = await dash.sign_in(w.district_officer)
    page = await (await dash.get(f"/dashboard/u/{w.district.id}/overdue", headers)).text()
    assert f'name="commune" value="{w.commune.id}"' in page
    csrf = await dash.csrf(headers)
    response = await dash.client.post(
        f"/dashboard/u/{w.district.id}/followup",
        data={"csrf": csrf, "commune": str(w.commune.id)},
        headers=headers, allow_redirects=False,
    )  # fmt: skip
    assert response.status == 303
    (entry,) = await audits(dash.db, FOLLOWED_UP)
    assert (entry.subject, entry.actor_user_id) == (f"unit:{w.commune.id}", w.district_officer.id)
    assert entry.detail == {"commune": w.commune.name, "via": "web"}
    page = await (await dash.get(response.headers["Location"], headers)).text()
    assert f"Đã ghi nhận: anh/chị đã đôn đốc {w.commune.name}" in page


async def test_exports_open_in_excel_with_a_title_block_dates_and_totals(dash: Dash) -> None:
    w = dash.world
    headers = await dash.sign_in(w.district_officer)
    response = await dash.get(f"/dashboard/u/{w.district.id}/overdue.xlsx", headers)
    assert "attachment" in response.headers["Content-Disposition"]
    book = load_workbook(io.BytesIO(await response.read()))
    sheet = book.active
    rows = list(sheet.iter_rows(values_only=True))
    assert w.district.name in rows[1]
    header_at = next(i for i, row in enumerate(rows) if row and row[0] == "Đơn vị")
    body = rows[header_at + 1 : -1]
    async with dash.db.session() as session:
        ids = await subtree_ids(session, w.district.id)
        late = (
            await session.exec(
                select(func.count())
                .select_from(Occurrence)
                .where(
                    col(Occurrence.unit_id).in_(ids),
                    col(Occurrence.status).in_(["overdue", "escalated"]),
                )
            )
        ).one()
    assert len(body) == late > 0
    assert str(late) in str(rows[-1][0])
    due = sheet.cell(row=header_at + 2, column=5)
    assert due.number_format == "dd/mm/yyyy" and due.value is not None
    text = (
        await (await dash.get(f"/dashboard/u/{w.district.id}/tasks.csv", headers)).read()
    ).decode("utf-8")
    assert text.startswith("\ufeff")
    lines = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert lines[0][0] == "Đơn vị" and re.match(r"\d\d/\d\d/\d{4}", lines[1][4])
    assert len(await audits(dash.db, "web.export")) == 2


async def test_a_commune_officer_creates_a_village_heads_code_on_the_people_page(
    dash: Dash,
) -> None:
    from bot.core.models import Invite

    w = dash.world
    headers = await dash.sign_in(w.commune_officer)
    page = await (await dash.get(f"/dashboard/u/{w.commune.id}/people", headers)).text()
    assert f'<option value="{w.village.id}">' in page
    async with dash.db.session() as session:
        before = len((await session.exec(select(Invite))).all())
    path = f"/dashboard/u/{w.commune.id}/invite"
    refused = await dash.client.post(
        path, data={"village": str(w.village.id)}, headers=headers, allow_redirects=False
    )
    assert refused.status == 403
    csrf = await dash.csrf(headers)
    response = await dash.client.post(
        path, data={"csrf": csrf, "village": str(w.village.id)}, headers=headers,
        allow_redirects=False,
    )  # fmt: skip
    assert response.status == 303
    async with dash.db.session() as session:
        invites = (await session.exec(select(Invite).order_by(col(Invite.id)))).all()
    assert len(invites) == before + 1
    created = invites[-1]
    assert (created.unit_id, created.role, created.created_by_user_id) == (
        w.village.id,
        "village_head",
        w.commune_officer.id,
    )
    shown = await (await dash.get(response.headers["Location"], headers)).text()
    assert created.code in shown and "Mã đăng ký cho trưởng thôn" in shown
    # Another commune's village, or the district officer: 404, no code.
    district = await dash.sign_in(w.district_officer)
    csrf = await dash.csrf(district)
    response = await dash.client.post(
        f"/dashboard/u/{w.commune.id}/invite", data={"csrf": csrf, "village": str(w.village.id)},
        headers=district, allow_redirects=False,
    )  # fmt: skip
    assert response.status == 404
    async with dash.db.session() as session:
        assert len((await session.exec(select(Invite))).all()) == before + 1


async def test_the_province_sees_work_per_dimension_beside_the_published_papi_scores(
    dash: Dash,
) -> None:
    w = dash.world
    async with dash.db.session() as session:
        province = (await session.exec(select(Unit).where(Unit.level == "province"))).one()
        governor = await add_user(session, province, "province_committee", "UBND tỉnh")
        await session.commit()
    headers = await dash.sign_in(governor)
    page = await (await dash.get("/dashboard/analysis", headers)).text()
    assert "Phân tích toàn tỉnh" in page and "PAPI 2020" in page and "PAPI 2023" in page
    assert "3,99" in page and "39,14" in page and "5,8761" in page and "8/61" in page
    assert "bqlctgt.khanhhoa.gov.vn" in page  # every year cites its source
    for name in w.app.framework.dimensions.values():
        assert name.name in page
    # Below the province there is no province page.
    district = await dash.sign_in(w.district_officer)
    await dash.get("/dashboard/analysis", district, status=404)


async def test_the_occurrence_history_says_which_reminders_went_out_and_which_did_not(
    dash: Dash,
) -> None:
    w = dash.world
    outcomes = {
        "before-7@20261125": "folded",
        "before-1@20261125": "spaced",
        "due@20261125": "sent",
        "overdue-2@20261125": "queued",
        "overdue-1@20261202": "unreachable",  # an extension's new ladder
    }
    async with dash.db.session() as session:
        for stage, outcome in outcomes.items():
            session.add(
                Reminder(
                    occurrence_id=w.done_occurrence.id,
                    stage=stage,
                    user_ids=[w.village_head.id],
                    outcome=outcome,
                )
            )
        await session.commit()
    headers = await dash.sign_in(w.district_officer)
    page = await (await dash.get(f"/dashboard/o/{w.done_occurrence.id}", headers)).text()
    # A stage folded while the scheduler was down was never sent: the page must not say it was.
    assert (
        "Nhắc việc 7 ngày trước hạn (hạn 25/11/2026): "
        "không gửi: đã quá giờ nhắc; lần nhắc sau có nhắc luôn việc này"
    ) in page
    assert "gửi chung" not in page
    assert (
        "Nhắc việc 1 ngày trước hạn (hạn 25/11/2026): không gửi: vài ngày trước vừa có tin nhắc việc"
    ) in page
    assert "Nhắc việc đúng ngày đến hạn (hạn 25/11/2026): đã gửi" in page
    assert "Nhắc việc quá hạn 2 ngày (hạn 25/11/2026): đang chờ gửi" in page
    assert "Nhắc việc quá hạn 1 ngày (hạn 02/12/2026): không liên lạc được ai" in page
    assert "before-" not in page and "@2026" not in page  # no stored keys on screen


def test_a_stage_key_in_words_keeps_an_unknown_name_as_it_is() -> None:
    from bot.core.i18n import translator
    from bot.web.dashboard.occurrence import stage_in_words

    _ = translator("vi")
    assert stage_in_words(_, "before-7@20261125") == "7 ngày trước hạn (hạn 25/11/2026)"
    assert stage_in_words(_, "overdue-3") == "quá hạn 3 ngày"
    assert stage_in_words(_, "custom@2026xx01") == "custom"
    assert stage_in_words(_, "due@20261399") == "đúng ngày đến hạn"  # no 13th month: no date


async def test_the_province_overview_lists_its_agencies_apart_after_the_districts(
    dash: Dash,
) -> None:
    async with dash.db.session() as session:
        province = (await session.exec(select(Unit).where(Unit.level == "province"))).one()
        governor = await add_user(session, province, "province_committee", "UBND tỉnh")
        children = (await session.exec(select(Unit).where(Unit.parent_id == province.id))).all()
        await session.commit()
    districts = [u.name for u in children if u.level == "district"]
    agencies = [u.name for u in children if u.level == "agency"]
    assert districts and agencies
    headers = await dash.sign_in(governor)
    for sort in ("worst", "name"):
        page = await (await dash.get(f"/dashboard/?sort={sort}", headers)).text()
        body = page[page.index("<tbody>") : page.index("</tbody>")]
        heading = body.index("Sở, ban, ngành và đơn vị cấp tỉnh")
        assert body.count("Sở, ban, ngành và đơn vị cấp tỉnh") == 1
        assert all(0 <= body.index(f">{name}<") < heading for name in districts)
        assert all(body.index(f">{name}<") > heading for name in agencies)


async def test_a_district_overview_has_no_agency_heading(dash: Dash) -> None:
    headers = await dash.sign_in(dash.world.district_officer)
    page = await (await dash.get("/dashboard/", headers)).text()
    assert "Sở, ban, ngành và đơn vị cấp tỉnh" not in page
