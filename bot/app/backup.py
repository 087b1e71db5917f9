"""`papibot backup` / `papibot restore`: the database and the evidence photos, with checksums.

The archive is a .tar.gz holding `database.sqlite` (SQLite's online backup API, safe while the
server runs) or `database.pgdump` (pg_dump custom format), the `evidence/` tree, and
`MANIFEST.json` with the sha256 of every file. Restore verifies every checksum before it
touches anything.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import make_url

from bot.core.config import Settings

MANIFEST = "MANIFEST.json"


class BackupError(Exception):
    """A backup or restore that cannot proceed, phrased for the operator."""


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


def _sqlite_path(settings: Settings) -> Path:
    database = make_url(settings.effective_database_url).database
    if not database:
        raise BackupError("the SQLite URL has no file path")
    return Path(database)


def _libpq_url(settings: Settings) -> str:
    return (
        make_url(settings.effective_database_url)
        .set(drivername="postgresql")
        .render_as_string(hide_password=False)
    )


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


def _run(command: list[str]) -> None:
    try:
        subprocess.run(command, check=True, capture_output=True, text=True)
    except FileNotFoundError:
        raise BackupError(f"`{command[0]}` is not installed (PostgreSQL client tools)") from None
    except subprocess.CalledProcessError as exc:
        raise BackupError(f"{command[0]} failed: {exc.stderr.strip()[:500]}") from None


def backup(settings: Settings, destination: Path | None = None) -> BackupReport:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    destination = destination or settings.data_dir / "backups" / f"papibot-{stamp}.tar.gz"
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        scratch_dir = Path(scratch)
        database = _dump_database(settings, scratch_dir)
        entries = {database.name: database}
        evidence_root = settings.evidence_dir
        if evidence_root.exists():
            for file in sorted(evidence_root.rglob("*")):
                if file.is_file() and not file.name.endswith(".part"):
                    entries[f"evidence/{file.relative_to(evidence_root)}"] = file
        manifest = {
            "created_at": stamp,
            "database": database.name,
            "files": {name: _sha256(path) for name, path in entries.items()},
        }
        manifest_path = scratch_dir / MANIFEST
        manifest_path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        with tarfile.open(destination, "w:gz") as archive:
            archive.add(manifest_path, arcname=MANIFEST)
            for name, path in entries.items():
                archive.add(path, arcname=name)
    return BackupReport(destination, len(entries), destination.stat().st_size)


def _safe_members(archive: tarfile.TarFile) -> list[tarfile.TarInfo]:
    members = archive.getmembers()
    for member in members:
        name = Path(member.name)
        if name.is_absolute() or ".." in name.parts or not (member.isfile() or member.isdir()):
            raise BackupError(f"refusing archive entry {member.name!r}")
    return members


def restore(settings: Settings, source: Path) -> BackupReport:
    """Verify, then replace the database and add the evidence files. Stop the server first."""
    if not source.exists():
        raise BackupError(f"{source}: no such backup")
    with tempfile.TemporaryDirectory() as scratch:
        scratch_dir = Path(scratch)
        with tarfile.open(source, "r:gz") as archive:
            archive.extractall(scratch_dir, members=_safe_members(archive), filter="data")
        manifest_path = scratch_dir / MANIFEST
        if not manifest_path.exists():
            raise BackupError(f"{source}: no {MANIFEST}: not a papibot backup")
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        for name, expected in manifest["files"].items():
            path = scratch_dir / name
            if not path.exists() or _sha256(path) != expected:
                raise BackupError(f"{source}: {name} is missing or its checksum does not match")
        _restore_database(settings, scratch_dir / manifest["database"])
        evidence_dir = settings.evidence_dir
        for name in manifest["files"]:
            if name.startswith("evidence/"):
                target = evidence_dir / name.removeprefix("evidence/")
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(scratch_dir / name, target)
        return BackupReport(source, len(manifest["files"]), source.stat().st_size)


def _restore_database(settings: Settings, dump: Path) -> None:
    if dump.name == "database.sqlite":
        if not settings.is_sqlite:
            raise BackupError(
                "this backup is of a SQLite database; PAPIBOT_DATABASE_URL is not SQLite"
            )
        target = _sqlite_path(settings)
        target.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(dump) as saved, sqlite3.connect(target) as live:
            saved.backup(live)
        return
    if settings.is_sqlite:
        raise BackupError("this backup is of a PostgreSQL database; PAPIBOT_DATABASE_URL is SQLite")
    _run(
        [
            "pg_restore",
            "--clean",
            "--if-exists",
            "--no-owner",
            f"--dbname={_libpq_url(settings)}",
            str(dump),
        ]
    )
