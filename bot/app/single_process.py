"""On SQLite one papibot process handles the inbox and drains the outbox: its claims rely on
SQLite letting one writer in at a time and on this process's own queue of writers
(bot/core/db.py, `Database.writer`). A second `papibot run` or `papibot worker` on the same file
would handle a chat's updates out of order and wait on the other's locks, so it is refused here;
several processes need PostgreSQL (README, "Several workers on PostgreSQL").

The guard is an exclusive `flock` on a file next to the database: the operating system lets
go of it when the process ends, however it ends (`kill -9` included), so a restart never finds
a stale lock.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager

from bot.core.config import Settings


class SecondProcessError(Exception):
    """Another papibot process already runs on this SQLite database."""


@contextmanager
def only_process_on_sqlite(settings: Settings, role: str) -> Iterator[None]:
    """Hold the SQLite database's process lock for as long as `papibot <role>` runs
    (PostgreSQL: nothing to hold, any number may run)."""
    path = settings.sqlite_path
    if path is None or str(path) in ("", ":memory:"):
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".process-lock")
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 200, 0).decode(errors="replace").strip()
            raise SecondProcessError(
                f"refusing to start `papibot {role}`: another papibot process "
                f"({holder or 'unknown'}) already runs on the SQLite database {path}; "
                "SQLite allows one process, several need PostgreSQL "
                "(README, Several workers on PostgreSQL)"
            ) from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"papibot {role}, pid {os.getpid()}".encode(), 0)
        yield
    finally:
        os.close(descriptor)  # releases the lock
