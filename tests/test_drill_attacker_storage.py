"""Attacker drill, storage side: what reaches the disk and what comes back from it.

- uploads: a per-person quota, photos kept only once they belong to a submitted report, images
  decoded (JPEG, PNG, WebP, HEIC) with a pixel limit, everything else refused in Vietnamese;
- backup and restore: an authenticated manifest, paths confined to their folder, a restore that
  swaps in only what it verified, archives readable by their owner only;
- the Zalo OA token pair sealed in the database (a stolen database or backup holds ciphertext).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import re
import sqlite3
import stat
import struct
import tarfile
import time
import tomllib
import uuid
import zlib
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path

import asyncpg
import pytest
from aiohttp import FormData
from PIL import Image
from sqlalchemy import text, update
from sqlalchemy.engine import make_url
from sqlmodel import select

from bot.app.backup import BackupError, _manifest_mac, backup, restore
from bot.app.cli import main as cli_main
from bot.channels.base import DeliveryError
from bot.channels.zalo_oa import ZaloOAChannel
from bot.channels.zalo_tokens import ZaloTokenStore
from bot.core.config import Settings
from bot.core.context import AppContext
from bot.core.i18n import translator
from bot.core.messages import Outgoing
from bot.core.models import AuditLog, Evidence, Occurrence, PlatformToken, Report, Unit, utcnow
from bot.core.sealed import is_sealed
from bot.core.services.evidence import purge_uploads
from bot.core.services.people import add_user, link_identity
from scheduler.jobs import start_scheduler
from tests.conftest import POSTGRES_URL
from tests.helpers.drivers import ChannelDriver, make_driver
from tests.helpers.fake_zalo import ZaloStack, noisy_png, start_stack
from tests.helpers.rows import count

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
    stack.fake.user_wrote(OA_USER)  # Zalo lets the OA answer only within its window
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
    with pytest.raises(DeliveryError, match="PAPIBOT_SECRET_KEY") as failed:
        await thief.current()
    assert failed.value.permanent and "oa-access" not in str(failed.value)


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


# --------------------------------------------------------------------------- backup and restore


def live_data(settings: Settings) -> Settings:
    """A data dir with a small live database and one evidence photo (stand-ins, by content)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(settings.data_dir / "papibot.db") as connection:
        connection.execute("CREATE TABLE t (x)")
        connection.execute("INSERT INTO t VALUES ('the live data')")
    (settings.evidence_dir / "ab").mkdir(parents=True)
    (settings.evidence_dir / "ab" / "abcd").write_bytes(b"live photo")
    return settings


def snapshot(settings: Settings) -> dict[str, bytes]:
    """Every file under the data dir's parent, by path: what a failed restore must not change."""
    root = settings.data_dir.parent
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "backups" not in path.parts and not path.name.endswith(".tar.gz")
    }


def rewrite(
    good: Path,
    bad: Path,
    settings: Settings | None,
    change: dict[str, bytes | None],
    sign: bool = True,
    listed_only: dict[str, str] | None = None,
) -> None:
    """`good` with members replaced (None drops one) or added, the checksums recomputed, and
    the manifest signed with `settings`' key (what only the key's holder can do) or not.
    `listed_only`: manifest entries (name → the member whose checksum they carry) with no
    member of their own."""
    with tarfile.open(good) as source:
        files = {m.name: source.extractfile(m).read() for m in source.getmembers()}
    manifest = json.loads(files.pop("MANIFEST.json"))
    for name, data in change.items():
        if data is None:
            files.pop(name, None)
        else:
            files[name] = data
    manifest["files"] = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    for name, member in (listed_only or {}).items():
        manifest["files"][name] = manifest["files"][member]
    manifest["hmac"] = _manifest_mac(settings, manifest) if sign and settings else "0" * 64
    with tarfile.open(bad, "w:gz") as target:
        for name, data in {"MANIFEST.json": json.dumps(manifest).encode(), **files}.items():
            member = tarfile.TarInfo(name)
            member.size = len(data)
            target.addfile(member, io.BytesIO(data))


def test_a_manifest_with_recomputed_checksums_but_no_valid_signature_is_refused(tmp_path):
    settings = live_data(Settings(_env_file=None, data_dir=tmp_path / "data", secret_key="k" * 40))
    backup(settings, tmp_path / "good.tar.gz")
    before = snapshot(settings)
    forged = {"evidence/ab/abcd": b"forged photo"}
    rewrite(tmp_path / "good.tar.gz", tmp_path / "bad.tar.gz", None, forged, sign=False)
    with pytest.raises(BackupError, match="signature"):
        restore(settings, tmp_path / "bad.tar.gz")
    # Signed with another key (another installation's backup, or a guess): refused as well.
    other = Settings(_env_file=None, data_dir=tmp_path / "x", secret_key="o" * 40)
    rewrite(tmp_path / "good.tar.gz", tmp_path / "other.tar.gz", other, forged)
    with pytest.raises(BackupError, match="signature"):
        restore(settings, tmp_path / "other.tar.gz")
    assert snapshot(settings) == before


@pytest.mark.parametrize(
    "entry", ["../../x", "evidence/../../x", "/tmp/x", "evidence/ab/../../../x", "x"]
)
def test_a_crafted_manifest_entry_writes_nothing_outside_its_folder(tmp_path, entry):
    settings = live_data(Settings(_env_file=None, data_dir=tmp_path / "a" / "data"))
    backup(settings, tmp_path / "good.tar.gz")
    before = snapshot(settings)
    # Signed with the right key: confinement must hold even for an archive that authenticates.
    rewrite(tmp_path / "good.tar.gz", tmp_path / "bad.tar.gz", settings, {entry: b"pwned"})
    with pytest.raises(BackupError, match="refusing"):
        restore(settings, tmp_path / "bad.tar.gz")
    assert snapshot(settings) == before
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.read_bytes() == b"pwned"]
    assert written == [] and not Path("/tmp/x").exists()


def test_a_manifest_entry_naming_a_file_outside_evidence_is_refused(tmp_path):
    """The entry is in the signed manifest only, pointing at the archive's own database: a
    restore that trusted the manifest's names would copy it beside the evidence folder."""
    settings = live_data(Settings(_env_file=None, data_dir=tmp_path / "data"))
    backup(settings, tmp_path / "good.tar.gz")
    before = snapshot(settings)
    listed = {"evidence/../database.sqlite": "database.sqlite"}
    rewrite(tmp_path / "good.tar.gz", tmp_path / "bad.tar.gz", settings, {}, listed_only=listed)
    with pytest.raises(BackupError, match="refusing"):
        restore(settings, tmp_path / "bad.tar.gz")
    assert snapshot(settings) == before


@pytest.mark.parametrize("damage", ["truncated", "database is not a database", "photo missing"])
def test_a_failed_restore_leaves_the_old_database_and_evidence_untouched(tmp_path, damage):
    settings = live_data(Settings(_env_file=None, data_dir=tmp_path / "data"))
    saved = live_data(Settings(_env_file=None, data_dir=tmp_path / "saved"))
    backup(saved, tmp_path / "good.tar.gz")
    bad = tmp_path / "bad.tar.gz"
    if damage == "truncated":
        raw = (tmp_path / "good.tar.gz").read_bytes()
        bad.write_bytes(raw[: len(raw) // 2])
    elif damage == "database is not a database":  # signed, checksums right, content garbage
        rewrite(tmp_path / "good.tar.gz", bad, saved, {"database.sqlite": b"SQLite format 3\0" * 9})
    else:
        with tarfile.open(tmp_path / "good.tar.gz") as good, tarfile.open(bad, "w:gz") as out:
            for member in good.getmembers():
                if not member.name.startswith("evidence/"):
                    out.addfile(member, good.extractfile(member))
    before = snapshot(settings)
    with pytest.raises(BackupError):
        restore(settings, bad)
    assert snapshot(settings) == before
    assert sorted(p.name for p in settings.data_dir.iterdir()) == ["evidence", "papibot.db"]


def test_restore_swaps_in_a_verified_copy_and_keeps_the_old_one_beside(tmp_path):
    settings = live_data(Settings(_env_file=None, data_dir=tmp_path / "data"))
    saved = Settings(_env_file=None, data_dir=tmp_path / "saved")
    saved.data_dir.mkdir()
    with sqlite3.connect(saved.data_dir / "papibot.db") as connection:
        connection.execute("CREATE TABLE t (x)")
        connection.execute("INSERT INTO t VALUES ('from the backup')")
    (saved.evidence_dir / "cd").mkdir(parents=True)
    (saved.evidence_dir / "cd" / "cdef").write_bytes(b"saved photo")
    backup(saved, tmp_path / "good.tar.gz")

    restore(settings, tmp_path / "good.tar.gz")
    with sqlite3.connect(settings.data_dir / "papibot.db") as connection:
        assert connection.execute("SELECT x FROM t").fetchall() == [("from the backup",)]
    assert (settings.evidence_dir / "cd" / "cdef").read_bytes() == b"saved photo"
    assert not (settings.evidence_dir / "ab").exists()  # the folder is the backup's, whole
    old_db = next(settings.data_dir.glob("papibot.db.before-restore-*"))
    with sqlite3.connect(old_db) as connection:
        assert connection.execute("SELECT x FROM t").fetchall() == [("the live data",)]
    old_evidence = next(settings.data_dir.glob("evidence.before-restore-*"))
    assert (old_evidence / "ab" / "abcd").read_bytes() == b"live photo"
    assert not list(settings.data_dir.glob(".restore-*"))


def test_backups_are_readable_by_their_owner_only(tmp_path):
    settings = live_data(Settings(_env_file=None, data_dir=tmp_path / "data"))
    previous = os.umask(0o022)  # a usual umask would make a plain file world-readable
    try:
        report = backup(settings)
        named = backup(settings, tmp_path / "named.tar.gz")
    finally:
        os.umask(previous)
    for path in (report.path, named.path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(report.path.parent.stat().st_mode) == 0o700
    assert not list(report.path.parent.glob(".backup-*"))


def test_papibot_restore_of_a_forged_backup_says_one_line_and_exits_2(
    tmp_path, monkeypatch, capsys
):
    settings = live_data(Settings(_env_file=None, data_dir=tmp_path / "data", secret_key="k" * 40))
    backup(settings, tmp_path / "good.tar.gz")
    rewrite(tmp_path / "good.tar.gz", tmp_path / "bad.tar.gz", None, {}, sign=False)
    (tmp_path / "short.tar.gz").write_bytes((tmp_path / "good.tar.gz").read_bytes()[:300])
    monkeypatch.chdir(tmp_path)  # no .env from the tree
    monkeypatch.setenv("PAPIBOT_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("PAPIBOT_SECRET_KEY", settings.secret_key)
    monkeypatch.delenv("PAPIBOT_DATABASE_URL", raising=False)
    for archive in ("bad.tar.gz", "short.tar.gz"):
        assert cli_main(["restore", str(tmp_path / archive)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("papibot: ") and archive in err, err
        assert "Traceback" not in err


@pytest.mark.skipif(not POSTGRES_URL, reason="PAPIBOT_TEST_DATABASE_URL is not set: no PostgreSQL")
async def test_a_failed_postgres_restore_leaves_the_live_database_untouched(tmp_path):
    name = f"papibot_drill_{uuid.uuid4().hex[:8]}"
    admin_url = (
        make_url(POSTGRES_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
        settings = Settings(_env_file=None, data_dir=tmp_path / "data", database_url=url)
        (settings.evidence_dir / "ab").mkdir(parents=True)
        (settings.evidence_dir / "ab" / "abcd").write_bytes(b"live photo")
        live = await asyncpg.connect(url.replace("+asyncpg", ""))
        await live.execute("CREATE TABLE t (x text); INSERT INTO t VALUES ('the live data')")
        await live.close()
        backup(settings, tmp_path / "good.tar.gz")
        before = snapshot(settings)
        damaged = {"database.pgdump": b"PGDMP" + b"\0" * 200}  # signed, checksums right
        rewrite(tmp_path / "good.tar.gz", tmp_path / "bad.tar.gz", settings, damaged)
        with pytest.raises(BackupError, match="pg_restore"):
            restore(settings, tmp_path / "bad.tar.gz")
        assert snapshot(settings) == before
        live = await asyncpg.connect(url.replace("+asyncpg", ""))
        assert await live.fetchval("SELECT x FROM t") == "the live data"
        await live.close()
        leftovers = await admin.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE $1", f"{name}_%"
        )
        assert leftovers == []
    finally:
        for row in await admin.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE $1", f"{name}%"
        ):
            await admin.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')
        await admin.close()


# --------------------------------------------------------------------------- uploads

vi = translator("vi")
NOT_IMAGE = vi("I can only take photos as evidence. Please send a picture (JPG or PNG).")
TOO_MANY_PIXELS = vi(
    "This picture is too big to keep (more than {limit} megapixels). "
    "Please send an ordinary photo taken with your phone."
)
QUOTA_FILES = vi(
    "You have sent {count} photos in the last hour, the most that can be received. "
    "Please wait a while, then send the rest. The photos already received are kept."
)
QUOTA_BYTES = vi(
    "You have sent {size} MB of photos in the last 24 hours, the most that can be received. "
    "Please send the rest tomorrow. The photos already received are kept."
)
# On channels with buttons "{action}" reads as the tap on the Continue button.
RECEIVED = vi("Received photo {count}. Send more, or {action}.").replace(
    "{action}", "bấm «➡️ Tiếp tục»"
)
UPLOAD_CHANNELS = ("telegram", "web")  # a file as a person sends it: a document, a form upload


@pytest.fixture(params=UPLOAD_CHANNELS)
async def driver(request: pytest.FixtureRequest, settings: Settings, db, framework):  # noqa: ANN001
    async with make_driver(request.param, settings, db, framework) as channel_driver:
        yield channel_driver


def picture(fmt: str, size: tuple[int, int] = (64, 48), colour: str = "green") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format=fmt)
    return buffer.getvalue()


def huge_png(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of width×height that is small on disk (a few hundred kB)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\0" * (1 + (width + 7) // 8)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n%%EndComments\nshowpage\n%%EOF\n"
GIF_WITH_HTML = picture("GIF") + b"<html><script>alert(document.cookie)</script></html>"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
HTML = b"<!doctype html><html><body><script>alert(1)</script></body></html>"


async def send_file(d: ChannelDriver, chat: str, content: bytes, name: str, mime: str) -> None:
    """A file as the channel lets a person send it: a Telegram document, a simulator upload."""
    if d.name == "telegram":
        update = d.fake.document(d._chat(chat), content, name, mime)  # type: ignore[attr-defined]
        await d._update(chat, update)  # type: ignore[attr-defined]
        return
    form = FormData()
    form.add_field("chat", d.external_id(chat))
    form.add_field("update_id", uuid.uuid4().hex)
    form.add_field("file", content, filename=name, content_type=mime)
    await d._api("/sim/api/photo", data=form)  # type: ignore[attr-defined]
    await d.flush()


async def open_draft(d: ChannelDriver, chat: str = "head") -> tuple[int, int]:
    """A registered village head who tapped ✅ on a task: (occurrence id, draft report id)."""
    village = d.world.villages[0]
    invite = await d.world.invite(village, "village_head")
    await d.start(chat, invite.code)
    await d.say(chat, "/viec")
    done = [b for sent in await d.messages(chat) for b in sent.buttons if b.startswith("done:")]
    await d.tap(chat, done[0])
    drafts = [b for sent in await d.messages(chat) for b in sent.buttons if b.startswith("next:")]
    return int(done[0].split(":")[1]), int(drafts[-1].split(":")[1])


async def last_text(d: ChannelDriver, chat: str = "head") -> str:
    return (await d.messages(chat))[-1].text


def files_under(settings: Settings, folder: str) -> list[Path]:
    root = settings.data_dir / folder
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.mark.parametrize("size", [(20000, 20000), (9000, 9000)])
async def test_a_picture_with_too_many_pixels_gets_a_clear_answer_and_nothing_is_kept(
    driver: ChannelDriver, size: tuple[int, int]
) -> None:
    d, settings = driver, driver.world.app.settings
    await open_draft(d)
    huge = huge_png(*size)
    assert len(huge) < 2 * 1024 * 1024  # small on disk, 400 or 81 megapixels once decoded
    await send_file(d, "head", huge, "ban-do.png", "image/png")
    assert await last_text(d) == TOO_MANY_PIXELS.format(limit=50)
    assert await count(d.world.db, Evidence) == 0
    assert files_under(settings, "uploads") == files_under(settings, "evidence") == []
    refused = await count(d.world.db, AuditLog, AuditLog.action == "evidence.too_many_pixels")
    assert refused == 1


async def test_only_jpeg_png_webp_and_heic_are_taken_as_evidence(driver: ChannelDriver) -> None:
    d = driver
    _occurrence, report_id = await open_draft(d)
    for content, name, mime in (
        (EPS, "so-do.eps", "image/x-eps"),
        (GIF_WITH_HTML, "anh.gif", "image/gif"),
        (SVG, "anh.svg", "image/svg+xml"),
        (HTML, "anh.jpg", "image/jpeg"),  # renamed, lying about its type
        (picture("TIFF"), "anh.tif", "image/tiff"),
    ):
        await send_file(d, "head", content, name, mime)
        assert await last_text(d) == NOT_IMAGE, name
    assert await count(d.world.db, Evidence) == 0
    accepted = {
        "JPEG": ("anh.jpg", "image/jpeg"),
        "PNG": ("anh.png", "image/png"),
        "WEBP": ("anh.webp", "image/webp"),
        "HEIF": ("IMG_0001.HEIC", "image/heic"),  # what an iPhone sends
    }
    for number, (fmt, (name, mime)) in enumerate(accepted.items(), start=1):
        await send_file(d, "head", picture(fmt, colour="orange"), name, mime)
        assert await last_text(d) == RECEIVED.format(count=number), fmt
    await d.tap("head", f"next:{report_id}")
    await d.tap("head", f"skip:{report_id}")
    await d.tap("head", f"send:{report_id}")
    async with d.world.db.session() as session:
        rows = (await session.exec(select(Evidence).where(Evidence.report_id == report_id))).all()
    assert sorted(row.mime for row in rows) == [
        "image/heif",
        "image/jpeg",
        "image/png",
        "image/webp",
    ]


async def test_a_photo_is_kept_in_evidence_only_once_its_report_is_submitted(
    driver: ChannelDriver,
) -> None:
    d, settings = driver, driver.world.app.settings
    _occurrence, report_id = await open_draft(d)
    photo = picture("JPEG", (320, 240), "red")
    digest = hashlib.sha256(photo).hexdigest()
    await send_file(d, "head", photo, "anh.jpg", "image/jpeg")
    assert [p.name for p in files_under(settings, "uploads")] == [digest]
    assert files_under(settings, "evidence") == []  # a draft's photo is not evidence yet

    await d.tap("head", f"next:{report_id}")
    await d.tap("head", f"skip:{report_id}")
    await d.tap("head", f"send:{report_id}")
    async with d.world.db.session() as session:
        row = (await session.exec(select(Evidence).where(Evidence.report_id == report_id))).one()
    assert row.path == f"evidence/{digest[:2]}/{digest}"
    assert (settings.data_dir / row.path).read_bytes() == photo

    # A photo of a draft that is cancelled stays in the temporary area, purged after a day.
    await d.say("head", "/viec")
    done = [b for sent in await d.messages("head") for b in sent.buttons if b.startswith("done:")]
    await d.tap("head", done[-1])
    other = [b for sent in await d.messages("head") for b in sent.buttons if b.startswith("next:")]
    abandoned = picture("PNG", (100, 80), "blue")
    await send_file(d, "head", abandoned, "anh.png", "image/png")
    await d.tap("head", f"cancel:{other[-1].split(':')[1]}")
    assert len(files_under(settings, "evidence")) == 1
    now = datetime.now(UTC)
    assert purge_uploads(settings.data_dir, now + timedelta(hours=23)) == 0
    assert purge_uploads(settings.data_dir, now + timedelta(hours=25)) == 2  # both, unclaimed
    assert files_under(settings, "uploads") == []
    assert (settings.data_dir / row.path).read_bytes() == photo  # evidence is never purged


async def test_a_draft_left_open_past_the_purge_is_sent_without_the_purged_photo(
    driver: ChannelDriver,
) -> None:
    d, settings = driver, driver.world.app.settings
    occurrence_id, report_id = await open_draft(d)
    await send_file(d, "head", picture("JPEG", colour="red"), "anh.jpg", "image/jpeg")
    assert purge_uploads(settings.data_dir, datetime.now(UTC) + timedelta(days=2)) == 1
    await d.tap("head", f"next:{report_id}")
    await d.tap("head", f"skip:{report_id}")
    await d.tap("head", f"send:{report_id}")
    async with d.world.db.session() as session:
        report = await session.get(Report, report_id)
        occurrence = await session.get(Occurrence, occurrence_id)
    assert (report.status, occurrence.status) == ("submitted", "done")
    # No row claims a photo that is not on disk.
    assert await count(d.world.db, Evidence, Evidence.report_id == report_id) == 0
    assert files_under(settings, "evidence") == []


async def test_uploads_are_bounded_per_person_by_files_an_hour_and_bytes_a_day(
    driver: ChannelDriver,
) -> None:
    d, settings = driver, driver.world.app.settings
    settings.upload_files_per_hour = 3
    await open_draft(d)
    for colour in ("red", "green", "blue"):
        await send_file(d, "head", picture("JPEG", colour=colour), "a.jpg", "image/jpeg")
    await send_file(d, "head", picture("JPEG", colour="white"), "a.jpg", "image/jpeg")
    assert await last_text(d) == QUOTA_FILES.format(count=3)
    assert await count(d.world.db, Evidence) == 3
    assert len(files_under(settings, "uploads")) == 3
    assert await count(d.world.db, AuditLog, AuditLog.action == "evidence.quota_files") == 1

    # An hour on, files are allowed again, but not past the bytes of a day.
    async with d.world.db.session() as session:
        await session.exec(  # type: ignore[call-overload]
            update(AuditLog)
            .where(AuditLog.action == "evidence.received")
            .values(at=datetime.now(UTC) - timedelta(minutes=61))
        )
        await session.commit()
        received = (
            await session.exec(select(AuditLog).where(AuditLog.action == "evidence.received"))
        ).all()
    already = sum(row.detail["size"] for row in received)
    settings.upload_bytes_per_day = already + 2**20
    big = noisy_png(640, 640)  # random pixels: about 1.2 MB as PNG
    assert len(big) > 2**20
    await send_file(d, "head", big, "b.png", "image/png")
    assert await last_text(d) == QUOTA_BYTES.format(size=settings.upload_bytes_per_day // 2**20)
    assert await count(d.world.db, Evidence) == 3


async def test_the_scheduler_purges_unclaimed_photos_at_start(settings: Settings, db, framework):  # noqa: ANN001
    async with make_driver("web", settings, db, framework) as d:
        stale = settings.data_dir / "uploads" / "ab" / ("ab" + "0" * 62)
        fresh = stale.with_name("ab" + "1" * 62)
        stale.parent.mkdir(parents=True)
        stale.write_bytes(b"left by a draft two days ago")
        fresh.write_bytes(b"a draft of this morning")
        two_days_ago = time.time() - 2 * 86400
        os.utime(stale, (two_days_ago, two_days_ago))
        runtime = d.runtime  # type: ignore[attr-defined]
        scheduler = start_scheduler(runtime.ctx, wake_sender=runtime.sender.wake)
        # Only the purge is under test: the other jobs due at start (planning, the sweep) are
        # held before they run, so none is left writing when the test's schema is dropped.
        for job in scheduler.get_jobs():
            if job.id != "uploads":
                job.pause()
        try:
            assert scheduler.get_job("uploads") is not None
            for _ in range(200):  # the job's first run is due at once; give it 10 s
                if not stale.exists():
                    break
                await asyncio.sleep(0.05)
        finally:
            scheduler.shutdown(wait=False)
        assert not stale.exists() and fresh.exists()
