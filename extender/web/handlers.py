"""Request handlers: read the body, decode the wire message, make one service call, encode
the reply."""

from __future__ import annotations

import asyncio

import prometheus_client
from aiohttp import web

from extender import service as service_mod
from extender.settings import Settings
from extender.web import keys, wire

_BODY_READ_TIMEOUT = Settings.body_read_timeout_seconds


class UnreadableBody(Exception):
    """The body did not arrive whole in time, or its ``Content-Encoding`` does not decode.
    Answered with HTTP 400, after which the connection is closed: the rest of the stream
    cannot be trusted, and a stalled client would otherwise keep it open."""


def _json(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json")


async def read_body(request: web.Request) -> bytes:
    """The whole request body, within the app's size limit and body-read timeout.

    A ``Content-Length`` over the limit is refused before any of the body is buffered.  A body
    that stalls is dropped at the timeout with whatever had arrived.  The buffer and the last
    chunk are let go however the read ends: when a client hangs up mid-body, aiohttp keeps the
    ConnectionResetError it raised, whose traceback holds the reading frame; with
    ``request.read()`` that cycle kept the partial body (up to the limit) alive until a full
    garbage collection, which an idle server may never run.
    """
    limit = request.client_max_size
    declared = request.content_length
    if limit and declared is not None and declared > limit:
        raise web.HTTPRequestEntityTooLarge(
            max_size=limit,
            actual_size=declared,
            text=f"Content-Length {declared} is over the limit of {limit} bytes",
        )
    timeout = request.app.get(keys.BODY_READ_TIMEOUT, _BODY_READ_TIMEOUT)
    body, chunk = bytearray(), b""
    try:
        async with asyncio.timeout(timeout):
            while chunk := await request.content.readany():
                body += chunk
                if limit and len(body) > limit:
                    raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(body))
        return bytes(body)
    except TimeoutError:
        raise UnreadableBody(f"the body did not arrive within {timeout:g} s") from None
    except web.RequestPayloadError as exc:
        raise UnreadableBody(f"the body could not be read ({exc})") from None
    finally:
        body.clear()
        chunk = b""


# The verbs' answers from body bytes to body bytes, apart from aiohttp: the handlers below
# wrap them, and the in-process load test (loadtest/inprocess.py) calls them directly.


def answer_filter(service: service_mod.ExtenderService, body: bytes) -> bytes:
    args = wire.read_extender_args(body, "filter")
    pod = service.pod_from_wire(args.pod, spec_key=args.pod_spec_key)
    outcome = service.filter(pod, args.node_names, node_objects=args.node_objects)
    return wire.filter_result(outcome, args)


def answer_prioritize(service: service_mod.ExtenderService, body: bytes) -> bytes:
    args = wire.read_extender_args(body, "prioritize")
    pod = service.pod_from_wire(args.pod, spec_key=args.pod_spec_key)
    scores = service.prioritize(pod, args.node_names, node_objects=args.node_objects)
    return wire.host_priorities(scores)


async def answer_bind(service: service_mod.ExtenderService, body: bytes) -> bytes:
    args = wire.read_binding_args(body)
    try:
        await service.bind(
            namespace=args.pod_namespace, name=args.pod_name, uid=args.pod_uid, node_name=args.node
        )
    except service_mod.BindError as exc:
        return wire.binding_result(str(exc))
    return wire.binding_result()


async def filter_(request: web.Request) -> web.Response:
    return _json(answer_filter(request.app[keys.SERVICE], await read_body(request)))


async def prioritize(request: web.Request) -> web.Response:
    return _json(answer_prioritize(request.app[keys.SERVICE], await read_body(request)))


async def bind(request: web.Request) -> web.Response:
    return _json(await answer_bind(request.app[keys.SERVICE], await read_body(request)))


async def preempt(request: web.Request) -> web.Response:
    service = request.app[keys.SERVICE]
    args = wire.read_preemption_args(await read_body(request))
    pod = service.pod_from_wire(args.pod)
    return _json(wire.preemption_result(service.preempt(pod, args.candidates)))


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def readyz(request: web.Request) -> web.Response:
    problem = request.app[keys.SERVICE].readiness()
    if not problem:
        return web.Response(text="ok")
    return web.Response(text=problem, status=503)


async def metrics(request: web.Request) -> web.Response:
    body = prometheus_client.generate_latest(prometheus_client.REGISTRY)
    return web.Response(body=body, headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST})
