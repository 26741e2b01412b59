"""Read-only views for people: ``GET /debug/queues`` (what the queues hold and why workloads
wait) and ``GET /debug/workloads`` (every workload's status, conditions and requeue state).
JSON, built by the service; nothing here is on the scheduler's path."""

from __future__ import annotations

import orjson
from aiohttp import web

from extender.web import keys


async def queues(request: web.Request) -> web.Response:
    view = request.app[keys.SERVICE].admission.describe()
    return web.Response(
        body=orjson.dumps(view, option=orjson.OPT_INDENT_2), content_type="application/json"
    )


async def workloads(request: web.Request) -> web.Response:
    view = request.app[keys.SERVICE].admission.lifecycle.describe()
    return web.Response(
        body=orjson.dumps({"workloads": view}, option=orjson.OPT_INDENT_2),
        content_type="application/json",
    )
