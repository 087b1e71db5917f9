"""Periodic work on the database: planning, reminders, escalation, digests."""
