"""The conversations, one module per user journey. Channel-neutral: no platform imports.

May import bot.core and scheduler services; never bot.channels, bot.web or bot.app.
"""
