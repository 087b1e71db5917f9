"""Platform adapters (one module per platform) and the sender that drains the outbox.

May import bot.core only; the dispatcher they feed is handed to them by bot.app.
"""
