"""The load driver's HTTP client: keep-alive HTTP/1.1 POSTs on asyncio (a
``scheduler_imitation.Poster``), the responses parsed by httptools (llhttp, Node.js's parser).

Why not aiohttp's client, which ``muster demo`` uses: kube-scheduler handles one pod at a time,
so the driver's own time per call lengthens every cycle the load test measures.  aiohttp's
client costs ~0.35 ms of CPU per request on the 2-CPU development VM, this one ~0.11 ms (a Go
client, as kube-scheduler's, is nearer this one).  Through aiohttp's client the ``identical``
scenario (5000 nodes, 5000 pods; medians of six rounds) bound 155 instead of 266 pods/s, filter
took 2.0 instead of 1.0 ms at p50 and the driver 1.6 instead of 0.7 ms of CPU per pod: the
driver, not the extender, would set the pace.  Only the connection bookkeeping is ours.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import httptools


class _Connection(asyncio.Protocol):
    """One connection, one request at a time; httptools calls back as the response arrives."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.body: list[bytes] = []
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.reusable = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        self._fail(ConnectionError(f"connection closed: {exc}"))

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.reusable = False
            self._fail(ConnectionError(f"bad HTTP response: {exc}"))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.reusable = self.parser.should_keep_alive()
        body, self.body = b"".join(self.body), []
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((self.parser.get_status_code(), body))

    def _fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)

    async def request(self, data: bytes) -> tuple[int, bytes]:
        if self.transport is None or self.transport.is_closing():
            raise ConnectionError("connection closed")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        try:
            return await self.waiter
        finally:
            self.waiter = None

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.close()


class Client:
    """POSTs to ``<base_url>/<verb>``, reusing idle connections.  Concurrent requests open more
    connections, without a limit: waiting gang binds each hold one."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the load driver speaks plain http only, not {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self._head = f"Host: {parts.netloc}\r\nContent-Type: application/json\r\n".encode()
        self._idle: list[_Connection] = []

    async def post(self, verb: str, body: bytes) -> tuple[int, bytes]:
        connection = await self._connection()
        request = b"".join(
            (
                b"POST /",
                verb.encode(),
                b" HTTP/1.1\r\n",
                self._head,
                b"Content-Length: ",
                str(len(body)).encode(),
                b"\r\n\r\n",
                body,
            )
        )
        try:
            response = await connection.request(request)
        except BaseException:
            connection.close()
            raise
        if connection.reusable:
            self._idle.append(connection)
        else:
            connection.close()
        return response

    async def _connection(self) -> _Connection:
        """The most recently used idle connection the server has not closed, else a new one."""
        while self._idle:
            connection = self._idle.pop()
            if connection.reusable:
                return connection
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(_Connection, self.host, self.port)
        return protocol

    def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()
