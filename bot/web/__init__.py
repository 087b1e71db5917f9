"""HTTP pages of the server: the web chat simulator, the landing page, /healthz, media links,
and the dashboard (bot/web/dashboard).

May import bot.core and bot.channels; never handlers/ or scheduler/.
"""
