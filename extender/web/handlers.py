"""Request handlers: decode the wire message, make one service call, encode the reply."""

from __future__ import annotations

import prometheus_client
from aiohttp import web

from extender import service as service_mod
from extender.web import keys, wire


def _json(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json")


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
    return _json(answer_filter(request.app[keys.SERVICE], await request.read()))


async def prioritize(request: web.Request) -> web.Response:
    return _json(answer_prioritize(request.app[keys.SERVICE], await request.read()))


async def bind(request: web.Request) -> web.Response:
    return _json(await answer_bind(request.app[keys.SERVICE], await request.read()))


async def preempt(request: web.Request) -> web.Response:
    service = request.app[keys.SERVICE]
    args = wire.read_preemption_args(await request.read())
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
