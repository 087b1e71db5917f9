"""Photos of evidence: decoded to be accepted, bounded per person, stored once by content.

A photo first lands in the temporary area (`DATA_DIR/uploads/`), and only moves to the
evidence folder once the report it belongs to is submitted; what no report claimed is purged
after a day (`purge_uploads`, daily and at start). Each accepted upload is audited
(`evidence.received`, with its size): that record is also what the per-person quota counts.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import warnings
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from pillow_heif import register_heif_opener
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core.models import AuditLog, Evidence, User
from bot.core.timeutil import from_db, to_db

register_heif_opener()  # iPhones send HEIC

MAX_PHOTO_BYTES = 20 * 1024 * 1024  # Telegram bots cannot download more; Zalo allows less
ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "HEIF"})  # not GIF, EPS, SVG, TIFF…
UPLOADS = "uploads"
EVIDENCE = "evidence"
UPLOAD_KEEP = timedelta(days=1)  # an unclaimed photo lives this long in the temporary area
RECEIVED = "evidence.received"
EXIF_DATETIME_ORIGINAL = 0x9003
EXIF_DATETIME = 0x0132
EXIF_IFD = 0x8769
GPS_IFD = 0x8825


class EvidenceProblem(Exception):
    """`too_large`, `not_image`, `too_many_pixels`, `quota_files`, `quota_bytes` or `no_space`
    (the disk is full): the person is told, nothing is stored."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class UploadLimits:
    files_per_hour: int
    bytes_per_day: int
    max_pixels: int

    @classmethod
    def of(cls, settings) -> UploadLimits:  # noqa: ANN001  (bot.core.config.Settings)
        return cls(
            settings.upload_files_per_hour,
            settings.upload_bytes_per_day,
            settings.upload_max_pixels,
        )


@dataclass
class StoredPhoto:
    sha256: str
    path: str  # relative to the data directory
    size: int
    mime: str
    width: int
    height: int
    taken_at: datetime | None = None
    gps_lat: float | None = None
    gps_lon: float | None = None

    def as_dict(self) -> dict:
        data = asdict(self)
        data["taken_at"] = self.taken_at.isoformat() if self.taken_at else None
        return data

    @classmethod
    def from_dict(cls, data: dict) -> StoredPhoto:
        data = dict(data)
        if data.get("taken_at"):
            data["taken_at"] = datetime.fromisoformat(data["taken_at"])
        return cls(**data)


def _rational(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, ZeroDivisionError):
        numerator, denominator = value  # type: ignore[misc]
        return numerator / denominator


def _degrees(dms: tuple, ref: str) -> float:
    degrees, minutes, seconds = (_rational(part) for part in dms)
    value = degrees + minutes / 60 + seconds / 3600
    return -value if ref in ("S", "W") else value


def _exif(image: Image.Image) -> tuple[datetime | None, float | None, float | None]:
    try:
        exif = image.getexif()
    except Exception:  # noqa: BLE001  (broken EXIF is common; the photo still counts)
        return None, None, None
    taken_at = None
    raw_time = exif.get_ifd(EXIF_IFD).get(EXIF_DATETIME_ORIGINAL) or exif.get(EXIF_DATETIME)
    if isinstance(raw_time, str):
        try:
            taken_at = datetime.strptime(raw_time.strip(), "%Y:%m:%d %H:%M:%S")
        except ValueError:
            taken_at = None
    lat = lon = None
    gps = exif.get_ifd(GPS_IFD)
    try:
        if gps and 2 in gps and 4 in gps:
            lat = _degrees(gps[2], gps.get(1, "N"))
            lon = _degrees(gps[4], gps.get(3, "E"))
    except (TypeError, ValueError, ZeroDivisionError):
        lat = lon = None
    return taken_at, lat, lon


def _decode(data: bytes, max_pixels: int) -> tuple[Image.Image, str]:
    """The image, fully decoded (what cannot be decoded is not a photo), and its MIME type."""
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb guard only warns below twice its limit; ours is lower still.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
        if image.format not in ACCEPTED_FORMATS:
            raise EvidenceProblem("not_image")
        width, height = image.size
        if width * height > max_pixels:
            raise EvidenceProblem("too_many_pixels")
        image.load()
    except Image.DecompressionBombError:
        raise EvidenceProblem("too_many_pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise EvidenceProblem("not_image") from None
    return image, Image.MIME.get(image.format or "", "application/octet-stream")


def store_photo(data: bytes, data_dir: Path, max_pixels: int = 50_000_000) -> StoredPhoto:
    """Check a photo and keep it in the temporary area; the same bytes twice are stored once."""
    if len(data) > MAX_PHOTO_BYTES:
        raise EvidenceProblem("too_large")
    image, mime = _decode(data, max_pixels)
    with image:
        width, height = image.size
        taken_at, lat, lon = _exif(image)
    digest = hashlib.sha256(data).hexdigest()
    relative = Path(UPLOADS) / digest[:2] / digest
    target = data_dir / relative
    if target.exists():
        target.touch()  # in use again: not purged for another day
    else:
        temporary = target.with_suffix(".part")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_bytes(data)
            temporary.replace(target)
        except OSError as error:
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                raise EvidenceProblem("no_space") from None
            raise
        finally:
            temporary.unlink(missing_ok=True)  # no partial file left behind
    return StoredPhoto(
        sha256=digest,
        path=str(relative),
        size=len(data),
        mime=mime,
        width=width,
        height=height,
        taken_at=taken_at,
        gps_lat=lat,
        gps_lon=lon,
    )


# --------------------------------------------------------------------------- kept, or purged


def keep(data_dir: Path, path: str) -> str | None:
    """The photo at `path` (temporary area) in the evidence folder; returns its new path, or
    None when it is gone (purged: its draft was left open for more than a day).

    A hard link: the same bytes may still be waiting in another person's draft, and the
    temporary name is purged by age anyway. A path outside the temporary area is unchanged."""
    relative = Path(path)
    if relative.parts[:1] != (UPLOADS,) or len(relative.parts) != 3:
        return path
    kept = Path(EVIDENCE, *relative.parts[1:])
    source, target = data_dir / relative, data_dir / kept
    if not target.exists():
        if not source.exists():
            return None
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except OSError:  # a file system without hard links
            partial = target.with_suffix(".part")
            partial.write_bytes(source.read_bytes())
            partial.replace(target)
    return str(kept)


async def keep_report_evidence(session: AsyncSession, report_id: int, data_dir: Path) -> None:
    """A report is being submitted: its photos move out of the temporary area. A photo that
    was purged meanwhile is no evidence any more: its row goes too."""
    rows = await session.exec(select(Evidence).where(Evidence.report_id == report_id))
    for row in rows.all():
        kept = keep(data_dir, row.path)
        if kept is None:
            await session.delete(row)
        elif kept != row.path:
            row.path = kept
            session.add(row)


def purge_uploads(data_dir: Path, now: datetime, keep_for: timedelta = UPLOAD_KEEP) -> int:
    """Delete photos no submitted report claimed within `keep_for`; returns how many."""
    root = data_dir / UPLOADS
    if not root.exists():
        return 0
    cutoff = now.timestamp() - keep_for.total_seconds()
    purged = 0
    for file in root.rglob("*"):
        try:
            if file.is_file() and file.stat().st_mtime < cutoff:
                file.unlink()
                purged += 1
        except FileNotFoundError:  # another worker purged it first
            continue
    return purged


# --------------------------------------------------------------------------- the quota


async def _received_since(
    session: AsyncSession, user: User, since: datetime
) -> list[tuple[datetime, dict]]:
    rows = await session.exec(
        select(AuditLog.at, AuditLog.detail).where(
            AuditLog.action == RECEIVED,
            AuditLog.actor_user_id == user.id,
            col(AuditLog.at) >= to_db(since),
        )
    )
    return [(from_db(at), detail) for at, detail in rows.all()]


async def check_quota(
    session: AsyncSession, user: User, limits: UploadLimits, now: datetime, size: int
) -> None:
    """Raise `quota_files` or `quota_bytes` when one more upload of `size` bytes is too many."""
    last_day = await _received_since(session, user, now - timedelta(days=1))
    hour_ago = now - timedelta(hours=1)
    if sum(1 for at, _detail in last_day if at >= hour_ago) >= limits.files_per_hour:
        raise EvidenceProblem("quota_files")
    if sum(int(detail.get("size", 0)) for _at, detail in last_day) + size > limits.bytes_per_day:
        raise EvidenceProblem("quota_bytes")


async def record_received(
    session: AsyncSession, user: User, subject: str, photo: StoredPhoto, now: datetime
) -> None:
    """The audit row of an accepted upload (what `check_quota` counts)."""
    session.add(
        AuditLog(
            action=RECEIVED,
            subject=subject,
            actor_user_id=user.id,
            at=to_db(now),
            detail={"size": photo.size, "sha256": photo.sha256},
        )
    )
