"""The load driver's HTTP client (loadtest/posting.py) against a real aiohttp server on loopback:
keep-alive reuse, chunked and closing responses, concurrent calls, connections the server ended."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from loadtest import posting

Serve = Callable[..., Awaitable[TestServer]]


class Recorder:
    """An app answering ``POST /<verb>`` with ``<verb>:<body>``; remembers each call's client
    port (one per connection)."""

    def __init__(self) -> None:
        self.ports: list[int] = []
        self.calls: list[tuple[str, str, bytes]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/chunked", self.chunked)
        app.router.add_post("/close", self.close)
        app.router.add_post("/bad", self.bad)
        app.router.add_post("/{verb}", self.echo)
        return app

    async def _record(self, request: web.Request) -> bytes:
        self.ports.append(request.transport.get_extra_info("peername")[1])  # type: ignore[union-attr]
        body = await request.read()
        self.calls.append(
            (request.match_info.get("verb", request.path), request.content_type, body)
        )
        return body

    async def echo(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        await self.gate.wait()
        return web.Response(body=request.match_info["verb"].encode() + b":" + body)

    async def chunked(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for part in (b'{"a":', b"1", b"}"):
            await response.write(part)
        await response.write_eof()
        return response

    async def close(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.Response(body=b"bye", headers={"Connection": "close"})

    async def bad(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.Response(status=400, body=b'{"Error":"no"}')


@pytest.fixture
async def served(aiohttp_server: Serve) -> AsyncIterator[tuple[Recorder, posting.Client]]:
    recorder = Recorder()
    server = await aiohttp_server(recorder.app(), keepalive_timeout=0.2)
    client = posting.Client(str(server.make_url("")).rstrip("/"))
    yield recorder, client
    client.close()


async def test_calls_in_a_row_share_one_kept_alive_connection(served: Any) -> None:
    recorder, client = served
    for i in range(3):
        assert await client.post("filter", b'{"n":%d}' % i) == (200, b'filter:{"n":%d}' % i)
    assert [c[:2] for c in recorder.calls] == [("filter", "application/json")] * 3
    assert len(set(recorder.ports)) == 1


async def test_a_chunked_answer_arrives_whole(served: Any) -> None:
    _, client = served
    assert await client.post("chunked", b"{}") == (200, b'{"a":1}')
    assert await client.post("filter", b"{}") == (200, b"filter:{}"), "the connection goes on"


async def test_status_and_body_of_an_error_answer_are_returned_as_they_are(served: Any) -> None:
    _, client = served
    assert await client.post("bad", b"{}") == (400, b'{"Error":"no"}')


async def test_a_connection_the_server_closes_is_not_used_again(served: Any) -> None:
    recorder, client = served
    assert await client.post("close", b"{}") == (200, b"bye")
    assert await client.post("filter", b"{}") == (200, b"filter:{}")
    assert len(set(recorder.ports)) == 2


async def test_an_idle_connection_the_server_timed_out_is_replaced(served: Any) -> None:
    recorder, client = served
    await client.post("filter", b"{}")
    await asyncio.sleep(0.5)  # past the server's keep-alive timeout: it closed the connection
    async with asyncio.timeout(5):
        assert await client.post("filter", b"{}") == (200, b"filter:{}")
    assert len(set(recorder.ports)) == 2


async def test_concurrent_calls_each_get_a_connection(served: Any) -> None:
    recorder, client = served
    recorder.gate.clear()  # every answer waits, as gang binds wait at the gate
    calls = [asyncio.create_task(client.post("bind", b"%d" % i)) for i in range(5)]
    while len(recorder.calls) < 5:
        await asyncio.sleep(0.01)
    recorder.gate.set()
    assert await asyncio.gather(*calls) == [(200, b"bind:%d" % i) for i in range(5)]
    assert len(set(recorder.ports)) == 5


async def test_a_response_that_is_not_http_fails_the_call() -> None:
    async def garbage(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SMTP ready\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = posting.Client(f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(ConnectionError, match="bad HTTP response"):
            async with asyncio.timeout(5):
                await client.post("filter", b"{}")
    finally:
        client.close()
        server.close()
        await server.wait_closed()


def test_only_plain_http_urls_are_accepted() -> None:
    with pytest.raises(ValueError, match="plain http"):
        posting.Client("https://127.0.0.1:8443")
