"""Shared test helpers: a seeded papibot world, fake platform servers on loopback."""
