"""The `papibot` command as an operator uses it: a fresh data directory, real SQLite."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.core.config import DEFAULT_FRAMEWORK_DIR

SAMPLE = DEFAULT_FRAMEWORK_DIR / "units" / "khanh-hoa-2022.csv"


def runner(folder: Path):
    env = {"PAPIBOT_DATA_DIR": str(folder / "data"), "PATH": "/usr/bin:/bin", "HOME": str(folder)}

    def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, "-m", "bot.app.cli", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=folder,
            timeout=120,
        )
        if ok:
            assert result.returncode == 0, result.stderr
        return result

    return run


@pytest.fixture(scope="module")
def initialised_data(tmp_path_factory) -> Path:
    """`papibot init --units <sample>` once per module; each test works on its own copy."""
    folder = tmp_path_factory.mktemp("initialised")
    first = runner(folder)("init", "--units", str(SAMPLE))
    assert "59 new" in first.stdout and "created 599" in first.stdout
    return folder / "data"


@pytest.fixture
def papibot(tmp_path: Path):
    return runner(tmp_path)


@pytest.fixture
def initialised(tmp_path: Path, initialised_data: Path):
    shutil.copytree(initialised_data, tmp_path / "data")
    return runner(tmp_path)


def test_init_twice_changes_nothing_the_second_time(initialised):
    second = initialised("init", "--units", str(SAMPLE))
    assert "tasks: 0 new, 0 updated, 0 retired" in second.stdout
    assert "created 0, updated 0, unchanged 599" in second.stdout


def test_plan_twice_inserts_nothing_the_second_time(initialised):
    papibot = initialised
    first = papibot("plan", "--today", "2026-11-27")
    created = int(first.stdout.split()[0])
    assert created > 10_000
    second = papibot("plan", "--today", "2026-11-27")
    assert second.stdout.startswith("0 occurrences created")
    status = json.loads(papibot("status", "--json").stdout)
    assert len(status) == created
    assert {"unit_code", "task_key", "period", "due_at", "status"} <= set(status[0])


def test_framework_list_json_has_every_task_with_its_fields(papibot):
    tasks = json.loads(papibot("framework", "list", "--json").stdout)
    assert len(tasks) == 59
    assert len({t["dimension"] for t in tasks}) == 8
    for field in (
        "key",
        "dimension",
        "sub_dimension",
        "task",
        "title",
        "methods",
        "supervisor",
        "executors",
        "roles",
        "timing",
        "schedule",
        "evidence",
    ):
        assert all(field in t for t in tasks), field


def test_a_malformed_csv_row_names_the_line_and_changes_nothing(initialised, tmp_path):
    papibot = initialised
    bad = tmp_path / "units.csv"
    bad.write_text(
        "code,name,level,parent_code\nX1,Thôn mới,village,22333\nX2,Thôn lỗi,village\n",
        encoding="utf-8",
    )
    result = papibot("units", "import", str(bad), ok=False)
    assert result.returncode == 2
    assert "units.csv:3" in result.stderr
    listed = json.loads(papibot("units", "list", "--json").stdout)
    assert "X1" not in {u["code"] for u in listed}


def test_a_unit_whose_parent_does_not_exist_is_refused(papibot, tmp_path):
    papibot("init")
    bad = tmp_path / "orphans.csv"
    bad.write_text("code,name,level,parent_code\nT9,Thôn 9,village,99999\n", encoding="utf-8")
    result = papibot("units", "import", str(bad), ok=False)
    assert result.returncode == 2
    assert "orphans.csv:2" in result.stderr and "parent_code" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_yaml_task_with_an_unknown_role_is_refused(papibot, tmp_path):
    overrides = tmp_path / "province"
    overrides.mkdir()
    (overrides / "tasks.yaml").write_text(
        "tasks:\n  - key: cong-khai-danh-sach-ho-ngheo\n    roles: [village_head2]\n",
        encoding="utf-8",
    )
    result = subprocess.run(
        [sys.executable, "-m", "bot.app.cli", "framework", "validate"],
        capture_output=True,
        text=True,
        env={
            "PAPIBOT_FRAMEWORK_OVERRIDES": str(overrides),
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
        },
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 2
    assert "tasks.yaml" in result.stderr
    assert "cong-khai-danh-sach-ho-ngheo" in result.stderr
    assert "village_head2" in result.stderr


def test_invite_prints_a_code_and_a_deep_link(initialised):
    papibot = initialised
    result = papibot(
        "invite", "--unit", "22333-T1", "--role", "village_head", "--telegram-bot", "papi_bot"
    )
    code = result.stdout.split("code: ")[1].split()[0]
    assert len(code) == 8
    assert f"https://t.me/papi_bot?start={code}" in result.stdout


def test_invite_for_a_role_of_another_level_is_refused(initialised):
    papibot = initialised
    result = papibot("invite", "--unit", "22333", "--role", "village_head", ok=False)
    assert result.returncode == 2
    assert "village" in result.stderr


def test_events_add_then_plan_creates_the_event_tasks(initialised):
    papibot = initialised
    papibot("events", "add", "--unit", "22333", "--kind", "poverty_review", "--date", "2027-02-01")
    result = papibot("plan", "--today", "2026-11-27")
    assert "1 events planned" in result.stdout
    status = json.loads(papibot("status", "--unit", "22333", "--json").stdout)
    assert any(
        r["task_key"] == "cong-khai-danh-sach-ho-ngheo"
        and r["period"].startswith("poverty_review:")
        for r in status
    )
