"""`papibot backup` / `papibot restore`: the database and the evidence photos, authenticated.

The archive is a .tar.gz holding `database.sqlite` (SQLite's online backup API, safe while the
server runs) or `database.pgdump` (pg_dump custom format), the `evidence/` tree, and
`MANIFEST.json` with the sha256 of every file and an HMAC of the whole list under a key derived
from PAPIBOT_SECRET_KEY: recomputing the checksums of a doctored archive is not enough. The
archive is readable by its owner only (0600): it holds every user and the invite codes.

Restore trusts nothing in the archive until the HMAC holds; it then unpacks each listed file
to a path it builds itself (nothing can land outside its folder), builds a new database and a
new evidence folder *beside* the live ones, checks them, and only then swaps them in. The old
ones are kept beside, renamed `….before-restore-<time>`; any failure before the swap leaves
them exactly as they were.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from sqlalchemy.engine import make_url

from bot.core.config import Settings

MANIFEST = "MANIFEST.json"
DATABASE_NAMES = ("database.sqlite", "database.pgdump")
MANIFEST_KEY_LABEL = b"papibot backup manifest v1"
PRIVATE = 0o600


class BackupError(Exception):
    """A backup or restore that cannot proceed, phrased for the operator (one line)."""


@dataclass
class BackupReport:
    path: Path
    files: int
    bytes: int

    def summary(self) -> str:
        return f"{self.path}: {self.files} files, {self.bytes:,} bytes"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _manifest_mac(settings: Settings, manifest: dict) -> str:
    """HMAC-SHA256 of the manifest without its `hmac` field, in one canonical spelling."""
    key = hmac.new(settings.secret_key.encode("utf-8"), MANIFEST_KEY_LABEL, "sha256").digest()
    body = {name: value for name, value in manifest.items() if name != "hmac"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hmac.new(key, canonical.encode("utf-8"), "sha256").hexdigest()


def _sqlite_path(settings: Settings) -> Path:
    database = make_url(settings.effective_database_url).database
    if not database:
        raise BackupError("the SQLite URL has no file path")
    return Path(database)


def _libpq_url(settings: Settings, database: str | None = None) -> str:
    url = make_url(settings.effective_database_url).set(drivername="postgresql")
    if database is not None:
        url = url.set(database=database)
    return url.render_as_string(hide_password=False)


def _run(command: list[str]) -> str:
    try:
        done = subprocess.run(command, check=True, capture_output=True, text=True)
    except FileNotFoundError:
        raise BackupError(f"`{command[0]}` is not installed (PostgreSQL client tools)") from None
    except subprocess.CalledProcessError as exc:
        detail = " / ".join(exc.stderr.strip().splitlines())[:500]
        raise BackupError(f"{command[0]} failed: {detail}") from None
    return done.stdout


# --------------------------------------------------------------------------- backup


def _dump_database(settings: Settings, target_dir: Path) -> Path:
    if settings.is_sqlite:
        source = _sqlite_path(settings)
        if not source.exists():
            raise BackupError(f"no database at {source}: run `papibot init` first")
        target = target_dir / "database.sqlite"
        with sqlite3.connect(source) as live, sqlite3.connect(target) as copy:
            live.backup(copy)
        return target
    target = target_dir / "database.pgdump"
    _run(["pg_dump", "--format=custom", "--no-owner", f"--file={target}", _libpq_url(settings)])
    return target


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def backup(settings: Settings, destination: Path | None = None) -> BackupReport:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    destination = destination or settings.data_dir / "backups" / f"papibot-{stamp}.tar.gz"
    _private_dir(destination.parent)
    scratch_dir = _private_dir(destination.parent / f".backup-{stamp}-{os.getpid()}")
    partial = destination.with_name(destination.name + ".part")
    try:
        database = _dump_database(settings, scratch_dir)
        entries = {database.name: database}
        evidence_root = settings.evidence_dir
        if evidence_root.exists():
            for file in sorted(evidence_root.rglob("*")):
                if file.is_file() and not file.is_symlink() and not file.name.endswith(".part"):
                    entries["evidence/" + file.relative_to(evidence_root).as_posix()] = file
        manifest = {
            "created_at": stamp,
            "database": database.name,
            "files": {name: _sha256(path) for name, path in entries.items()},
        }
        manifest["hmac"] = _manifest_mac(settings, manifest)
        manifest_path = scratch_dir / MANIFEST
        manifest_path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        # Created 0600 from the first byte: the archive holds every user and the invite codes.
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE)
        os.fchmod(descriptor, PRIVATE)  # an existing .part keeps its mode otherwise
        with os.fdopen(descriptor, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            tar.add(manifest_path, arcname=MANIFEST)
            for name, path in entries.items():
                tar.add(path, arcname=name)
        partial.replace(destination)
    except OSError as error:
        raise BackupError(f"{destination}: cannot write the backup: {error.strerror}") from None
    finally:
        shutil.rmtree(scratch_dir, ignore_errors=True)
        partial.unlink(missing_ok=True)
    return BackupReport(destination, len(entries), destination.stat().st_size)


# --------------------------------------------------------------------------- restore


def _confined(name: str) -> PurePosixPath:
    """An archive name that is one of ours: the manifest, the dump, or a file under evidence/."""
    path = PurePosixPath(name)
    if name in (MANIFEST, *DATABASE_NAMES):
        return path
    parts = path.parts
    if (
        len(parts) >= 2
        and parts[0] == "evidence"
        and not path.is_absolute()
        and all(part not in ("", ".", "..") and "\\" not in part for part in parts)
    ):
        return path
    raise BackupError(f"refusing archive entry {name!r}: not a papibot backup path")


def _read_manifest(settings: Settings, source: Path, tar: tarfile.TarFile) -> dict:
    try:
        member = tar.getmember(MANIFEST)
    except KeyError:
        raise BackupError(f"{source}: no {MANIFEST}: not a papibot backup") from None
    handle = tar.extractfile(member) if member.isfile() else None
    if handle is None or member.size > 16 * 1024 * 1024:
        raise BackupError(f"{source}: {MANIFEST} is not a plain file of sensible size")
    try:
        manifest = json.loads(handle.read().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BackupError(f"{source}: {MANIFEST} is not valid JSON") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("hmac"), str):
        raise BackupError(f"{source}: {MANIFEST} is not signed: refusing it")
    if not hmac.compare_digest(manifest["hmac"], _manifest_mac(settings, manifest)):
        raise BackupError(
            f"{source}: {MANIFEST} signature does not match PAPIBOT_SECRET_KEY "
            "(altered, or made with another key): refusing it"
        )
    files = manifest.get("files")
    if not isinstance(files, dict) or manifest.get("database") not in DATABASE_NAMES:
        raise BackupError(f"{source}: {MANIFEST} lists no database")
    if manifest["database"] not in files:
        raise BackupError(f"{source}: {MANIFEST} does not list its database")
    for name in files:
        _confined(name)
    return manifest


def _unpack(source: Path, tar: tarfile.TarFile, manifest: dict, staging: Path) -> dict[str, Path]:
    """Every listed file, written to a path built here under `staging`, its checksum checked."""
    files: dict[str, str] = manifest["files"]
    unpacked: dict[str, Path] = {}
    for member in tar:
        if member.name == MANIFEST:
            continue
        if member.name not in files:
            raise BackupError(f"{source}: {member.name!r} is not in {MANIFEST}: refusing it")
        if not member.isfile():
            raise BackupError(f"{source}: {member.name!r} is not a plain file: refusing it")
        target = staging.joinpath(*_confined(member.name).parts)
        if not target.resolve().is_relative_to(staging.resolve()):
            raise BackupError(f"{source}: {member.name!r} leaves its folder: refusing it")
        target.parent.mkdir(parents=True, exist_ok=True)
        handle = tar.extractfile(member)
        assert handle is not None  # a plain file
        with target.open("xb") as out:
            shutil.copyfileobj(handle, out, 1024 * 1024)
        if _sha256(target) != files[member.name]:
            raise BackupError(f"{source}: {member.name} does not match its checksum")
        unpacked[member.name] = target
    missing = sorted(set(files) - set(unpacked))
    if missing:
        raise BackupError(f"{source}: {missing[0]} is missing or its checksum does not match")
    return unpacked


def restore(settings: Settings, source: Path) -> BackupReport:
    """Verify, build beside, check, swap. Stop the server first."""
    if not source.exists():
        raise BackupError(f"{source}: no such backup")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    staging = _private_dir(settings.data_dir / f".restore-{stamp}")
    try:
        try:
            with tarfile.open(source, "r:gz") as tar:
                manifest = _read_manifest(settings, source, tar)
                unpacked = _unpack(source, tar, manifest, staging)
        except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
            reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
            raise BackupError(f"{source}: unreadable archive ({reason})") from None
        dump = unpacked[manifest["database"]]
        evidence = staging / "evidence"
        evidence.mkdir(exist_ok=True)
        if dump.name == "database.sqlite":
            _restore_sqlite(settings, dump, evidence)
        else:
            _restore_postgres(settings, dump, evidence, stamp)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return BackupReport(source, len(manifest["files"]), source.stat().st_size)


def _swap_evidence(settings: Settings, new_evidence: Path, stamp: str) -> Path | None:
    """Put the verified evidence folder in place; the old one is kept beside (returned)."""
    live = settings.evidence_dir
    aside = None
    if live.exists():
        aside = live.with_name(f"{live.name}.before-restore-{stamp}")
        live.rename(aside)
    new_evidence.rename(live)
    return aside


def _undo_evidence(settings: Settings, aside: Path | None) -> None:
    shutil.rmtree(settings.evidence_dir, ignore_errors=True)
    if aside is not None:
        aside.rename(settings.evidence_dir)


def _restore_sqlite(settings: Settings, dump: Path, new_evidence: Path) -> None:
    if not settings.is_sqlite:
        raise BackupError("this backup is of a SQLite database; PAPIBOT_DATABASE_URL is not SQLite")
    target = _sqlite_path(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    stamp = new_evidence.parent.name.removeprefix(".restore-")
    fresh = target.with_name(f"{target.name}.restore-{stamp}")
    try:
        with sqlite3.connect(dump) as saved, sqlite3.connect(fresh) as built:
            saved.backup(built)
            check = built.execute("PRAGMA integrity_check").fetchone()
            built.execute("SELECT count(*) FROM sqlite_master").fetchone()
        if not check or check[0] != "ok":
            raise BackupError(f"the database in the backup is damaged: {check and check[0]}")
    except sqlite3.DatabaseError as error:
        fresh.unlink(missing_ok=True)
        raise BackupError(f"the database in the backup cannot be read: {error}") from None
    except BackupError:
        fresh.unlink(missing_ok=True)
        raise
    os.chmod(fresh, PRIVATE)
    if target.exists():  # fold any WAL into the old file, so it moves aside whole
        with sqlite3.connect(target) as old:
            old.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    aside = _swap_evidence(settings, new_evidence, stamp)
    try:
        if target.exists():
            target.rename(target.with_name(f"{target.name}.before-restore-{stamp}"))
        for suffix in ("-wal", "-shm", "-journal"):  # never let them pair with the new file
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        fresh.rename(target)
    except OSError as error:
        _undo_evidence(settings, aside)
        old = target.with_name(f"{target.name}.before-restore-{stamp}")
        if old.exists() and not target.exists():
            old.rename(target)
        fresh.unlink(missing_ok=True)
        raise BackupError(f"{target}: cannot swap the restored database in: {error}") from None


def _psql(settings: Settings, database: str, sql: str) -> str:
    return _run(
        ["psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-c", sql]
        + [_libpq_url(settings, database)]
    )


def _restore_postgres(settings: Settings, dump: Path, new_evidence: Path, stamp: str) -> None:
    if settings.is_sqlite:
        raise BackupError("this backup is of a PostgreSQL database; PAPIBOT_DATABASE_URL is SQLite")
    live = make_url(settings.effective_database_url).database
    if not live:
        raise BackupError("PAPIBOT_DATABASE_URL names no database")
    fresh = f"{live}_restore_{stamp.lower()}"[:63]
    aside = f"{live}_before_restore_{stamp.lower()}"[:63]
    quote = '"{}"'.format
    _psql(settings, "postgres", f"CREATE DATABASE {quote(fresh)}")
    try:
        _run(
            [
                "pg_restore",
                "--no-owner",
                "--exit-on-error",
                f"--dbname={_libpq_url(settings, fresh)}",
                str(dump),
            ]
        )
        if not _psql(settings, fresh, "SELECT count(*) FROM pg_tables").strip():
            raise BackupError("the restored PostgreSQL database cannot be read")
    except BackupError:
        _psql(settings, "postgres", f"DROP DATABASE IF EXISTS {quote(fresh)}")
        raise
    evidence_aside = _swap_evidence(settings, new_evidence, stamp)
    try:
        # One transaction would be nicer, but ALTER DATABASE cannot run in one; two renames.
        _psql(settings, "postgres", f"ALTER DATABASE {quote(live)} RENAME TO {quote(aside)}")
    except BackupError:
        _undo_evidence(settings, evidence_aside)
        _psql(settings, "postgres", f"DROP DATABASE IF EXISTS {quote(fresh)}")
        raise
    _psql(settings, "postgres", f"ALTER DATABASE {quote(fresh)} RENAME TO {quote(live)}")
