"""Schedule rules → periods: keys, windows and due dates."""

from datetime import date

from bot.core.framework.schema import ScheduleRule
from scheduler.periods import periods_between


def rule(**fields) -> ScheduleRule:
    return ScheduleRule(kind="periodic", label="x", timings=["x"], **fields)


def test_monthly_periods_are_due_on_the_due_day():
    periods = periods_between(
        rule(period="monthly", due_day=25), date(2026, 11, 27), date(2027, 1, 28)
    )
    assert [(p.key, p.opens, p.due) for p in periods] == [
        ("2026-12", date(2026, 12, 1), date(2026, 12, 25)),
        ("2027-01", date(2027, 1, 1), date(2027, 1, 25)),
    ]


def test_a_period_still_due_today_is_kept():
    periods = periods_between(
        rule(period="monthly", due_day=25), date(2026, 11, 25), date(2026, 11, 30)
    )
    assert [p.key for p in periods] == ["2026-11"]


def test_quarterly_is_due_in_the_last_month_of_the_quarter():
    periods = periods_between(
        rule(period="quarterly", due_day=20), date(2027, 1, 1), date(2027, 12, 31)
    )
    assert [(p.key, p.due) for p in periods] == [
        ("2027-Q1", date(2027, 3, 20)),
        ("2027-Q2", date(2027, 6, 20)),
        ("2027-Q3", date(2027, 9, 20)),
        ("2027-Q4", date(2027, 12, 20)),
    ]


def test_semiannual_has_two_halves():
    periods = periods_between(
        rule(period="semiannual", due_dates=["06-15", "12-15"]),
        date(2027, 1, 1),
        date(2027, 12, 31),
    )
    assert [(p.key, p.opens, p.due) for p in periods] == [
        ("2027-H1", date(2027, 1, 1), date(2027, 6, 15)),
        ("2027-H2", date(2027, 7, 1), date(2027, 12, 15)),
    ]


def test_school_year_runs_from_september_and_numbers_its_due_dates():
    periods = periods_between(
        rule(period="school_year", due_dates=["10-31", "01-15", "04-30"]),
        date(2026, 9, 1),
        date(2027, 6, 30),
    )
    assert [(p.key, p.opens, p.due) for p in periods] == [
        ("2026-2027.1", date(2026, 9, 1), date(2026, 10, 31)),
        ("2026-2027.2", date(2026, 11, 1), date(2027, 1, 15)),
        ("2026-2027.3", date(2027, 1, 16), date(2027, 4, 30)),
    ]


def test_a_school_year_with_one_due_date_is_named_by_its_years():
    periods = periods_between(
        rule(period="school_year", due_dates=["05-31"]), date(2026, 9, 1), date(2027, 6, 30)
    )
    assert [(p.key, p.due) for p in periods] == [("2026-2027", date(2027, 5, 31))]


def test_annual():
    periods = periods_between(
        rule(period="annual", due_dates=["12-15"]), date(2026, 12, 16), date(2027, 12, 31)
    )
    assert [(p.key, p.due) for p in periods] == [("2027", date(2027, 12, 15))]
