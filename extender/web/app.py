"""The application factory: routes, middlewares, and the lifetime of the background work.

``make_app`` serves both the CLI and the tests.  The background work (the source that keeps the
cluster view current, the queues file poll, the service's housekeeping) runs as supervised tasks
inside the app's cleanup context: they start with the server, a failure of one restarts it
alone, and all are cancelled and awaited when the server stops.  The service's deferred work
(its timers and tasks) starts before the background work and is cancelled after it, before the
closers run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence

from aiohttp import web

from extender import metrics
from extender.service import ExtenderService, background
from extender.web import debug, handlers, keys, middlewares

log = logging.getLogger(__name__)

HOUSEKEEPING_SECONDS = 1.0


def make_app(
    service: ExtenderService,
    *,
    background_work: Mapping[str, background.Run] | None = None,
    closers: Sequence[Callable[[], None]] = (),
    max_body_bytes: int = 32 * 2**20,
) -> web.Application:
    """The app.  At startup the service's deferred work asked for before the loop ran starts
    (``service.start``), then the background work.  At shutdown, after the background work
    has stopped, the service's deferred work is cancelled (``service.close``) and then the
    ``closers`` run (e.g. the API client's worker threads, which that work may still have been
    using)."""
    app = web.Application(middlewares=[middlewares.extender_errors], client_max_size=max_body_bytes)
    app[keys.SERVICE] = service
    app[keys.BODY_READ_TIMEOUT] = service.settings.body_read_timeout_seconds
    app.router.add_post("/filter", handlers.filter_)
    app.router.add_post("/prioritize", handlers.prioritize)
    app.router.add_post("/bind", handlers.bind)
    app.router.add_post("/preempt", handlers.preempt)
    app.router.add_get("/healthz", handlers.healthz)
    app.router.add_get("/readyz", handlers.readyz)
    app.router.add_get("/metrics", handlers.metrics)
    app.router.add_get("/debug/queues", debug.queues)
    app.router.add_get("/debug/workloads", debug.workloads)
    work = {
        "housekeeping": background.every(HOUSEKEEPING_SECONDS, service.housekeep),
        **(background_work or {}),
    }
    app.cleanup_ctx.append(_exporting(service))
    app.cleanup_ctx.append(
        _run_in_background(work, start=service.start, closers=(service.close, *closers))
    )
    return app


def _exporting(service: ExtenderService) -> Callable[[web.Application], AsyncIterator[None]]:
    """The service's gauges are exported while the app serves it."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        stop = metrics.register_service(service.reading)
        yield
        stop()

    return context


def _run_in_background(
    work: Mapping[str, background.Run],
    *,
    start: Callable[[], None],
    closers: Sequence[Callable[[], None]],
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        start()
        tasks = [
            asyncio.create_task(background.supervised(name, run), name=name)
            for name, run in work.items()
        ]
        yield
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for close in closers:
            close()

    return context
