"""Every `papibot` command given malformed input answers in one line and exits 2, never with
a traceback; a closed pipe (`papibot status | head`) ends quietly; `--now` takes a date (at
the job's own time) or a date-time."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.app import cli
from bot.core.config import DEFAULT_FRAMEWORK_DIR

SAMPLE = DEFAULT_FRAMEWORK_DIR / "units" / "khanh-hoa-2022.csv"
TZ = ZoneInfo("Asia/Ho_Chi_Minh")

MALFORMED: list[tuple[str, ...]] = [
    ("nonsense",),
    ("init", "--units", "missing.csv"),
    ("framework", "frobnicate"),
    ("units", "import", "missing.csv"),
    ("units", "import", "--vietnam-provinces"),
    ("units", "import", "--vietnam-provinces", "--province", "abc"),
    ("units", "import", "--vietnam-provinces", "--province", "999"),
    ("units", "list", "--parent", "nope"),
    ("users", "add", "--unit", "nope", "--role", "village_head"),
    ("users", "add", "--unit", "22333-T1", "--role", "village_head2"),
    ("users", "add", "--unit", "22333", "--role", "village_head"),
    ("users", "add", "--unit", "22333-T1", "--role", "village_head", "--channel", "sms"),
    ("users", "list", "--unit", "nope"),
    ("users", "list", "--role", "nope"),
    ("users", "deactivate", "abc"),
    ("users", "deactivate", "-1"),
    ("users", "deactivate", "999999"),
    ("invite", "--unit", "nope", "--role", "village_head"),
    ("invite", "--unit", "22333", "--role", "village_head"),
    ("events", "add", "--unit", "22333", "--kind", "election", "--date", "2026-02-30"),
    ("events", "add", "--unit", "22333", "--kind", "party", "--date", "2026-12-30"),
    ("plan", "--until", "tomorrow"),
    ("plan", "--until", "2000-01-01"),
    ("status", "--status", "finished"),
    ("status", "--task", "no-such-task"),
    ("status", "--unit", "nope"),
    ("sweep", "--now", "tomorrow"),
    ("sweep", "--now", "2026-13-45"),
    ("sweep", "--now", "31/02/2026"),
    ("sweep", "--now", "2026-12-07T25:00"),
    ("digest", "--now", "next monday"),
    ("digest", "--now", "07/12/2026 8h"),
    ("backup", "/proc/no/such/dir/backup.tar.gz"),
    ("restore", "missing.tar.gz"),
    ("run", "--port", "1"),
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cli-bad-input")
    return folder


@pytest.fixture
def operator(data_dir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(data_dir)
    monkeypatch.setenv("PAPIBOT_DATA_DIR", str(data_dir / "data"))
    for name in ("PAPIBOT_DATABASE_URL", "PAPIBOT_TELEGRAM_BOT_USERNAME", "PAPIBOT_ZALO_OA_LINK"):
        monkeypatch.delenv(name, raising=False)
    if not (data_dir / "data" / "papibot.db").exists():
        assert cli.main(["init", "--units", str(SAMPLE)]) == 0

    def run(*argv: str) -> int:
        try:
            return cli.main(list(argv))
        except SystemExit as stop:  # argparse
            return int(stop.code or 0)

    return run


@pytest.mark.parametrize("argv", MALFORMED, ids=" ".join)
def test_a_malformed_command_answers_in_one_line_and_exits_2(
    operator, argv: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    assert operator(*argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("papibot")


def test_a_bad_setting_is_one_line_too(
    operator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    monkeypatch.setenv("PAPIBOT_HTTP_PORT", "eighty")
    assert operator("status") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "HTTP_PORT" in err


def test_an_unreachable_database_is_one_line(
    operator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    monkeypatch.setenv("PAPIBOT_DATABASE_URL", "postgresql+asyncpg://nobody@127.0.0.1:9/none")
    assert operator("status") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot reach the database" in err


def test_a_closed_pipe_ends_without_a_traceback(operator, data_dir: Path) -> None:
    assert operator("plan") == 0  # thousands of rows: more than a pipe holds
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.app.cli", "status"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=data_dir,
        env={
            "PAPIBOT_DATA_DIR": str(data_dir / "data"),
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(Path(__file__).resolve().parents[1]),  # this checkout's code
        },
    )
    assert process.stdout.readline()  # `| head -1`: one line read, then the pipe is closed
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 2
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr


def test_now_takes_a_date_at_the_jobs_own_time_or_a_date_time() -> None:
    eight = datetime(2026, 12, 7, 8, 0, tzinfo=TZ)
    assert cli.parse_moment("2026-12-07", TZ, eight.time()) == eight
    assert cli.parse_moment("07/12/2026", TZ, eight.time()) == eight
    assert cli.parse_moment("2026-12-07T09:15", TZ, eight.time()) == eight.replace(
        minute=15, hour=9
    )
    assert cli.parse_moment("07/12/2026 09:15", TZ, eight.time()) == eight.replace(
        minute=15, hour=9
    )
    utc = cli.parse_moment("2026-12-07T01:00+00:00", TZ, eight.time())
    assert utc == eight  # an offset is kept: 01:00 UTC is 08:00 in Hà Nội


def test_version_status_filters_and_users_list(
    operator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert operator("--version") == 0
    assert capsys.readouterr().out.startswith("papibot ")
    assert operator("plan") == 0
    capsys.readouterr()
    assert operator("status", "--unit", "22333-T1", "--status", "open") == 0
    lines = capsys.readouterr().out.splitlines()
    header, rows = lines[0], lines[1:-1]
    assert "Trạng thái" in header and rows
    assert all(row.rstrip().endswith("chưa xong") for row in rows)  # Vietnamese labels
    starts = {row.index(row.split()[-2]) for row in rows}  # the due column lines up
    assert len(starts) == 1
    assert (
        operator("users", "add", "--unit", "22333-T1", "--role", "village_head", "--name", "An")
        == 0
    )
    assert operator("users", "list", "--unit", "22333") == 0
    listed = capsys.readouterr().out
    assert "Tổ trưởng Tổ dân phố 1" in listed and "An" in listed
    monkeypatch.setenv("PAPIBOT_TELEGRAM_BOT_USERNAME", "papi_bot")
    monkeypatch.setenv("PAPIBOT_ZALO_OA_LINK", "https://zalo.me/1234")
    assert operator("invite", "--unit", "22333-T1", "--role", "village_head") == 0
    out = capsys.readouterr().out
    assert "https://t.me/papi_bot?start=" in out and "https://zalo.me/1234" in out
