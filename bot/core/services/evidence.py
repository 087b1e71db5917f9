"""Photos of evidence: checked to be images, stored once by content (sha256), described."""

from __future__ import annotations

import hashlib
import io
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from PIL import Image, UnidentifiedImageError

MAX_PHOTO_BYTES = 20 * 1024 * 1024  # Telegram bots cannot download more; Zalo allows less
EXIF_DATETIME_ORIGINAL = 0x9003
EXIF_DATETIME = 0x0132
EXIF_IFD = 0x8769
GPS_IFD = 0x8825


class EvidenceProblem(Exception):
    """`too_large` or `not_image`: the person is told, nothing is stored."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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


def store_photo(data: bytes, data_dir: Path) -> StoredPhoto:
    """Check and store a photo; the same bytes twice are stored once."""
    if len(data) > MAX_PHOTO_BYTES:
        raise EvidenceProblem("too_large")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            mime = Image.MIME.get(image.format or "", "application/octet-stream")
            taken_at, lat, lon = _exif(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise EvidenceProblem("not_image") from None
    digest = hashlib.sha256(data).hexdigest()
    relative = Path("evidence") / digest[:2] / digest
    target = data_dir / relative
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_suffix(".part")
        temporary.write_bytes(data)
        temporary.replace(target)
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
