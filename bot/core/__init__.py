"""The domain: settings, database and models, services, framework, i18n, messages, time.

Imports nothing from bot.app, bot.web, bot.channels, handlers or scheduler."""
