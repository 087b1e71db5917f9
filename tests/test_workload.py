"""A year of the shipped rules for a commune committee and a village head (tests/helpers/
workload.py): a month fits in one sitting, one reminder message a day at most, none longer
than a phone screen and a half. The figures are in README.md, next to the reminder policy."""

import pytest

from bot.core.config import DEFAULT_FRAMEWORK_DIR
from bot.core.framework import load_framework
from tests.helpers.workload import MEASURED, simulate

YEAR = 2027
MAX_TAPS_A_MONTH = 25  # a commune committee answers its month in a few minutes
MAX_CHARS = 1200
# Tasks in the heaviest month: two-tier communes also carry the district's former tasks.
MAX_TASKS = {"three_tier": 18, "two_tier": 24}
# One tap a task is the floor one at a time: a two-tier commune's January holds 24 tasks, and
# February's first ones are reminded (and answered) on 27/01. "All done" stays far below.
MAX_TAPS_ONE_AT_A_TIME = {"three_tier": MAX_TAPS_A_MONTH, "two_tier": 32}
# Messages a year of a commune committee answering promptly, before the spacing of reminders.
PROMPT_BEFORE = {"three_tier": 40, "two_tier": 43}


@pytest.mark.parametrize("structure", ["three_tier", "two_tier"])
@pytest.mark.parametrize("prompt", [True, False], ids=["answering-promptly", "never-answering"])
async def test_a_year_of_reminders_fits_a_commune_office(structure, prompt):
    framework = load_framework(DEFAULT_FRAMEWORK_DIR, None, structure)
    loads = await simulate(framework, YEAR, prompt, structure=structure)
    commune, village = loads["commune"], loads["village"]
    for who in MEASURED:
        load = loads[who]
        assert load.messages > 0, who
        assert load.busiest_day == 1, who  # never more than one reminder message a day
        assert load.longest <= MAX_CHARS, (who, load.longest, load.longest_text)
    # The commune's ongoing work is quarterly, spread over the quarter: about half of the 33
    # tasks a month the monthly rule gave it.
    assert 5 <= commune.max_tasks <= MAX_TASKS[structure]
    assert village.max_tasks <= 6
    if not prompt:
        # Never answering: no more messages than when every task was due on the 25th (98 a
        # year; reminders.yaml `min_days_between` makes overlapping ladders one), and every
        # miss still reaches the supervisor.
        assert commune.messages <= 98 and commune.max_month <= 10
        # Its villages never answer either: the commune hears of their late tasks, apart.
        assert commune.notices > 0 and village.notices == 0
        assert village.messages <= 40 and village.max_month <= 5
        for load in (commune, village):
            assert load.missed > 0 and load.escalated == load.missed
    if prompt:
        assert commune.messages <= PROMPT_BEFORE[structure]  # no more than before spacing
        assert commune.max_taps <= MAX_TAPS_A_MONTH
        assert village.max_taps <= commune.max_taps
        # Answering at once, nothing is ever overdue: no more than a message a week or so.
        assert commune.max_month <= 6 and village.max_month <= 3


@pytest.mark.parametrize("structure", ["three_tier", "two_tier"])
async def test_a_month_answered_one_task_at_a_time_fits_a_commune_office(structure):
    """📋 One at a time under each reminder listing several (handlers/walk.py), a photo for
    every task whose evidence is one, ✅ on each card: still a month in one sitting."""
    framework = load_framework(DEFAULT_FRAMEWORK_DIR, None, structure)
    loads = await simulate(framework, YEAR, True, structure=structure, one_at_a_time=True)
    commune = loads["commune"]
    assert commune.max_taps <= MAX_TAPS_ONE_AT_A_TIME[structure]
    # One tap a task at most, plus opening each walk: a photo is sent, not tapped.
    assert 0 < commune.max_photos <= commune.max_taps
    assert loads["village"].max_taps <= commune.max_taps
