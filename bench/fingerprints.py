"""Evidence fingerprints: the cost of fingerprinting a photo, and of finding its near duplicates
among a million stored ones (target: ≤ 10 ms a lookup).

    python -m bench.fingerprints [--rows 1000000] [--database sqlite|postgres|both]
                                 [--postgres-url postgresql+asyncpg://…/db]

The table is filled with random 64-bit hashes (uniform bands: real pHashes cluster more, so
the figure is a lower bound for skewed collections), plus copies of the query photos' hashes
with 0–7 bits flipped, so every lookup has something to find. The lookup is the product's own
`near_duplicates` (bot/core/services/fingerprints.py) at the default threshold (7 bits).
Figures are printed as JSON lines and appended to bench/results/results.jsonl.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter
from sqlalchemy import text

from bot.core.db import Database
from bot.core.services.evidence_checks import CheckPolicy
from bot.core.services.fingerprints import bands, fingerprint, near_duplicates

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_MS = 10.0
PG_SCHEMA = "papibot_bench_fingerprints"
CHUNK = 20_000
DDL = (
    "CREATE TABLE image_fingerprints (evidence_id BIGINT PRIMARY KEY, phash BIGINT NOT NULL,"
    " band0 INTEGER NOT NULL, band1 INTEGER NOT NULL, band2 INTEGER NOT NULL,"
    " band3 INTEGER NOT NULL)",
    *(
        f"CREATE INDEX ix_image_fingerprints_band{i} ON image_fingerprints (band{i}, phash, evidence_id)"
        for i in range(4)
    ),
)


def camera_photo(seed: int, size: tuple[int, int]) -> bytes:
    rnd = random.Random(seed)
    image = Image.new("RGB", size, tuple(rnd.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(60):
        x, y = rnd.randrange(size[0]), rnd.randrange(size[1])
        draw.rectangle(
            [x, y, x + rnd.randrange(50, size[0] // 3), y + rnd.randrange(50, size[1] // 3)],
            fill=tuple(rnd.randrange(256) for _ in range(3)),
        )
    buffer = io.BytesIO()
    image.filter(ImageFilter.GaussianBlur(2)).save(buffer, "JPEG", quality=88)
    return buffer.getvalue()


def emit(line: dict) -> None:
    line = {
        "bench": "fingerprints",
        **line,
        "at": datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    line["load_average"] = os.getloadavg()[0]
    text_line = json.dumps(line, ensure_ascii=False)
    print(text_line, flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    with (RESULTS / "results.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(text_line + "\n")


def bench_fingerprint_cost() -> None:
    for size in ((1600, 1200), (4000, 3000)):
        data = camera_photo(1, size)
        times = []
        for _ in range(5):
            started = time.perf_counter()
            fingerprint(data)
            times.append((time.perf_counter() - started) * 1000)
        emit(
            {
                "database": "-",
                "figure": "fingerprint_ms_per_photo",
                "value": round(statistics.median(times), 1),
                "unit": "ms",
                "photo": f"{size[0]}x{size[1]} JPEG, {len(data) // 1024} KB",
            }
        )


def signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


async def fill(db: Database, rows: int, queries: list[int]) -> None:
    rnd = random.Random(42)
    async with db.engine.begin() as connection:
        await connection.execute(text("DROP TABLE IF EXISTS image_fingerprints"))
        for statement in DDL:
            await connection.execute(text(statement))
    insert = text(
        "INSERT INTO image_fingerprints (evidence_id, phash, band0, band1, band2, band3)"
        " VALUES (:e, :p, :b0, :b1, :b2, :b3)"
    )
    evidence_id = 0
    while evidence_id < rows:
        batch = []
        for _ in range(min(CHUNK, rows - evidence_id)):
            evidence_id += 1
            if evidence_id % 1000 == 0:  # a near copy of one of the query photos
                value = queries[(evidence_id // 1000) % len(queries)]
                for bit in rnd.sample(range(64), rnd.randrange(0, 8)):
                    value ^= 1 << bit
            else:
                value = rnd.getrandbits(64)
            b0, b1, b2, b3 = bands(value)
            batch.append(
                {"e": evidence_id, "p": signed(value), "b0": b0, "b1": b1, "b2": b2, "b3": b3}
            )
        async with db.engine.begin() as connection:
            await connection.execute(insert, batch)
    if db.engine.dialect.name == "postgresql":
        # What autovacuum does to a table that has settled: statistics, and the visibility map
        # that lets the probes read the covering indexes alone.
        async with db.engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text("VACUUM ANALYZE image_fingerprints"))
    else:
        async with db.engine.begin() as connection:
            await connection.execute(text("ANALYZE"))


async def bench_lookup(database: str, url: str, rows: int) -> None:
    queries = [fingerprint(camera_photo(seed, (640, 480))).phash for seed in range(20)]
    if database == "postgres":  # a schema of its own, so nothing else in that database is touched
        admin = Database(url)
        async with admin.engine.begin() as connection:
            await connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{PG_SCHEMA}"'))
        await admin.dispose()
        db = Database(url, connect_args={"server_settings": {"search_path": PG_SCHEMA}})
    else:
        db = Database(url)
    try:
        started = time.perf_counter()
        await fill(db, rows, queries)
        fill_seconds = time.perf_counter() - started
        threshold = CheckPolicy().reuse_max_distance
        times, found = [], []
        async with db.session() as session:
            for round_ in range(3):
                for query in queries:
                    began = time.perf_counter()
                    matches = await near_duplicates(session, query, threshold)
                    if round_:  # the first round warms the caches
                        times.append((time.perf_counter() - began) * 1000)
                        found.append(len(matches))
        times.sort()
        p50 = statistics.median(times)
        p95 = times[int(len(times) * 0.95) - 1]
        emit(
            {
                "database": database,
                "figure": "near_duplicate_lookup_ms",
                "value": round(p50, 2),
                "p95": round(p95, 2),
                "unit": "ms",
                "rows": rows,
                "threshold_bits": threshold,
                "matches_per_lookup": round(statistics.mean(found), 1),
                "fill_seconds": round(fill_seconds, 1),
                "target": f"<= {TARGET_MS}",
                "met": p95 <= TARGET_MS,
            }
        )
    finally:
        await db.dispose()


async def main_async(args: argparse.Namespace) -> None:
    bench_fingerprint_cost()
    if args.database in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite+aiosqlite:///{Path(folder) / 'fingerprints.sqlite'}"
            await bench_lookup("sqlite", url, args.rows)
    if args.database in ("postgres", "both"):
        await bench_lookup("postgres", args.postgres_url, args.rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fingerprints", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "PAPIBOT_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
        ),
        help=f"the benchmark fills a table in schema {PG_SCHEMA} of this database",
    )
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
