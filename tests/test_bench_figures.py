"""The benchmark's figures say what they measured: a run that did no work is not a "met"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import run


@pytest.fixture
def out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> run.Out:
    monkeypatch.setattr(run, "RESULTS", tmp_path)
    return run.Out("province")


def last_line(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "results.jsonl").read_text().splitlines()[-1])


def test_a_sweep_that_claimed_nothing_is_not_measured_never_met(
    out: run.Out, tmp_path: Path
) -> None:
    out.emit("sweep", "sqlite", "busy_history_ratio", run.measured(0.9, work=0), "ratio")
    line = last_line(tmp_path)
    assert line["status"] == "not measured"
    assert "met" not in line and line["value"] is None


def test_a_sweep_with_work_is_judged_against_its_target(out: run.Out, tmp_path: Path) -> None:
    out.emit("sweep", "sqlite", "busy_history_ratio", run.measured(1.7, work=2000), "ratio")
    line = last_line(tmp_path)
    assert line["met"] is False and line["target"] == "<= 1.5"


def test_postgres_database_names_come_from_the_options(tmp_path: Path) -> None:
    saved = dict(run.PG)
    try:
        run.PG.update(base="postgresql+asyncpg://bench@db.example:6543", prefix="perf_x")
        assert (
            run.dataset_url("postgres", "province", 24)
            == "postgresql+asyncpg://bench@db.example:6543/perf_x_province_m24"
        )
    finally:
        run.PG.update(saved)


def test_the_busy_moment_is_the_data_sets_busiest_reminder_moment() -> None:
    from datetime import datetime

    from bench.generate import BUSY_AFTER, Generator

    generator = Generator.__new__(Generator)
    generator.upcoming = {}
    early, busy = datetime(2026, 11, 17, 8), datetime(2026, 11, 18, 8)
    generator.upcoming[early] = 3
    generator.upcoming[busy] = 9859
    assert generator.busy_moment() == (busy + BUSY_AFTER, 9859)
    empty = Generator.__new__(Generator)
    empty.upcoming = {}
    assert empty.busy_moment() == (None, 0)


def test_a_busysend_run_whose_outbox_never_held_a_claim_is_not_measured(
    out: run.Out, tmp_path: Path
) -> None:
    from bench.busysend import busy_stretch, rate_over

    samples = [(float(t), 12) for t in range(10)]  # never a whole claim of 30 waiting
    start, end = busy_stretch(samples, 30, 0.0, 10.0)
    assert rate_over([1.0, 2.0, 3.0], start, end) is None
    out.emit("busysend", "sqlite", "rate_over_limit", rate_over([1.0], start, end), "ratio")
    line = last_line(tmp_path)
    assert line["status"] == "not measured" and "met" not in line


def test_busysend_measures_the_longest_stretch_the_outbox_always_had_work() -> None:
    from bench.busysend import busy_stretch, delivery_balance, rate_over

    due = [40, 40, 0, 40, 40, 40, 40, 5, 40]  # a gap at 2 s and at 7 s
    samples = [(float(t), n) for t, n in enumerate(due)]
    assert busy_stretch(samples, 30, 0.0, 100.0) == (3.0, 6.0)
    assert busy_stretch(samples, 30, 4.0, 100.0) == (4.0, 6.0), "only while traffic ran"
    sends = [3.0 + n / 29 for n in range(87)]  # 29 a second over the stretch
    assert round(rate_over(sends, 3.0, 6.0), 6) == 29.0
    from collections import Counter

    assert delivery_balance(Counter({1: 2, 2: 1}), Counter({1: 2, 2: 1})) == (0, 0)
    assert delivery_balance(Counter({1: 2, 2: 1}), Counter({1: 1, 2: 3})) == (1, 2)
