"""Typed application keys (aiohttp AppKey) shared by the app factory and the handlers."""

from __future__ import annotations

from aiohttp import web

from extender.service import ExtenderService

SERVICE = web.AppKey("service", ExtenderService)
BODY_READ_TIMEOUT = web.AppKey("body_read_timeout", float)
"""Seconds a request body may take to arrive (``Settings.body_read_timeout_seconds`` when
unset)."""
