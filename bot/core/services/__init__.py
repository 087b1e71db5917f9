"""Reading and writing the domain: occurrences, people, evidence, the outbox, status.

Part of the core: imports only bot.core.
"""
