"""Periodic work on the database: planning, reminders, escalation, digests.

May import bot.core only.
"""
