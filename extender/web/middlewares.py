"""Per-request policy: latency and outcome metrics, and errors turned into clear answers.

Bad input is answered with HTTP 400 and ``{"Error": "<what is wrong>"}`` (a body that stalls or
does not decode, too, and its connection is closed after the answer); an unsynced view with
503; a client that hangs up mid-request is counted and logged in one line; anything unexpected
with 500 and a one-line message (the traceback goes to the log only).  Messages are one line
of at most ``MAX_MESSAGE`` characters, whatever the input quoted in them.
The server itself never dies of a request.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from extender import metrics, service
from extender.core import objects
from extender.web import handlers, wire

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
MAX_MESSAGE = 1000


def _one_line(message: str) -> str:
    line = " ".join(message.split())
    return line if len(line) <= MAX_MESSAGE else line[: MAX_MESSAGE - 3] + "..."


def _reply(status: int, message: str) -> web.Response:
    body = wire.error(_one_line(message))
    return web.Response(body=body, status=status, content_type="application/json")


async def _reply_and_close(request: web.Request, message: str) -> web.Response:
    """Answer 400, then close the connection at once instead of reading on (aiohttp would
    otherwise linger up to 10 s for the rest of a body that is not coming)."""
    response = _reply(400, message)
    response.force_close()
    await response.prepare(request)
    await response.write_eof()
    request.protocol.force_close()
    return response


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
        log.warning("400 %s: %s", request.path, _one_line(str(exc)))
        return _reply(400, str(exc))
    except service.RequestError as exc:
        outcome = "bad_request"
        log.warning("400 %s: %s", request.path, _one_line(str(exc)))
        return _reply(400, f"{verb}: {exc}")
    except web.HTTPRequestEntityTooLarge as exc:
        outcome = "bad_request"
        message = f"{verb}: request body too large ({exc.text})"
        log.warning("400 %s: %s", request.path, message)
        return _reply(400, message)
    except handlers.UnreadableBody as exc:
        outcome = "bad_request"
        message = f"{verb}: {exc}"
        log.warning("400 %s: %s; connection closed", request.path, _one_line(message))
        return await _reply_and_close(request, message)
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
    except asyncio.CancelledError:  # how aiohttp ends the handler of a connection it lost
        outcome = "disconnected"
        log.info("%s: client disconnected (handler cancelled)", request.path)
        raise
    except Exception as exc:
        outcome = "error"
        log.exception("unexpected error answering %s", request.path)
        return _reply(500, f"{verb}: internal error ({type(exc).__name__})")
    finally:
        _COUNTED[verb, outcome].inc()
        _TIMED[verb].observe(time.perf_counter() - started)
