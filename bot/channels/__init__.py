"""Adapters between a platform and the channel-neutral core (one module per platform)."""
