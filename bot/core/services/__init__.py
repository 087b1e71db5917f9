"""Reads and writes of the domain, shared by the CLI, the handlers and the scheduler."""
