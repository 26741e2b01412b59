"""The application factory: routes, middlewares, and the cluster source's lifetime.

``make_app`` serves both the CLI and the tests.  The source that keeps the cluster view current
(watches, or the simulation) runs as a background task inside the app's cleanup context, so it
starts with the server and is cancelled and awaited when the server stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from aiohttp import web

from extender.service import ExtenderService
from extender.web import debug, handlers, keys, middlewares

log = logging.getLogger(__name__)

SourceRun = Callable[[], Coroutine[Any, Any, None]]


def make_app(
    service: ExtenderService, *, source: SourceRun | None = None, max_body_bytes: int = 64 * 2**20
) -> web.Application:
    app = web.Application(middlewares=[middlewares.extender_errors], client_max_size=max_body_bytes)
    app[keys.SERVICE] = service
    app.router.add_post("/filter", handlers.filter_)
    app.router.add_post("/prioritize", handlers.prioritize)
    app.router.add_post("/bind", handlers.bind)
    app.router.add_post("/preempt", handlers.preempt)
    app.router.add_get("/healthz", handlers.healthz)
    app.router.add_get("/readyz", handlers.readyz)
    app.router.add_get("/metrics", handlers.metrics)
    app.router.add_get("/debug/queues", debug.queues)
    app.router.add_get("/debug/workloads", debug.workloads)
    if source is not None:
        app.cleanup_ctx.append(_run_in_background(source))
    return app


def _run_in_background(
    source: SourceRun,
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(source(), name="cluster-source")
        task.add_done_callback(_report_end)
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return context


def _report_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("cluster source stopped", exc_info=task.exception())
