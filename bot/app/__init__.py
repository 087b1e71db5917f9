"""The composition root: settings → runtime, server, CLI, demo data, backups.

The only room that may import every other; nothing imports it."""
