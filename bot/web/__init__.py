"""HTTP pages of the server: the web chat simulator, the landing page, media links.

May import bot.core and bot.channels; never handlers/ or scheduler/.
"""
