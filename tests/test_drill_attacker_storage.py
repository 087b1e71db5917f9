"""Attacker drill, storage side: what reaches the disk and what comes back from it.

- uploads: a per-person quota, photos kept only once they belong to a submitted report, images
  decoded (JPEG, PNG, WebP, HEIC) with a pixel limit, everything else refused in Vietnamese;
- backup and restore: an authenticated manifest, paths confined to their folder, a restore that
  swaps in only what it verified, archives readable by their owner only;
- the Zalo OA token pair sealed in the database (a stolen database or backup holds ciphertext).
"""

from __future__ import annotations

import re
import tomllib
import uuid
from importlib import metadata
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.channels.zalo_oa import ZaloOAChannel
from bot.channels.zalo_tokens import ZaloTokenStore
from bot.context import AppContext
from bot.messages import Outgoing
from bot.models import PlatformToken, Unit, utcnow
from bot.sealed import is_sealed
from bot.services.people import add_user, link_identity
from tests.helpers.fake_zalo import ZaloStack, start_stack

pytestmark = pytest.mark.drill

OA_USER = "2468458835296117922"

# --------------------------------------------------------------------------- platform tokens


@pytest.fixture
async def oa_stack(settings, db, framework):  # noqa: ANN001
    stack = await start_stack(
        AppContext(settings=settings, db=db, framework=framework), ZaloOAChannel
    )
    async with db.session() as session:
        unit = Unit(code=f"V{uuid.uuid4().hex[:6]}", name="Thôn Đông", level="village")
        session.add(unit)
        await session.flush()
        user = await add_user(session, unit, "village_head", "Trưởng thôn")
        await link_identity(session, user, "zalo_oa", OA_USER)
        await session.commit()
    yield stack
    await stack.close()


async def stored_tokens(db) -> tuple[str, str]:  # noqa: ANN001
    """The two token columns exactly as the database holds them (what a stolen copy shows)."""
    async with db.engine.connect() as connection:
        row = (
            await connection.execute(
                text("SELECT access_token, refresh_token FROM platform_tokens")
            )
        ).one()
    return row[0], row[1]


async def test_a_stolen_database_holds_no_usable_zalo_oa_token(oa_stack: ZaloStack, db):  # noqa: ANN001
    stack = oa_stack
    assert await stack.channel.send(OA_USER, Outgoing(text="trước"), "t0")
    access, refresh = await stored_tokens(db)
    assert is_sealed(access) and is_sealed(refresh)
    assert "oa-access-1" not in access and "oa-refresh-1" not in refresh

    # A rotation stores the new pair sealed too, and it is the one used afterwards.
    stack.fake.expire_access_token()
    assert await stack.channel.send(OA_USER, Outgoing(text="sau"), "t1")
    assert stack.fake.oauth_calls == 1
    access, refresh = await stored_tokens(db)
    assert "oa-access-2" not in access and "oa-refresh-2" not in refresh
    assert stack.fake.calls_to("oa")[-1].headers["access_token"] == "oa-access-2"

    # Another key (a thief's guess) cannot open them: the send fails for good, nothing leaks.
    other = stack.app.settings.model_copy(update={"secret_key": "a-guess-" + "x" * 30})
    thief = ZaloTokenStore(db, other, stack.channel.http)
    with pytest.raises(Exception, match="PAPIBOT_SECRET_KEY") as failed:
        await thief.current()
    assert "oa-access" not in str(failed.value)


async def test_a_token_pair_stored_in_plain_text_is_read_once_and_sealed(
    oa_stack: ZaloStack,
    db,  # noqa: ANN001
):
    stack = oa_stack
    async with db.session() as session:  # as main stored it before sealing
        session.add(
            PlatformToken(
                name="zalo_oa",
                access_token="oa-access-1",
                refresh_token="oa-refresh-1",
                expires_at=utcnow().replace(year=utcnow().year + 1),
            )
        )
        await session.commit()
    assert await stack.channel.send(OA_USER, Outgoing(text="một"), "t0")
    assert stack.fake.calls_to("oa")[-1].headers["access_token"] == "oa-access-1"
    access, refresh = await stored_tokens(db)
    assert is_sealed(access) and is_sealed(refresh)
    assert "oa-access-1" not in access and "oa-refresh-1" not in refresh

    stack.fake.expire_access_token()  # the legacy refresh token still works once unsealed
    assert await stack.channel.send(OA_USER, Outgoing(text="hai"), "t1")
    assert stack.fake.calls_to("oauth")[-1].body["refresh_token"] == "oa-refresh-1"
    access, _refresh = await stored_tokens(db)
    assert is_sealed(access) and "oa-access-2" not in access


# --------------------------------------------------------------------------- pinned dependencies

ROOT = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_every_dependency_is_pinned_to_the_version_the_suite_runs_on():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["dev"]
    pins = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not pinned with =="
            pins[name.lower().replace("_", "-")] = version
    assert "papibot" not in pins  # the project itself is installed from the tree
    for requirement in wanted:
        name = _name(requirement)
        assert name in pins, f"constraints.txt does not pin {name} (run make constraints)"
        assert metadata.version(name) == pins[name], f"{name}: installed is not the pin"
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "pip install --quiet -c constraints.txt -e '.[dev]'" in makefile
    assert re.search(r"^constraints:", makefile, re.MULTILINE)
