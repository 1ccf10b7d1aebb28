"""The proxy's HTTP/1.1 relay byte by byte: framing, keep-alive, smuggling, upgrades, timeouts
and backpressure.

Everything runs on real loopback sockets. The add-ons are either an aiohttp server (what most
add-ons look like) or a raw asyncio server whose every byte the test writes, and the client is
a raw connection, so that what goes over the wire is exactly what a test says.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from connect_devloop.proxy import Proxy
from connect_devloop.proxy import relay as proxy_relay
from connect_devloop.proxy.http1 import (
    ChunkedScanner,
    HttpError,
    parse_request_head,
    parse_response_head,
)

from .conftest import EventLog, eventually

MiB = 1024 * 1024
STEP = 10.0  # no single step of a test may take longer than this


# --- a raw client -------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


class Client:
    """One raw client connection to the proxy."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, url: str, *, receive_buffer: int | None = None) -> Client:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        if receive_buffer is None:
            reader, writer = await asyncio.open_connection(host, int(port))
        else:  # a small receive window: a client that cannot take much before it reads
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
            reader, writer = await asyncio.open_connection(sock=sock)
        return cls(reader, writer)

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def head(self) -> tuple[int, dict[str, str]]:
        async with asyncio.timeout(STEP):
            raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        return status, headers

    async def response(self, *, head_request: bool = False) -> Response:
        status, headers = await self.head()
        async with asyncio.timeout(STEP):
            if head_request or status in (204, 304) or status < 200:
                body = b""
            elif headers.get("transfer-encoding", "").lower() == "chunked":
                body = await self._chunked()
            elif "content-length" in headers:
                body = await self.reader.readexactly(int(headers["content-length"]))
            else:
                body = await self.reader.read()
        return Response(status, headers, body)

    async def _chunked(self) -> bytes:
        body = b""
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while await self.reader.readuntil(b"\r\n") != b"\r\n":
                    pass
                return body
            body += await self.reader.readexactly(size)
            await self.reader.readexactly(2)

    async def at_eof(self) -> bool:
        """True when the proxy closed the connection (after what it had sent)."""
        async with asyncio.timeout(STEP):
            return await self.reader.read() == b"" or self.reader.at_eof()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


@contextlib.asynccontextmanager
async def client(proxy: Proxy, **options: Any) -> AsyncIterator[Client]:
    connection = await Client.open(proxy.url, **options)
    try:
        yield connection
    finally:
        await connection.close()


def get(path: str, *extra: str, method: str = "GET", version: str = "1.1") -> bytes:
    lines = [f"{method} {path} HTTP/{version}", "Host: proxy.test", *extra, "", ""]
    return "\r\n".join(lines).encode()


# --- add-ons ------------------------------------------------------------------------------------


@dataclass
class Addon:
    url: str
    seen: list[dict[str, Any]] = field(default_factory=list)
    upload_gate: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def connections(self) -> int:
        """How many connections the add-on was asked on (one per client port it saw)."""
        return len({request["peer_port"] for request in self.seen})


@pytest.fixture
async def addon() -> AsyncIterator[Addon]:
    """An aiohttp add-on that records what it received."""
    record = Addon(url="")

    def note(request: web.Request, body: bytes) -> dict[str, Any]:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        entry = {
            "method": request.method,
            "raw_path": request.raw_path,
            "version": f"{request.version.major}.{request.version.minor}",
            "headers": dict(request.headers),
            "body_length": len(body),
            "sha": hashlib.sha256(body).hexdigest(),
            "peer_port": peer[1] if peer else None,
        }
        record.seen.append(entry)
        return entry

    async def echo(request: web.Request) -> web.Response:
        return web.json_response(note(request, await request.read()))

    async def hello(request: web.Request) -> web.Response:
        note(request, b"")
        return web.Response(text="hello")

    async def no_content(request: web.Request) -> web.Response:
        note(request, b"")
        return web.Response(status=204)

    async def not_modified(request: web.Request) -> web.Response:
        note(request, b"")
        return web.Response(status=304, headers={"ETag": '"v1"'})

    async def big(request: web.Request) -> web.Response:
        note(request, b"")
        return web.Response(body=pattern(int(request.match_info["size"])))

    async def upload(request: web.Request) -> web.Response:
        await record.upload_gate.wait()  # the body waits: the proxy must not take it all in
        digest, length = hashlib.sha256(), 0
        while chunk := await request.content.read(256 * 1024):
            digest.update(chunk)
            length += len(chunk)
        return web.json_response({"length": length, "sha": digest.hexdigest()})

    async def drip(request: web.Request) -> web.StreamResponse:
        note(request, b"")
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            for _ in range(200):
                await response.write(b"drop\n")
                await asyncio.sleep(0.02)
        return response

    async def websocket(request: web.Request) -> web.WebSocketResponse:
        note(request, b"")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                await ws.send_str(f"echo: {message.data}")
            elif message.type == aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(message.data[::-1])
        return ws

    app = web.Application(client_max_size=64 * MiB)
    app.router.add_get("/hello", hello)
    app.router.add_get("/no-content", no_content)
    app.router.add_get("/not-modified", not_modified)
    app.router.add_get("/big/{size}", big)
    app.router.add_post("/upload", upload)
    app.router.add_get("/drip", drip)
    app.router.add_get("/ws", websocket)
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    record.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield record
    record.upload_gate.set()
    await runner.cleanup()


Reader = asyncio.StreamReader
Handler = Callable[[int, Reader, asyncio.StreamWriter], Awaitable[None]]


class RawAddon:
    """An add-on whose bytes the test writes: ``handle(index, reader, writer)`` runs for each
    connection the proxy opens; what each connection received is kept in ``received``."""

    def __init__(self, handle: Handler) -> None:
        self.handle = handle
        self.received: list[bytearray] = []
        self.url = ""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def connections(self) -> int:
        return len(self.received)

    async def __aenter__(self) -> RawAddon:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        index = len(self.received)
        self.received.append(bytearray())
        recording = Recording(reader, self.received[index])
        try:
            await self.handle(index, recording, writer)  # type: ignore[arg-type]
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            self._tasks.discard(task)


class Recording:
    """A StreamReader that keeps a copy of everything read through it."""

    def __init__(self, reader: asyncio.StreamReader, into: bytearray) -> None:
        self._reader = reader
        self._into = into

    async def readuntil(self, separator: bytes) -> bytes:
        data = await self._reader.readuntil(separator)
        self._into += data
        return data

    async def readexactly(self, n: int) -> bytes:
        data = await self._reader.readexactly(n)
        self._into += data
        return data

    async def read(self, n: int = -1) -> bytes:
        data = await self._reader.read(n)
        self._into += data
        return data


async def read_request(reader: asyncio.StreamReader) -> tuple[str, bytes]:
    """A request head (its first line) and its Content-Length body."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    length = 0
    for line in head.split("\r\n"):
        if line.lower().startswith("content-length:"):
            length = int(line.split(":", 1)[1])
    body = await reader.readexactly(length) if length else b""
    return head.split("\r\n")[0], body


def ok(body: bytes = b"ok", *extra: str) -> bytes:
    head = ["HTTP/1.1 200 OK", f"Content-Length: {len(body)}", *extra, "", ""]
    return "\r\n".join(head).encode() + body


def pattern(size: int) -> bytes:
    return (bytes(range(256)) * (size // 256 + 1))[:size]


@pytest.fixture
async def proxy(addon: Addon, events: EventLog) -> AsyncIterator[Proxy]:
    proxy = Proxy(addon.url, events, port=0)
    await proxy.start()
    yield proxy
    await proxy.close()


@contextlib.asynccontextmanager
async def proxy_to(url: str, events: EventLog, **options: Any) -> AsyncIterator[Proxy]:
    proxy = Proxy(url, events, port=0, **options)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()


def relay(proxy: Proxy) -> proxy_relay.Relay:
    assert proxy._relay is not None
    return proxy._relay


# --- keep-alive and the pool --------------------------------------------------------------------


async def test_keep_alive_reuses_the_client_and_the_addon_connection(
    proxy: Proxy, addon: Addon
) -> None:
    async with client(proxy) as one:
        for n in range(5):
            one.send(get(f"/echo/{n}"))
            response = await one.response()
            assert response.status == 200
            assert json.loads(response.body)["raw_path"] == f"/echo/{n}"
    async with client(proxy) as two:  # another client: the pooled add-on connection again
        two.send(get("/echo/again"))
        assert (await two.response()).status == 200
    assert len(addon.seen) == 6
    assert addon.connections == 1
    assert relay(proxy).connections_opened == 1


async def test_pipelined_requests_are_answered_in_order(proxy: Proxy) -> None:
    async with client(proxy) as one:
        one.send(get("/a") + get("/b", "Content-Length: 3", method="POST") + b"xyz" + get("/c"))
        paths = [json.loads((await one.response()).body)["raw_path"] for _ in range(3)]
    assert paths == ["/a", "/b", "/c"]


async def test_the_pool_never_has_two_requests_in_flight_on_one_connection(
    events: EventLog,
) -> None:
    overlaps: list[int] = []

    async def handle(index: int, reader: Reader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            # Anything more on this connection before we answer would be a second request
            # sent while this one is in flight.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.005):
                    if await reader.read(1):
                        overlaps.append(index)
            writer.write(ok())

    async with RawAddon(handle) as raw, proxy_to(raw.url, events) as proxy:

        async def one_client(n: int) -> list[int]:
            async with client(proxy) as connection:
                statuses = []
                for _ in range(4):  # pipelined by three, as a browser never does but may
                    connection.send(get(f"/{n}") * 3)
                    statuses += [(await connection.response()).status for _ in range(3)]
                return statuses

        results = await asyncio.gather(*(one_client(n) for n in range(20)))
    assert all(status == 200 for statuses in results for status in statuses)
    assert overlaps == []
    assert raw.connections <= 20


async def test_a_kept_alive_connection_closed_by_the_addon_is_retried_only_for_get(
    events: EventLog,
) -> None:
    async def handle(index: int, reader: Reader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(ok(f"connection {index}".encode()))
        await read_request(reader)  # the next request on this connection: hang up on it

    async with RawAddon(handle) as raw, proxy_to(raw.url, events) as proxy, client(proxy) as one:
        one.send(get("/first"))
        assert (await one.response()).body == b"connection 0"
        one.send(get("/second"))  # sent on connection 0, which closes: sent again on 1
        assert (await one.response()).body == b"connection 1"
        one.send(get("/third", "Content-Length: 1", method="POST") + b"x")
        response = await one.response()  # a POST is not repeated: the add-on may have acted
        assert response.status == 502
        assert b"closed the connection without an answer" in response.body
    assert raw.connections == 2


CLOSE_WAIT = "08"  # the state column of /proc/net/tcp: the peer closed, this side has not


def sockets_in_close_wait(port: int) -> int:
    """This machine's TCP sockets on local ``port`` that wait for us to close them."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table, encoding="ascii") as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == CLOSE_WAIT:
                    count += 1
    return count


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="reads Linux's /proc/net/tcp")
async def test_clients_that_went_away_leave_no_socket_in_close_wait(events: EventLog) -> None:
    """Idle kept-alive clients, a client waiting for an add-on that never answers, one that
    leaves in the middle of a slow response, and one that half-closes after its request: the
    proxy closes both sides at once, not when the add-on finally answers (minutes later)."""
    hung: list[int] = []

    async def handle(index: int, reader: Reader, writer: asyncio.StreamWriter) -> None:
        while True:
            line, _ = await read_request(reader)
            if line.startswith("GET /slow "):  # never answers
                hung.append(index)
                await reader.read()
                return
            if line.startswith("GET /drip "):  # the head and a little, then nothing
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                writer.write(b"5\r\ndrop\n\r\n")
                hung.append(index)
                await reader.read()
                return
            writer.write(ok())

    async with RawAddon(handle) as raw, proxy_to(raw.url, events) as proxy:
        clients = [await Client.open(proxy.url) for _ in range(6)]
        for idle in clients[:3]:
            idle.send(get("/hello"))
            assert (await idle.response()).status == 200
        clients[3].send(get("/slow"))
        clients[4].send(get("/drip"))
        assert (await clients[4].head())[0] == 200
        clients[5].send(get("/slow"))
        await eventually(lambda: len(hung) == 3)
        clients[5].writer.write_eof()  # half-closed: it sent all it will
        assert await clients[5].at_eof()
        assert sockets_in_close_wait(proxy.port) == 0
        for gone in clients[:5]:
            await gone.close()
        await eventually(lambda: sockets_in_close_wait(proxy.port) == 0, timeout=2)
        await eventually(lambda: not relay(proxy).clients and not relay(proxy).upstreams, 2)
        served = sorted((e.path, e.status) for e in events.of("request"))  # type: ignore[attr-defined]
        assert served == [("/drip", 499), ("/hello", 200), ("/hello", 200), ("/hello", 200),
                          ("/slow", 499), ("/slow", 499)]  # fmt: skip
        await clients[5].close()


# --- bodies and framing -------------------------------------------------------------------------


async def test_a_chunked_request_body_reaches_the_addon_byte_for_byte(events: EventLog) -> None:
    body = b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"

    async def handle(index: int, reader: Reader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await reader.readuntil(b"X-Trailer: t\r\n\r\n")
        writer.write(ok())

    async with RawAddon(handle) as raw, proxy_to(raw.url, events) as proxy, client(proxy) as one:
        head = get("/upload", "Transfer-Encoding: chunked", method="POST")
        one.send(head + body[:9])  # the body in pieces, split inside a size line
        await asyncio.sleep(0.01)
        one.send(body[9:30])
        await asyncio.sleep(0.01)
        one.send(body[30:])
        assert (await one.response()).status == 200
    received = bytes(raw.received[0])
    forwarded_head, _, forwarded_body = received.partition(b"\r\n\r\n")
    assert forwarded_body == body
    assert b"\r\nTransfer-Encoding: chunked\r\n" in forwarded_head + b"\r\n"


async def test_a_streamed_chunked_upload_arrives_whole(proxy: Proxy, addon: Addon) -> None:
    data = pattern(3 * MiB + 5)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 100_000):
            yield data[start : start + 100_000]

    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{proxy.url}/echo", data=chunks()) as response,
    ):
        echoed = await response.json()
    assert echoed["body_length"] == len(data)
    assert echoed["sha"] == hashlib.sha256(data).hexdigest()
    assert echoed["headers"]["Transfer-Encoding"] == "chunked"


async def test_head_204_and_304_have_no_body_and_keep_the_connection_in_step(
    proxy: Proxy,
) -> None:
    async with client(proxy) as one:
        one.send(get("/hello", method="HEAD"))
        head = await one.response(head_request=True)
        assert (head.status, head.headers["content-length"]) == (200, "5")
        one.send(get("/no-content"))
        assert (await one.response()).status == 204
        one.send(get("/not-modified"))
        not_modified = await one.response()
        assert (not_modified.status, not_modified.headers["etag"]) == (304, '"v1"')
        one.send(get("/hello"))  # had a body crept in above, this would read it as a response
        hello = await one.response()
        assert (hello.status, hello.body) == (200, b"hello")


async def test_expect_100_continue_is_relayed_before_the_body(proxy: Proxy) -> None:
    async with client(proxy) as one:
        one.send(get("/echo", "Content-Length: 11", "Expect: 100-continue", method="POST"))
        status, _ = await one.head()
        assert status == 100  # from the add-on, before the body was sent
        one.send(b"hello world")
        response = await one.response()
        assert response.status == 200
        assert json.loads(response.body)["body_length"] == 11


async def test_http10_gets_its_answer_then_the_connection_closes(
    proxy: Proxy, addon: Addon
) -> None:
    async with client(proxy) as one:
        one.send(b"GET /echo HTTP/1.0\r\n\r\n")
        response = await one.response()
        assert response.status == 200
        assert response.headers["connection"] == "close"
        assert await one.at_eof()
    assert addon.seen[0]["version"] == "1.0"


async def test_connection_close_from_a_client_closes_after_the_answer(proxy: Proxy) -> None:
    async with client(proxy) as one:
        one.send(get("/echo", "Connection: close"))
        response = await one.response()
        assert (response.status, response.headers["connection"]) == (200, "close")
        assert await one.at_eof()


async def test_hop_by_hop_headers_stop_at_the_proxy_both_ways(events: EventLog) -> None:
    async def handle(index: int, reader: Reader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            ok(b"ok", "Connection: X-Drop", "X-Drop: 1", "Keep-Alive: timeout=5", "X-Keep: 2")
        )

    async with RawAddon(handle) as raw, proxy_to(raw.url, events) as proxy, client(proxy) as one:
        one.send(
            get(
                "/x",
                "Connection: keep-alive, X-Secret",
                "X-Secret: 1",
                "Keep-Alive: 300",
                "TE: trailers",
                "Proxy-Authorization: Basic eDp5",
                "X-Kept: yes",
            )
        )
        response = await one.response()
    forwarded = bytes(raw.received[0]).decode().lower()
    for gone in ("x-secret", "keep-alive", "te:", "proxy-authorization", "connection"):
        assert gone not in forwarded
    assert "x-kept: yes" in forwarded
    assert "x-forwarded-for: 127.0.0.1" in forwarded
    assert "host: 127.0.0.1:" in forwarded
    assert response.headers["x-keep"] == "2"
    for gone in ("x-drop", "keep-alive", "connection"):
        assert gone not in response.headers


async def test_websocket_upgrade_round_trip(proxy: Proxy, events: EventLog) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{proxy.url}/ws") as ws,
    ):
        await ws.send_str("ping")
        assert (await ws.receive(timeout=STEP)).data == "echo: ping"
        await ws.send_bytes(b"abc")
        assert (await ws.receive(timeout=STEP)).data == b"cba"
    request = await events.wait_event("request")
    assert (request.path, request.status) == ("/ws", 101)  # type: ignore[attr-defined]


# --- what is refused ----------------------------------------------------------------------------

SMUGGLING = {
    "both Transfer-Encoding and Content-Length": get(
        "/echo", "Content-Length: 5", "Transfer-Encoding: chunked", method="POST"
    )
    + b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    "two different Content-Lengths": get(
        "/echo", "Content-Length: 5", "Content-Length: 40", method="POST"
    )
    + b"hello"
    + get("/smuggled"),
    "a Content-Length list that disagrees": get("/echo", "Content-Length: 5, 40", method="POST")
    + b"hello",
    "a bad chunk size": get("/echo", "Transfer-Encoding: chunked", method="POST")
    + b"zz\r\nhello\r\n0\r\n\r\n",
    "chunk data longer than its size": get("/echo", "Transfer-Encoding: chunked", method="POST")
    + b"2\r\nhello\r\n0\r\n\r\n",
    "a transfer coding other than chunked": get(
        "/echo", "Transfer-Encoding: gzip, chunked", method="POST"
    )
    + b"0\r\n\r\n",
    "Transfer-Encoding in HTTP/1.0": b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"0\r\n\r\n",
    "a space before the colon": get("/echo", "Content-Length : 5", method="POST") + b"hello",
    "a folded header": get("/echo", "X-A: 1", " folded", method="POST"),
    "a bare LF in a header": b"GET /echo HTTP/1.1\r\nHost: x\nX-A: 1\r\n\r\n",
    "no Host": b"GET /echo HTTP/1.1\r\nX-A: 1\r\n\r\n",
    "two Hosts": get("/echo", "Host: other.test"),
    "a malformed request line": b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",
}


@pytest.mark.parametrize("attempt", SMUGGLING.values(), ids=SMUGGLING.keys())
async def test_ambiguous_requests_get_400_and_never_reach_the_addon(
    proxy: Proxy, addon: Addon, attempt: bytes
) -> None:
    async with client(proxy) as one:
        one.send(attempt)
        response = await one.response()
        assert response.status == 400
        assert await one.at_eof()
    assert addon.seen == []
    assert relay(proxy).connections_opened == 0


async def test_an_unsupported_http_version_is_505(proxy: Proxy, addon: Addon) -> None:
    async with client(proxy) as one:
        one.send(b"GET / HTTP/2.0\r\nHost: x\r\n\r\n")
        assert (await one.response()).status == 505
    assert addon.seen == []


async def test_a_huge_head_is_431(proxy: Proxy, addon: Addon) -> None:
    async with client(proxy) as one:
        one.send(get("/echo", "X-Big: " + "a" * (70 * 1024)))
        assert (await one.response()).status == 431
        assert await one.at_eof()
    async with client(proxy) as two:  # one that never ends is cut at the limit too
        two.send(b"GET /echo HTTP/1.1\r\nX-Endless: " + b"a" * (80 * 1024))
        assert (await two.response()).status == 431
    assert addon.seen == []


# --- things going wrong mid-way -----------------------------------------------------------------


async def test_an_addon_that_closes_mid_body_closes_the_client_connection(
    events: EventLog,
) -> None:
    async def handle(index: int, reader: Reader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        if index == 0:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
            await writer.drain()
        else:
            writer.write(ok(b"fine"))
            await read_request(reader)

    async with RawAddon(handle) as raw, proxy_to(raw.url, events) as proxy:
        async with client(proxy) as one:
            one.send(get("/cut"))
            status, headers = await one.head()
            assert (status, headers["content-length"]) == (200, "100")
            with pytest.raises(asyncio.IncompleteReadError) as cut:
                async with asyncio.timeout(STEP):
                    await one.reader.readexactly(100)
            assert cut.value.partial == b"x" * 10
        event = await events.wait_event("request")
        assert (event.path, event.status) == ("/cut", 200)  # type: ignore[attr-defined]
        async with client(proxy) as two:  # the proxy itself is fine
            two.send(get("/next"))
            assert (await two.response()).body == b"fine"


async def test_an_addon_that_never_answers_gets_502_after_the_upstream_timeout(
    events: EventLog,
) -> None:
    async def handle(index: int, reader: Reader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(STEP * 2)

    async with (
        RawAddon(handle) as raw,
        proxy_to(raw.url, events, upstream_timeout=0.3) as proxy,
        client(proxy) as one,
    ):
        one.send(get("/slow"))
        response = await one.response()
    assert response.status == 502
    assert b"did not answer (no answer within 0.3 s)" in response.body


async def test_a_client_that_leaves_mid_response_is_reported_as_499(
    proxy: Proxy, events: EventLog
) -> None:
    async with client(proxy) as one:
        one.send(get("/drip"))
        status, _ = await one.head()
        assert status == 200
        await one.reader.readexactly(10)
    event = await events.wait_event("request")
    assert (event.path, event.status) == ("/drip", 499)  # type: ignore[attr-defined]
    # The add-on connection of a cut response closes.
    await eventually(lambda: not relay(proxy).upstreams)


# --- large bodies and backpressure --------------------------------------------------------------


async def most_held(proxy: Proxy, paused: Callable[[], bool]) -> int:
    """The most the proxy held in memory until reading from one side paused, and 0.3 s on."""
    most = 0
    async with asyncio.timeout(STEP):
        while not paused():
            most = max(most, relay(proxy).held_bytes())
            await asyncio.sleep(0.005)
    for _ in range(30):
        assert paused(), "it stays paused while the other side does not read"
        most = max(most, relay(proxy).held_bytes())
        await asyncio.sleep(0.01)
    return most


async def test_a_large_upload_to_a_slow_addon_is_held_back_not_buffered(
    proxy: Proxy, addon: Addon
) -> None:
    data = pattern(16 * MiB)
    async with client(proxy) as one:
        one.send(get("/upload", f"Content-Length: {len(data)}", method="POST") + data)
        # The add-on does not read yet: reading from the client must pause.
        held = await most_held(proxy, lambda: any(c._paused for c in relay(proxy).clients))
        addon.upload_gate.set()
        response = await one.response()
    assert held < 2 * MiB
    assert json.loads(response.body) == {
        "length": len(data),
        "sha": hashlib.sha256(data).hexdigest(),
    }


async def test_a_large_download_to_a_slow_client_is_held_back_not_buffered(
    proxy: Proxy,
) -> None:
    size = 16 * MiB
    async with client(proxy, receive_buffer=32 * 1024) as one:
        one.send(get(f"/big/{size}"))
        status, headers = await one.head()
        assert (status, headers["content-length"]) == (200, str(size))
        # The client does not read: reading from the add-on must pause.
        held = await most_held(proxy, lambda: any(u.paused for u in relay(proxy).upstreams))
        async with asyncio.timeout(STEP * 3):
            body = await one.reader.readexactly(size)
    assert held < 2 * MiB
    assert body == pattern(size)


async def test_large_bodies_both_ways_on_one_connection(proxy: Proxy, addon: Addon) -> None:
    addon.upload_gate.set()
    data = pattern(8 * MiB + 3)
    async with client(proxy) as one:
        for _ in range(2):
            one.send(get("/upload", f"Content-Length: {len(data)}", method="POST") + data)
            assert json.loads((await one.response()).body)["length"] == len(data)
            one.send(get(f"/big/{len(data)}"))
            assert (await one.response()).body == data
    assert addon.connections == 1


# --- the parser on its own ----------------------------------------------------------------------


def test_request_heads_are_parsed_and_forwarded_verbatim() -> None:
    head = parse_request_head(
        "PUT /a%2Fb?x=1&y=%2A HTTP/1.1\r\nHost: example.test\r\nX-Multi: a, b \r\n"
        "content-length: 7\r\nX-Forwarded-For: 203.0.113.9"
    )
    assert (head.method, head.target, head.path, head.query) == (
        "PUT",
        "/a%2Fb?x=1&y=%2A",
        "/a%2Fb",
        "x=1&y=%2A",
    )
    assert head.content_length == 7
    assert head.headers[1] == ("X-Multi", "a, b")
    upstream = head.upstream_head(
        host="127.0.0.1:3000", prefix="/app", peer="10.0.0.1", local_host="127.0.0.1:9"
    )
    assert upstream == (
        b"PUT /app/a%2Fb?x=1&y=%2A HTTP/1.1\r\nHost: 127.0.0.1:3000\r\nX-Multi: a, b \r\n"
        b"Content-Length: 7\r\nX-Forwarded-For: 203.0.113.9, 10.0.0.1\r\n"
        b"X-Forwarded-Proto: http\r\nX-Forwarded-Host: example.test\r\n\r\n"
    )


def test_an_absolute_form_target_is_forwarded_in_origin_form() -> None:
    head = parse_request_head("GET http://public.test/p?q=1 HTTP/1.1\r\nHost: public.test")
    assert (head.target, head.host) == ("/p?q=1", "public.test")


@pytest.mark.parametrize(
    ("text", "length", "keep_alive"),
    [
        ("HTTP/1.1 200 OK\r\nContent-Length: 12", 12, True),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked", None, True),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3", None, True),
        ("HTTP/1.1 200 OK", -1, False),
        ("HTTP/1.1 204 No Content\r\nContent-Length: 12", 0, True),
        ("HTTP/1.1 304 Not Modified\r\nContent-Length: 12", 0, True),
        ("HTTP/1.1 100 Continue", 0, True),
        ("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1", 1, False),
        ("HTTP/1.0 200 OK\r\nContent-Length: 1", 1, False),
        ("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1", 1, True),
    ],
)
def test_response_framing(text: str, length: int | None, keep_alive: bool) -> None:
    head = parse_response_head(text, head_request=False)
    assert (head.length, head.keep_alive) == (length, keep_alive)


def test_a_head_response_has_no_body_whatever_it_says() -> None:
    head = parse_response_head("HTTP/1.1 200 OK\r\nContent-Length: 9", head_request=True)
    assert head.length == 0


def test_a_response_head_is_passed_on_as_it_came_unless_it_must_change() -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n"
    plain = parse_response_head(raw[:-4].decode(), head_request=False)
    assert plain.for_client(raw) is raw
    closing = parse_response_head(
        "HTTP/1.0 200 OK\r\nKeep-Alive: 5\r\nContent-Length: 1", head_request=False
    )
    assert closing.for_client(b"", close=True) == (
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\n"
    )


def test_chunked_framing_is_found_whatever_the_reads_look_like() -> None:
    body = b"4;x=y\r\nwiki\r\n5\r\npedia\r\n0\r\nT: 1\r\n\r\n"
    data = body + b"NEXT"
    assert ChunkedScanner().feed(data) == len(body)
    scanner = ChunkedScanner()
    ends = [scanner.feed(data[i : i + 1]) for i in range(len(data))]
    assert ends.index(1) == len(body) - 1  # the byte that ends the body, and no other
    assert ends.count(1) == 1


@pytest.mark.parametrize(
    "body",
    [b"x\r\n", b"-1\r\n", b"4\nwiki\r\n", b"4\r\nwikipedia\r\n", b"1" * 17 + b"\r\n"],
)
def test_chunked_framing_is_strict(body: bytes) -> None:
    with pytest.raises(HttpError):
        ChunkedScanner().feed(body + b"0\r\n\r\n")


# --- more of the wire: split heads, pipelining mid-exchange, early answers, bad add-ons ----------


async def test_a_head_that_arrives_byte_by_byte_after_an_empty_line(proxy: Proxy) -> None:
    async with client(proxy) as one:
        for byte in b"\r\n" + get("/split"):
            one.send(bytes([byte]))
            await one.writer.drain()
            await asyncio.sleep(0)
        response = await one.response()
    assert json.loads(response.body)["raw_path"] == "/split"


async def test_bytes_that_arrive_during_an_exchange_wait_for_it(events: EventLog) -> None:
    async def handle(index: int, reader: Reader, writer: asyncio.StreamWriter) -> None:
        while True:
            line, body = await read_request(reader)
            await asyncio.sleep(0.05)
            writer.write(ok(line.encode() + b" " + body))

    async with RawAddon(handle) as raw, proxy_to(raw.url, events) as proxy, client(proxy) as one:
        one.send(get("/one", "Content-Length: 6", method="POST") + b"abc")
        await asyncio.sleep(0.01)
        one.send(b"def" + get("/two"))  # the end of a body and the next request in one read
        await asyncio.sleep(0.01)
        one.send(get("/three"))  # while /one is still being answered
        bodies = [(await one.response()).body for _ in range(3)]
    assert bodies == [b"POST /one HTTP/1.1 abcdef", b"GET /two HTTP/1.1 ", b"GET /three HTTP/1.1 "]
    assert raw.connections == 1


async def test_a_bad_chunk_after_the_head_went_out_cuts_the_addon_off(events: EventLog) -> None:
    addon_saw_the_end = asyncio.Event()

    async def handle(index: int, reader: Reader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        while await reader.read(1024):
            pass
        addon_saw_the_end.set()  # the proxy closed this connection: nothing was smuggled

    async with RawAddon(handle) as raw, proxy_to(raw.url, events) as proxy, client(proxy) as one:
        one.send(get("/x", "Transfer-Encoding: chunked", method="POST") + b"3\r\nabc\r\n")
        await asyncio.sleep(0.05)
        one.send(b"nope\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
        response = await one.response()
        assert response.status == 400
        assert await one.at_eof()
        async with asyncio.timeout(STEP):
            await addon_saw_the_end.wait()
    assert b"smuggled" not in bytes(raw.received[0])
    assert b"nope" not in bytes(raw.received[0])
    event = await events.wait_event("request")
    assert event.status == 400  # type: ignore[attr-defined]


async def test_an_answer_before_the_body_closes_the_connection_after_it(
    events: EventLog,
) -> None:
    async def handle(index: int, reader: Reader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\n\r\ntoo big!"
        )  # without reading the body

    async with RawAddon(handle) as raw, proxy_to(raw.url, events) as proxy, client(proxy) as one:
        one.send(get("/upload", "Content-Length: 100000", method="POST") + b"x" * 1000)
        response = await one.response()
        assert (response.status, response.body) == (413, b"too big!")
        assert response.headers["connection"] == "close"
        assert await one.at_eof()
    event = await events.wait_event("request")
    assert event.status == 413  # type: ignore[attr-defined]
    assert raw.connections == 1


@pytest.mark.parametrize(
    "answer",
    [b"HTTP/1.1 OK\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", b"SSH-2.0\r\n\r\n"],
)
async def test_an_addon_that_does_not_speak_http_gets_502(events: EventLog, answer: bytes) -> None:
    async def handle(index: int, reader: Reader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer)
        await read_request(reader)

    async with RawAddon(handle) as raw, proxy_to(raw.url, events) as proxy, client(proxy) as one:
        one.send(get("/x"))
        response = await one.response()
    assert response.status == 502
    assert b"its response was not valid HTTP" in response.body


async def test_a_raw_upgrade_carries_early_bytes_both_ways(events: EventLog) -> None:
    async def handle(index: int, reader: Reader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: demo\r\nConnection: Upgrade\r\n\r\n"
            b"server-first"
        )
        writer.write(b"echo:" + await reader.readexactly(12))
        await writer.drain()

    async with RawAddon(handle) as raw, proxy_to(raw.url, events) as proxy, client(proxy) as one:
        one.send(get("/demo", "Upgrade: demo", "Connection: Upgrade") + b"client-first")
        status, headers = await one.head()
        assert (status, headers["upgrade"], headers["connection"]) == (101, "demo", "upgrade")
        async with asyncio.timeout(STEP):
            assert await one.reader.readexactly(12) == b"server-first"
            assert await one.reader.readexactly(17) == b"echo:client-first"
        assert await one.at_eof()  # the add-on closed its side: the pipe closes
    assert b"Upgrade: demo\r\nConnection: upgrade\r\n" in bytes(raw.received[0])


async def test_a_101_nobody_asked_for_is_502(events: EventLog) -> None:
    async def handle(index: int, reader: Reader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n")
        await read_request(reader)

    async with RawAddon(handle) as raw, proxy_to(raw.url, events) as proxy, client(proxy) as one:
        one.send(get("/x"))
        assert (await one.response()).status == 502


async def test_when_the_addon_is_down_bodies_are_dropped_and_the_connection_lives_on(
    events: EventLog,
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    async with proxy_to(dead, events) as proxy, client(proxy) as one:
        one.send(get("/a", "Content-Length: 5", method="POST"))
        first = await one.response()  # answered before the body even came
        one.send(b"hello" + get("/b", method="HEAD"))
        second = await one.response(head_request=True)
    assert (first.status, second.status) == (502, 502)
    assert second.body == b""
    assert [e.path for e in events.of("request")] == ["/a", "/b"]  # type: ignore[attr-defined]


async def test_the_descriptor_is_answered_to_head_and_even_with_a_body(proxy: Proxy) -> None:
    async with client(proxy) as one:
        one.send(get("/atlassian-connect.json", method="HEAD"))
        head = await one.response(head_request=True)
        one.send(get("/atlassian-connect.json", "Content-Length: 3", method="GET") + b"abc")
        with_body = await one.response()
        one.send(get("/atlassian%2Dconnect.json"))  # the same path, escaped
        escaped = await one.response()
    assert (head.status, head.body) == (503, b"")
    assert with_body.status == 503
    assert escaped.status == 503


# --- timeouts -----------------------------------------------------------------------------------


@pytest.fixture
def quick_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(proxy_relay, "SWEEP_INTERVAL", 0.02)
    monkeypatch.setattr(proxy_relay, "CLIENT_IDLE_TIMEOUT", 0.2)
    monkeypatch.setattr(proxy_relay, "UPSTREAM_IDLE_TIMEOUT", 0.2)
    monkeypatch.setattr(proxy_relay, "LINGER_SECONDS", 0.2)


@pytest.mark.usefixtures("quick_timeouts")
async def test_idle_connections_are_closed(proxy: Proxy, addon: Addon) -> None:
    async with client(proxy) as idle, client(proxy) as partial, client(proxy) as stalled:
        idle.send(get("/echo"))
        assert (await idle.response()).status == 200
        assert relay(proxy).idle, "the add-on connection is pooled"
        partial.send(b"GET /echo HTTP/1.1\r\nHost:")
        stalled.send(get("/echo", "Content-Length: 10", method="POST") + b"12345")
        assert await idle.at_eof()  # kept alive, then closed when nothing came
        assert (await partial.response()).status == 408
        assert (await stalled.response()).status == 408
    await eventually(lambda: not relay(proxy).idle)  # the add-on connection is closed too


@pytest.mark.usefixtures("quick_timeouts")
async def test_a_refused_client_that_keeps_sending_is_closed_after_lingering(
    proxy: Proxy,
) -> None:
    async with client(proxy) as one:
        one.send(get("/echo", "Content-Length: 5", "Content-Length: 6", method="POST"))
        assert (await one.response()).status == 400
        for _ in range(5):
            one.send(b"more and more")
            await asyncio.sleep(0.05)
        assert await one.at_eof()


# --- the inspector ------------------------------------------------------------------------------


class FakeInspector:
    def __init__(self, fail: bool = False) -> None:
        self.seen: list[Any] = []
        self.fail = fail

    def wants_body(self, method: str, path: str) -> bool:
        return path == "/installed"

    def wants_request(self, method: str, path: str, query: str, authorization: str | None) -> bool:
        return True  # every request

    async def inspect(self, request: Any) -> dict[str, Any] | None:
        self.seen.append(request)
        if self.fail:
            raise RuntimeError("inspector bug")
        await asyncio.sleep(0.05)  # slower than the add-on: the event waits for the verdict
        return {"verified": True, "body": request.body}


async def test_the_inspector_gets_lifecycle_bodies_and_its_verdict_goes_into_the_event(
    addon: Addon, events: EventLog
) -> None:
    inspector = FakeInspector()
    async with proxy_to(addon.url, events, inspector=inspector) as proxy, client(proxy) as one:
        one.send(get("/installed?x=%2A", "Content-Length: 7", method="POST") + b'{"a":1}')
        one.send(get("/installed", "Transfer-Encoding: chunked", method="POST") + b"0\r\n\r\n")
        one.send(get("/page%20one?jwt=abc"))
        statuses = [(await one.response()).status for _ in range(3)]
    assert statuses == [200, 200, 200]
    await events.wait_event("request", count=3)
    verdicts = [e.jwt for e in events.of("request")]  # type: ignore[attr-defined]
    assert verdicts == [
        {"verified": True, "body": b'{"a":1}'},
        {"verified": True, "body": None},  # chunked: not buffered for the inspector
        {"verified": True, "body": None},
    ]
    first, _, third = inspector.seen
    assert (first.path, first.query_string, first.raw_path) == (
        "/installed",
        "x=*",
        "/installed?x=%2A",
    )
    assert first.headers["content-length"] == "7"
    assert (third.path, third.raw_path) == ("/page one", "/page%20one?jwt=abc")
    assert [e.path for e in events.of("request")] == [  # type: ignore[attr-defined]
        "/installed?x=%2A",
        "/installed",
        "/page%20one?jwt=••••••",
    ]


async def test_an_inspector_that_fails_never_fails_the_request(
    addon: Addon, events: EventLog, caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        proxy_to(addon.url, events, inspector=FakeInspector(fail=True)) as proxy,
        client(proxy) as one,
    ):
        one.send(get("/page"))
        assert (await one.response()).status == 200
    event = await events.wait_event("request")
    assert event.jwt == {  # type: ignore[attr-defined]
        "verified": False,
        "reason": "inspection failed (see the log with -v)",
    }
    assert "request inspection failed" in caplog.text


async def test_closing_the_proxy_mid_request_closes_everything(proxy: Proxy, addon: Addon) -> None:
    async with client(proxy) as one:
        one.send(get("/drip"))
        await one.head()
        await proxy.close()
        assert await one.at_eof()


async def test_a_response_without_a_length_runs_to_the_close(events: EventLog) -> None:
    async def handle(index: int, reader: Reader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        for byte in b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n":  # a split head
            writer.write(bytes([byte]))
            await writer.drain()
        writer.write(b"all of it, ")
        await writer.drain()
        writer.write(b"until the end")

    async with RawAddon(handle) as raw, proxy_to(raw.url, events) as proxy, client(proxy) as one:
        one.send(get("/legacy"))
        response = await one.response()
        assert await one.at_eof()
    assert (response.status, response.body) == (200, b"all of it, until the end")
    assert response.headers["connection"] == "close"  # how the client knows it ended
    event = await events.wait_event("request")
    assert event.status == 200  # type: ignore[attr-defined]


async def test_an_addon_connection_that_speaks_out_of_turn_is_not_reused(
    events: EventLog,
) -> None:
    closed: list[int] = []

    async def handle(index: int, reader: Reader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(ok(b"one") + (b"EXTRA" if index == 0 else b""))
        await writer.drain()
        if index == 1:
            await asyncio.sleep(0.05)
            writer.write(b"junk while idle")
        if not await reader.read(1):
            closed.append(index)

    async with RawAddon(handle) as raw, proxy_to(raw.url, events) as proxy, client(proxy) as one:
        for _ in range(2):
            one.send(get("/x"))
            assert (await one.response()).body == b"one"
        await eventually(lambda: closed == [0, 1])
    assert raw.connections == 2


async def test_broken_response_framing_after_the_head_cuts_the_client_off(
    events: EventLog,
) -> None:
    async def handle(index: int, reader: Reader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(b"zz\r\n")
        await read_request(reader)

    async with RawAddon(handle) as raw, proxy_to(raw.url, events) as proxy, client(proxy) as one:
        one.send(get("/x"))
        status, _ = await one.head()
        assert status == 200
        async with asyncio.timeout(STEP):
            assert await one.reader.read() == b"3\r\nabc\r\n"  # then the connection closes


async def test_a_huge_response_head_is_502(events: EventLog) -> None:
    async def handle(index: int, reader: Reader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (70 * 1024) + b"\r\n\r\n")
        await read_request(reader)

    async with RawAddon(handle) as raw, proxy_to(raw.url, events) as proxy, client(proxy) as one:
        one.send(get("/x"))
        response = await one.response()
    assert response.status == 502
    assert b"response head too large" in response.body


async def test_a_subscriber_that_raises_does_not_break_the_connection(
    addon: Addon, caplog: pytest.LogCaptureFixture
) -> None:
    def emit(event: object) -> None:
        raise RuntimeError("subscriber bug")

    async with proxy_to(addon.url, emit) as proxy, client(proxy) as one:  # type: ignore[arg-type]
        for _ in range(2):
            one.send(get("/x"))
            assert (await one.response()).status == 200
    assert "reporting a request failed" in caplog.text


@pytest.mark.parametrize(
    "text",
    [
        "GET /x HTTP/1.1\r\nHost: a b",
        "GET /x HTTP/1.1\r\nHost: a/b",
        "GET x HTTP/1.1\r\nHost: a",
        "GET ftp://a/x HTTP/1.1\r\nHost: a",
        "GET * HTTP/1.1\r\nHost: a",
        "CONNECT a:443 HTTP/1.1\r\nHost: a:443",
        "GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: -1",
        "GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1" + "0" * 20,
    ],
)
def test_requests_the_parser_refuses(text: str) -> None:
    with pytest.raises(HttpError) as refused:
        parse_request_head(text)
    assert refused.value.status == 400


def test_options_star_is_forwarded_as_it_is() -> None:
    head = parse_request_head("OPTIONS * HTTP/1.1\r\nHost: a")
    assert head.upstream_head(host="h", prefix="/app", peer="p", local_host="l").startswith(
        b"OPTIONS * HTTP/1.1\r\n"
    )


@pytest.mark.parametrize(
    "body",
    [
        b"1;" + b"x" * 5000 + b"\r\na\r\n0\r\n\r\n",  # an endless chunk extension
        b"0\r\n" + b"X: " + b"y" * 20000 + b"\r\n\r\n",  # an endless trailer
        b"0\r\nnot a field\r\n\r\n",
    ],
)
def test_chunked_framing_has_bounds(body: bytes) -> None:
    with pytest.raises(HttpError):
        ChunkedScanner().feed(body)
    scanner = ChunkedScanner()  # the same, a few bytes at a time
    pieces = [body[start : start + 7] for start in range(0, len(body), 7)]
    with pytest.raises(HttpError):
        any(scanner.feed(piece) >= 0 for piece in pieces)


@pytest.mark.usefixtures("quick_timeouts")
async def test_a_client_that_stops_reading_is_given_up_on(proxy: Proxy, events: EventLog) -> None:
    async with client(proxy, receive_buffer=32 * 1024) as one:
        one.send(get(f"/big/{16 * MiB}"))
        await one.head()  # and then never reads again
        event = await events.wait_event("request")
    assert event.status == 499  # type: ignore[attr-defined]
    await eventually(lambda: not relay(proxy).clients and not relay(proxy).upstreams)
