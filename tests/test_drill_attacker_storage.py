"""Attacker drill, storage side: what reaches the disk and what comes back from it.

- uploads: a per-person quota, photos kept only once they belong to a submitted report, images
  decoded (JPEG, PNG, WebP, HEIC) with a pixel limit, everything else refused in Vietnamese;
- backup and restore: an authenticated manifest, paths confined to their folder, a restore that
  swaps in only what it verified, archives readable by their owner only;
- the Zalo OA token pair sealed in the database (a stolen database or backup holds ciphertext).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import sqlite3
import stat
import tarfile
import tomllib
import uuid
from importlib import metadata
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bot.backup import BackupError, _manifest_mac, backup, restore
from bot.channels.zalo_oa import ZaloOAChannel
from bot.channels.zalo_tokens import ZaloTokenStore
from bot.cli import main as cli_main
from bot.config import Settings
from bot.context import AppContext
from bot.messages import Outgoing
from bot.models import PlatformToken, Unit, utcnow
from bot.sealed import is_sealed
from bot.services.people import add_user, link_identity
from tests.conftest import POSTGRES_URL
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
