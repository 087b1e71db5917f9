"""The conversations, one module per user journey. Channel-neutral: no platform imports."""
