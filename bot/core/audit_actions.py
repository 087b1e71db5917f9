"""Audit action names that one room writes and another reads back.

Most actions are written once and only read by people (`invite.redeemed`, …) and stay literal
where they are written; a name that code also queries lives here, so both sides agree.
"""

FOLLOWED_UP = "commune.followed_up"  # the district called a commune about its overdue work
