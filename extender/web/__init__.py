"""The HTTP adapter: aiohttp handlers for the extender verbs, health and metrics."""
