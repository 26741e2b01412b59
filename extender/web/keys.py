"""Typed application keys (aiohttp AppKey) shared by the app factory and the handlers."""

from __future__ import annotations

from aiohttp import web

from extender.service import ExtenderService

SERVICE = web.AppKey("service", ExtenderService)
