"""Reading request bodies: a body that stalls, does not decode or is declared too large is a
400 that costs neither memory nor a connection for long, and the server goes on answering."""

from __future__ import annotations

import asyncio
import gc
import gzip
import json
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import REGISTRY

from extender.service import ExtenderService
from extender.web import keys, middlewares
from extender.web.app import make_app
from tests import builders

TestClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]
FILTER = json.dumps(builders.extender_args(builders.make_pod("p"), ["node1"])).encode()
# Bounds how long a test may wait for an answer that must come; never a measured duration.
PATIENCE = 10.0


def bad_requests(verb: str) -> float:
    sample = {"verb": verb, "outcome": "bad_request"}
    return REGISTRY.get_sample_value("muster_requests_total", sample) or 0.0


async def exchange(client: TestClient, head: bytes, body: bytes) -> tuple[bytes, bytes]:
    """Send raw bytes on a fresh connection; return the answer's status line and everything
    received until the server closes the connection (which it must do)."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(head + body)
        await writer.drain()
        received = await asyncio.wait_for(reader.read(), PATIENCE)  # read() waits for EOF
    finally:
        writer.close()
    return received.split(b"\r\n", 1)[0], received


def request_head(path: str, length: int, *extra: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: muster", "Content-Type: application/json"]
    lines += [f"Content-Length: {length}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def still_serves(client: TestClient) -> None:
    response = await client.post("/filter", data=FILTER)
    assert response.status == 200
    assert (await response.json())["NodeNames"] == ["node1"]
    assert (await client.get("/healthz")).status == 200


@pytest.fixture
async def quick(aiohttp_client: TestClientFactory, service: ExtenderService) -> TestClient:
    """The app with a body-read timeout of 0.2 s."""
    app = make_app(service)
    app[keys.BODY_READ_TIMEOUT] = 0.2
    return await aiohttp_client(app)


@pytest.mark.parametrize("path", ["/filter", "/prioritize", "/bind", "/preempt"])
async def test_a_body_that_stalls_is_a_400_and_the_connection_is_closed(
    quick: TestClient, path: str
) -> None:
    verb = path[1:]
    before = bad_requests(verb)
    status, received = await exchange(quick, request_head(path, 100_000), b'{"Pod": {"meta')
    assert status == b"HTTP/1.1 400 Bad Request"
    answer = json.loads(received.split(b"\r\n\r\n", 1)[1])
    assert answer == {"Error": f"{verb}: the body did not arrive within 0.2 s"}
    assert b"Connection: close" in received
    assert bad_requests(verb) == before + 1
    await still_serves(quick)


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_body_that_does_not_decode_is_a_400_and_the_connection_is_closed(
    client: TestClient, encoding: str
) -> None:
    before = bad_requests("filter")
    head = request_head("/filter", 8, f"Content-Encoding: {encoding}")
    status, received = await exchange(client, head, b"not gzip")
    assert status == b"HTTP/1.1 400 Bad Request"
    answer = json.loads(received.split(b"\r\n\r\n", 1)[1])
    assert answer["Error"].startswith("filter: the body could not be read (")
    assert f"content-encoding: {encoding}" in answer["Error"] and "\n" not in answer["Error"]
    assert bad_requests("filter") == before + 1
    await still_serves(client)


async def test_a_gzip_body_that_decodes_is_answered(client: TestClient) -> None:
    response = await client.post(
        "/filter", data=gzip.compress(FILTER), headers={"Content-Encoding": "gzip"}
    )
    assert response.status == 200 and (await response.json())["NodeNames"] == ["node1"]


async def test_a_declared_length_over_the_limit_is_refused_before_the_body_arrives(
    aiohttp_client: TestClientFactory, service: ExtenderService
) -> None:
    """No body byte is sent: the answer can only come from the declared length."""
    client = await aiohttp_client(make_app(service, max_body_bytes=4096))
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(request_head("/filter", 5000))
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), PATIENCE)
        assert status == b"HTTP/1.1 400 Bad Request\r\n"
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), PATIENCE)
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        answer = json.loads(await reader.readexactly(length))
    finally:
        writer.close()
    assert answer["Error"].startswith("filter: request body too large (")
    assert "5000" in answer["Error"]
    await still_serves(client)


async def test_messages_quoting_huge_input_stay_one_short_line(client: TestClient) -> None:
    pod = builders.make_pod(
        "p",
        affinity=builders.node_affinity(
            builders.term(builders.requirement("zone", "Near\n" + "x" * 100_000, "a"))
        ),
    )
    response = await client.post("/filter", json=builders.extender_args(pod, ["node1"]))
    assert response.status == 400
    message = (await response.json())["Error"]
    assert len(message) <= middlewares.MAX_MESSAGE and "\n" not in message
    assert message.startswith("pod.spec.affinity.nodeAffinity.required.nodeSelectorTerms[0]")


def disconnections(verb: str) -> float:
    sample = {"verb": verb, "outcome": "disconnected"}
    return REGISTRY.get_sample_value("muster_requests_total", sample) or 0.0


async def test_an_upload_abandoned_mid_body_leaves_no_buffer_behind(
    service: ExtenderService,
) -> None:
    """When a client hangs up mid-body, aiohttp raises ConnectionResetError into the handler
    and keeps that exception, whose traceback holds the reading frame and with it the partial
    body: a reference cycle that only a full garbage collection frees, which an idle server
    may never run.  With collection off, the partial bodies must be freed all the same.
    Served as ``muster serve`` serves (``web.run_app``'s runner: no handler cancellation; the
    test server cancels the handler instead, which leaves no such cycle)."""
    runner = web.AppRunner(make_app(service))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    uploads, size = 4, 2 * 2**20
    part = request_head("/filter", 4 * size) + b"x" * size
    before = disconnections("filter")
    gc.collect()
    gc.disable()
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        for _ in range(uploads):
            reader, writer = await asyncio.open_connection(host, port)
            held = tracemalloc.get_traced_memory()[0]
            writer.write(part)
            await writer.drain()
            # Until the server holds the part sent (the client's own buffer is drained).
            for _ in range(int(PATIENCE / 0.01)):
                if tracemalloc.get_traced_memory()[0] - held >= size:
                    break
                await asyncio.sleep(0.01)
            writer.close()
            await writer.wait_closed()
        for _ in range(int(PATIENCE / 0.01)):
            if disconnections("filter") == before + uploads:
                break
            await asyncio.sleep(0.01)
        retained = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
        gc.enable()
        await runner.cleanup()
    assert disconnections("filter") == before + uploads
    assert retained < size, f"{retained / 2**20:.1f} MiB still held after {uploads} uploads"
