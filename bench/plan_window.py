"""One national plan from a like start, for before/after pairs (issue 18, bench/README.md).

    python bench/plan_window.py URL [--connections N] [--label L]

`bench_plan`'s steps (clear the window a year after the data's as-of day, plan it, commit, plan
again, clear), with PostgreSQL's table vacuumed and checkpointed first, so each run of a pair
starts from the same state. Run as a file, it plans with the code on PYTHONPATH (a copy of main
for "before"); `--connections` is left out of the call unless given, for code that predates it.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path


def load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


async def run(url: str, kwargs: dict, label: str) -> dict:
    import asyncpg

    from bench.generate import read_meta
    from bench.run import _delete_window, as_of_of, context_for, next_year
    from scheduler.planner import plan

    meta = await read_meta(url)
    with tempfile.TemporaryDirectory() as tmp:
        ctx = context_for(url, Path(tmp))
        today = next_year(as_of_of(meta, ctx.settings.tz).date())
        await _delete_window(ctx, today)
        if url.startswith("postgresql"):
            connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
            await connection.execute("VACUUM ANALYZE occurrences")
            await connection.execute("CHECKPOINT")
            await connection.close()
        before, started = load(), time.perf_counter()
        async with ctx.db.session() as session:
            report = await plan(session, ctx.framework, ctx.settings, today, **kwargs)
            await session.commit()
        first = time.perf_counter() - started
        started = time.perf_counter()
        async with ctx.db.session() as session:
            again = await plan(session, ctx.framework, ctx.settings, today, **kwargs)
            await session.commit()
        second, after = time.perf_counter() - started, load()
        await _delete_window(ctx, today)
        await ctx.db.dispose()
    return {
        "label": label,
        "kw": kwargs,
        "utc": time.strftime("%H:%M:%S", time.gmtime()),
        "load_before": before,
        "load_after": after,
        "inserted": report.inserted,
        "seconds": round(first, 1),
        "occ_per_s": round(report.inserted / first),
        "again_s": round(second, 2),
        "again_inserted": again.inserted,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url")
    parser.add_argument("--connections", type=int)
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    kwargs = {} if args.connections is None else {"connections": args.connections}
    print(json.dumps(asyncio.run(run(args.url, kwargs, args.label))), flush=True)


if __name__ == "__main__":
    main()
