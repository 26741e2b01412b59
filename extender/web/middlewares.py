"""Per-request policy: latency and outcome metrics, and errors turned into clear answers.

Bad input is answered with HTTP 400 and ``{"Error": "<what is wrong>"}``; an unsynced view with
503; a client that hangs up mid-request is counted and logged in one line; anything unexpected
with 500 and a one-line message (the traceback goes to the log only).
The server itself never dies of a request.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from extender import metrics, service
from extender.core import objects
from extender.web import wire

log = logging.getLogger(__name__)

VERBS = {"/filter": "filter", "/prioritize": "prioritize", "/bind": "bind", "/preempt": "preempt"}
OUTCOMES = ("ok", "bad_request", "not_ready", "disconnected", "error")
# The metrics' children, bound once instead of looked up by label values on every call.
_COUNTED = {
    (verb, outcome): metrics.requests.labels(verb, outcome)
    for verb in VERBS.values()
    for outcome in OUTCOMES
}
_TIMED = {verb: metrics.request_seconds.labels(verb) for verb in VERBS.values()}


def _reply(status: int, message: str) -> web.Response:
    return web.Response(body=wire.error(message), status=status, content_type="application/json")


@web.middleware
async def extender_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    verb = VERBS.get(request.path)
    if verb is None:
        return await handler(request)
    started = time.perf_counter()
    outcome = "ok"
    try:
        return await handler(request)
    except (wire.WireError, objects.ObjectError) as exc:
        outcome = "bad_request"
        log.warning("400 %s: %s", request.path, exc)
        return _reply(400, str(exc))
    except service.RequestError as exc:
        outcome = "bad_request"
        log.warning("400 %s: %s", request.path, exc)
        return _reply(400, f"{verb}: {exc}")
    except web.HTTPRequestEntityTooLarge as exc:
        outcome = "bad_request"
        message = f"{verb}: request body too large ({exc.text})"
        log.warning("400 %s: %s", request.path, message)
        return _reply(400, message)
    except service.NotReady as exc:
        outcome = "not_ready"
        return _reply(503, f"{verb}: {exc}")
    except web.HTTPException:
        outcome = "bad_request"
        raise
    except ConnectionResetError as exc:  # the client went away mid-request: nobody to answer
        outcome = "disconnected"
        log.info("%s: client disconnected (%s)", request.path, exc)
        return _reply(400, f"{verb}: connection lost")
    except Exception as exc:
        outcome = "error"
        log.exception("unexpected error answering %s", request.path)
        return _reply(500, f"{verb}: internal error ({type(exc).__name__})")
    finally:
        _COUNTED[verb, outcome].inc()
        _TIMED[verb].observe(time.perf_counter() - started)
