"""What the proxy captures of each exchange (proxy/capture.py, the hooks in proxy/relay.py).

A real ``Proxy`` with a ``Capture`` relays to a real aiohttp add-on (and, for a response that
only the end of the connection ends, to a raw asyncio server) on loopback; the client is a raw
connection, so that the bytes on the wire, chunked framing and pipelining included, are what the
test says. Each test compares what the capture kept with what went over the wire and with the
``request`` events the proxy reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from connect_devloop import descriptor
from connect_devloop.events import RequestServed
from connect_devloop.proxy import Proxy
from connect_devloop.proxy import relay as proxy_relay
from connect_devloop.proxy.capture import Capture, Exchange

from .conftest import EventLog, descriptor_text, eventually
from .servers import serve

STEP = 10.0  # no single step of a test may take longer than this
PIECES = [f"piece {index:02d} of a chunked answer\n".encode() for index in range(12)]


def pattern(size: int) -> bytes:
    return (bytes(range(256)) * (size // 256 + 1))[:size]


def chunked(*pieces: bytes) -> bytes:
    """``pieces`` in chunked framing, as a client or an add-on sends them."""
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"


def unframed(data: bytes) -> bytes:
    """The payload of a whole chunked body."""
    out, position = b"", 0
    while True:
        line_end = data.index(b"\r\n", position)
        size = int(data[position:line_end].split(b";")[0], 16)
        if size == 0:
            return out
        out += data[line_end + 2 : line_end + 2 + size]
        position = line_end + 2 + size + 2


def get(target: str, *extra: str, method: str = "GET") -> bytes:
    return "\r\n".join([f"{method} {target} HTTP/1.1", "Host: proxy.test", *extra, "", ""]).encode()


def post(target: str, body: bytes, *extra: str) -> bytes:
    return get(target, f"Content-Length: {len(body)}", *extra, method="POST") + body


# --- a raw client -----------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    head: str
    body: bytes  # as on the wire: chunked framing included
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names


class Client:
    """One raw connection to the proxy."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.local_port = int(writer.get_extra_info("sockname")[1])

    @classmethod
    async def open(cls, url: str) -> Client:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self, *, head_request: bool = False) -> Response:
        async with asyncio.timeout(STEP):
            raw = await self.reader.readuntil(b"\r\n\r\n")
            head = raw[:-4].decode("latin-1")
            lines = head.split("\r\n")
            status = int(lines[0].split(" ")[1])
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            if head_request or status in (204, 304):
                body = b""
            elif headers.get("transfer-encoding", "").lower() == "chunked":
                body = await self._chunked()
            elif "content-length" in headers:
                body = await self.reader.readexactly(int(headers["content-length"]))
            else:
                body = await self.reader.read()
        return Response(status, head, body, headers)

    async def _chunked(self) -> bytes:
        raw = b""
        while True:
            line = await self.reader.readuntil(b"\r\n")
            raw += line
            size = int(line.split(b";")[0], 16)
            if size == 0:
                while (trailer := await self.reader.readuntil(b"\r\n")) != b"\r\n":
                    raw += trailer
                return raw + b"\r\n"
            raw += await self.reader.readexactly(size + 2)

    async def closed(self) -> bool:
        async with asyncio.timeout(STEP):
            return await self.reader.read() == b""

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


@contextlib.asynccontextmanager
async def connection(proxy: Proxy) -> AsyncIterator[Client]:
    client = await Client.open(proxy.url)
    try:
        yield client
    finally:
        await client.close()


# --- the add-ons and the proxy ----------------------------------------------------------------


@dataclass
class Addon:
    url: str = ""
    seen: list[str] = field(default_factory=list)  # the targets it was asked for
    gate: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
async def addon() -> AsyncIterator[Addon]:
    record = Addon()

    async def echo(request: web.Request) -> web.Response:
        record.seen.append(request.raw_path)
        return web.Response(body=await request.read(), content_type="application/octet-stream")

    async def sized(request: web.Request) -> web.Response:
        record.seen.append(request.raw_path)
        return web.Response(body=pattern(int(request.match_info["size"])))

    async def stream(request: web.Request) -> web.StreamResponse:
        record.seen.append(request.raw_path)
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for piece in PIECES:
            await response.write(piece)
        await response.write_eof()
        return response

    async def held(request: web.Request) -> web.Response:
        record.seen.append(request.raw_path)
        await record.gate.wait()
        return web.Response(text="held until released")

    app = web.Application()
    app.router.add_post("/echo", echo)
    app.router.add_get("/sized/{size}", sized)
    app.router.add_get("/stream", stream)
    app.router.add_get("/held", held)
    async with serve(app) as url:
        record.url = url
        yield record


@contextlib.asynccontextmanager
async def proxied(
    addon_url: str, events: EventLog, capture: Capture | None
) -> AsyncIterator[Proxy]:
    proxy = Proxy(addon_url, events, port=0, capture=capture)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()


@contextlib.asynccontextmanager
async def until_eof_addon(body: bytes) -> AsyncIterator[str]:
    """An add-on whose answer has no length: only closing the connection ends its body."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + body)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def requests(events: EventLog) -> list[RequestServed]:
    return [e for e in events.of("request") if isinstance(e, RequestServed)]


async def reported(events: EventLog, count: int) -> list[RequestServed]:
    await events.wait_event("request", count=count)
    return requests(events)


def only(capture: Capture) -> Exchange:
    kept = capture.all()
    assert len(kept) == 1, [e.request.target for e in kept]
    return kept[0]


# --- bodies: kept up to the limit, counted whole -------------------------------------------


async def test_content_length_bodies_both_ways_are_kept_up_to_the_limit_and_counted_whole(
    addon: Addon, events: EventLog
) -> None:
    capture = Capture(body_limit=100)
    body = pattern(300)
    async with proxied(addon.url, events, capture) as proxy, connection(proxy) as client:
        await client.send(post("/echo?x=1", body, "X-Note: kept"))
        answer = await client.response()
        assert answer.body == body
        (event,) = await reported(events, 1)
    exchange = only(capture)
    assert exchange.request.method == "POST"
    assert exchange.request.target == "/echo?x=1"
    assert ("X-Note", "kept") in exchange.request.headers
    assert bytes(exchange.request_body) == body[:100]
    assert exchange.request_size == 300
    assert exchange.request_truncated
    assert bytes(exchange.response_body) == body[:100]
    assert exchange.response_size == 300
    assert exchange.response_truncated
    assert not exchange.response_chunked
    assert exchange.response_head.startswith("HTTP/1.1 200 OK\r\n")
    assert "Content-Length: 300" in exchange.response_head
    assert not exchange.response_head.endswith("\r\n")
    assert (exchange.status, exchange.local, exchange.failure) == (200, False, "")
    assert exchange.client_port == client.local_port
    assert exchange.duration_ms == event.duration_ms
    assert (event.id, exchange.id) == (1, 1)


@pytest.mark.parametrize(
    ("size", "truncated"), [(0, False), (99, False), (100, False), (101, True)]
)
async def test_the_limit_is_exact(
    addon: Addon, events: EventLog, size: int, truncated: bool
) -> None:
    capture = Capture(body_limit=100)
    body = pattern(size)
    async with proxied(addon.url, events, capture) as proxy, connection(proxy) as client:
        await client.send(post("/echo", body))
        assert (await client.response()).body == body
        await reported(events, 1)
    exchange = only(capture)
    assert bytes(exchange.request_body) == body[:100]
    assert bytes(exchange.response_body) == body[:100]
    assert (exchange.request_size, exchange.response_size) == (size, size)
    assert exchange.request_truncated is truncated
    assert exchange.response_truncated is truncated


async def test_a_body_that_comes_in_many_reads_is_kept_once_up_to_the_limit(
    addon: Addon, events: EventLog
) -> None:
    capture = Capture(body_limit=100)
    body = pattern(30 * 10)
    async with proxied(addon.url, events, capture) as proxy, connection(proxy) as client:
        await client.send(get("/echo", f"Content-Length: {len(body)}", method="POST"))
        for start in range(0, len(body), 30):
            await client.send(body[start : start + 30])
            await asyncio.sleep(0.01)
        assert (await client.response()).body == body
        await reported(events, 1)
    exchange = only(capture)
    assert bytes(exchange.request_body) == body[:100]
    assert exchange.request_size == len(body)


async def test_a_large_response_over_many_reads_is_kept_up_to_the_limit(
    addon: Addon, events: EventLog
) -> None:
    capture = Capture(body_limit=1000)
    async with proxied(addon.url, events, capture) as proxy, connection(proxy) as client:
        await client.send(get("/sized/300000"))
        assert (await client.response()).body == pattern(300000)
        await reported(events, 1)
    exchange = only(capture)
    assert bytes(exchange.response_body) == pattern(1000)
    assert exchange.response_size == 300000


async def test_a_chunked_request_body_is_kept_with_its_framing(
    addon: Addon, events: EventLog
) -> None:
    pieces = [b"hello ", b"chunked ", b"world" * 10]
    framed = chunked(*pieces)
    for limit in (len(framed) + 10, 16):
        capture = Capture(body_limit=limit)
        async with proxied(addon.url, events, capture) as proxy, connection(proxy) as client:
            await client.send(get("/echo", "Transfer-Encoding: chunked", method="POST") + framed)
            answer = await client.response()
            assert answer.body == b"".join(pieces)  # the add-on got it whole
            await eventually_kept(capture, 1)
        exchange = only(capture)
        assert exchange.request.chunked
        assert bytes(exchange.request_body) == framed[:limit]
        assert exchange.request_size == len(framed)
        assert exchange.request_truncated is (limit < len(framed))
        assert exchange.response_size == len(b"".join(pieces))


async def test_a_chunked_response_is_kept_as_it_came(addon: Addon, events: EventLog) -> None:
    for limit in (64 * 1024, 50):
        capture = Capture(body_limit=limit)
        async with proxied(addon.url, events, capture) as proxy, connection(proxy) as client:
            await client.send(get("/stream"))
            answer = await client.response()
            await eventually_kept(capture, 1)
        exchange = only(capture)
        assert answer.headers["transfer-encoding"] == "chunked"
        assert exchange.response_chunked
        # What the client got on the wire, framing and all, is what was counted and kept.
        assert exchange.response_size == len(answer.body)
        assert bytes(exchange.response_body) == answer.body[:limit]
        assert exchange.response_truncated is (limit < len(answer.body))
        assert unframed(answer.body) == b"".join(PIECES)


async def test_a_response_ended_by_the_close_is_kept(events: EventLog) -> None:
    body = pattern(5000)
    capture = Capture(body_limit=1024)
    async with (
        until_eof_addon(body) as url,
        proxied(url, events, capture) as proxy,
        connection(proxy) as client,
    ):
        await client.send(get("/eof"))
        answer = await client.response()
        assert answer.body == body
        assert await client.closed()
        await reported(events, 1)
    exchange = only(capture)
    assert not exchange.response_chunked
    assert bytes(exchange.response_body) == body[:1024]
    assert exchange.response_size == len(body)
    assert exchange.status == 200


async def eventually_kept(capture: Capture, count: int) -> None:
    await eventually(lambda: len(capture.all()) >= count, STEP)


# --- answered by the proxy itself -------------------------------------------------------------


async def test_the_descriptor_is_answered_locally(addon: Addon, events: EventLog) -> None:
    capture = Capture()
    async with proxied(addon.url, events, capture) as proxy, connection(proxy) as client:
        await client.send(get("/atlassian-connect.json"))
        assert (await client.response()).status == 503  # nothing valid published yet
        proxy.publish(descriptor.parse(descriptor_text().encode()), "https://abc.example")
        await client.send(get("/atlassian-connect.json"))
        answer = await client.response()
        await reported(events, 2)
        served = proxy.descriptor
    missing, published = capture.all()
    assert (missing.status, missing.local) == (503, True)
    assert b"no valid atlassian-connect.json yet" in missing.response_body
    assert missing.response_head.startswith("HTTP/1.1 503 Service Unavailable")
    assert (published.status, published.local, published.failure) == (200, True, "")
    assert served is not None
    assert bytes(published.response_body) == served == answer.body
    assert published.response_size == len(served)
    assert "Content-Type: application/json" in published.response_head
    assert addon.seen == []


async def test_a_head_request_is_kept_without_a_body(addon: Addon, events: EventLog) -> None:
    capture = Capture()
    async with proxied(addon.url, events, capture) as proxy, connection(proxy) as client:
        await client.send(get("/sized/700", method="HEAD"))
        answer = await client.response(head_request=True)
        assert answer.headers["content-length"] == "700"
        # The connection stays in step: the next exchange is its own.
        await client.send(get("/sized/3"))
        assert (await client.response()).body == pattern(3)
        proxy.publish(descriptor.parse(descriptor_text().encode()), "https://abc.example")
        await client.send(get("/atlassian-connect.json", method="HEAD"))
        local = await client.response(head_request=True)
        await reported(events, 3)
    head, after, descriptor_head = capture.all()
    assert (head.request.method, head.status, head.local) == ("HEAD", 200, False)
    assert "Content-Length: 700" in head.response_head
    assert (bytes(head.response_body), head.response_size) == (b"", 0)
    assert not head.response_truncated
    assert (bytes(after.response_body), after.response_size) == (pattern(3), 3)
    assert descriptor_head.local
    assert (bytes(descriptor_head.response_body), descriptor_head.response_size) == (b"", 0)
    assert int(local.headers["content-length"]) > 0


async def test_an_addon_that_is_down_gets_a_local_502_with_the_reason(events: EventLog) -> None:
    capture = Capture()
    body = b'{"note": "the body still counts"}'
    down = f"http://127.0.0.1:{free_port()}"
    async with proxied(down, events, capture) as proxy, connection(proxy) as client:
        await client.send(post("/installed", body))
        answer = await client.response()
        (event,) = await reported(events, 1)
    exchange = only(capture)
    assert answer.status == 502
    assert (exchange.status, exchange.local) == (502, True)
    assert exchange.failure == event.addon_error == "connection refused"
    assert exchange.response_head.startswith("HTTP/1.1 502 Bad Gateway")
    assert bytes(exchange.response_body) == answer.body
    assert b"did not answer (connection refused)" in exchange.response_body
    assert bytes(exchange.request_body) == body
    assert exchange.request_size == len(body)
    assert event.id == exchange.id == 1


# --- ids ----------------------------------------------------------------------------------


async def test_ids_follow_the_order_of_the_reports_and_match_the_events(
    addon: Addon, events: EventLog
) -> None:
    capture = Capture()
    async with (
        proxied(addon.url, events, capture) as proxy,
        connection(proxy) as first,
        connection(proxy) as second,
    ):
        await first.send(get("/held"))  # begins first, ends last
        await eventually(lambda: addon.seen == ["/held"])
        for size in (1, 2):
            await second.send(get(f"/sized/{size}"))
            await second.response()
        addon.gate.set()
        await first.response()
        served = await reported(events, 3)
    kept = capture.all()
    assert [e.id for e in kept] == [1, 2, 3]
    assert [e.request.target for e in kept] == ["/sized/1", "/sized/2", "/held"]
    assert [(e.id, e.path, e.status) for e in served] == [
        (e.id, e.request.target, e.status) for e in kept
    ]
    held = kept[-1]
    assert held.started <= kept[0].started  # begun first, numbered last
    assert held.client_port == first.local_port
    assert {e.client_port for e in kept[:2]} == {second.local_port}
    assert capture.last_id == 3
    assert all(capture.get(e.id) is e for e in kept)


async def test_keep_bounds_the_capture_oldest_forgotten_first(
    addon: Addon, events: EventLog
) -> None:
    capture = Capture(keep=3)
    async with proxied(addon.url, events, capture) as proxy, connection(proxy) as client:
        for size in range(1, 6):
            await client.send(get(f"/sized/{size}"))
            await client.response()
        served = await reported(events, 5)
    assert [e.id for e in served] == [1, 2, 3, 4, 5]
    assert [(e.id, e.request.target) for e in capture.all()] == [
        (3, "/sized/3"),
        (4, "/sized/4"),
        (5, "/sized/5"),
    ]
    assert capture.get(1) is None
    assert capture.get(2) is None
    assert (capture.oldest_id(), capture.last_id) == (3, 5)


async def test_pipelined_requests_each_get_their_own_exchange(
    addon: Addon, events: EventLog
) -> None:
    capture = Capture()
    async with proxied(addon.url, events, capture) as proxy, connection(proxy) as client:
        await client.send(
            get("/sized/5")
            + post("/echo", b"second body")
            + get("/stream")
            + post("/echo", b"fourth")
        )
        answers = [await client.response() for _ in range(4)]
        served = await reported(events, 4)
    kept = capture.all()
    assert [e.request.target for e in kept] == ["/sized/5", "/echo", "/stream", "/echo"]
    assert [e.id for e in kept] == [e.id for e in served] == [1, 2, 3, 4]
    assert [bytes(e.request_body) for e in kept] == [b"", b"second body", b"", b"fourth"]
    assert [bytes(e.response_body) for e in kept] == [a.body for a in answers]
    assert [e.response_chunked for e in kept] == [False, False, True, False]
    assert {e.client_port for e in kept} == {client.local_port}


async def test_without_a_capture_the_proxy_reports_id_0(addon: Addon, events: EventLog) -> None:
    async with proxied(addon.url, events, None) as proxy, connection(proxy) as client:
        await client.send(post("/echo", b"no capture"))
        assert (await client.response()).body == b"no capture"
        await client.send(get("/stream"))
        assert unframed((await client.response()).body) == b"".join(PIECES)
        served = await reported(events, 2)
    assert [(e.id, e.replay_of, e.status) for e in served] == [(0, 0, 200), (0, 0, 200)]


# --- refusals -----------------------------------------------------------------------------


async def test_a_head_refused_for_its_framing_is_not_captured(
    addon: Addon, events: EventLog
) -> None:
    capture = Capture()
    async with proxied(addon.url, events, capture) as proxy:
        async with connection(proxy) as client:
            await client.send(
                get("/echo", "Content-Length: 3", "Transfer-Encoding: chunked", method="POST")
                + b"abc"
            )
            answer = await client.response()
            assert answer.status == 400
            assert await client.closed()
        async with connection(proxy) as client:
            await client.send(get("/sized/2"))
            assert (await client.response()).status == 200
            served = await reported(events, 1)
    assert [(e.id, e.path) for e in served] == [(1, "/sized/2")]
    assert [e.request.target for e in capture.all()] == ["/sized/2"]
    assert addon.seen == ["/sized/2"]


async def test_a_bad_request_after_a_good_one_leaves_the_good_one_as_it_was(
    addon: Addon, events: EventLog
) -> None:
    capture = Capture()
    async with proxied(addon.url, events, capture) as proxy, connection(proxy) as client:
        await client.send(get("/sized/4") + b"GET /x HTTP/1.1\r\nHost : spaced\r\n\r\n")
        assert (await client.response()).body == pattern(4)
        assert (await client.response()).status == 400
        assert await client.closed()
        await reported(events, 1)
    good = only(capture)
    assert (good.request.target, good.status, good.local) == ("/sized/4", 200, False)
    assert bytes(good.response_body) == pattern(4)
    assert good.response_head.startswith("HTTP/1.1 200 OK")


async def test_a_chunked_body_refused_for_its_framing_is_captured_as_a_local_answer(
    addon: Addon, events: EventLog
) -> None:
    capture = Capture()
    async with proxied(addon.url, events, capture) as proxy:
        async with connection(proxy) as client:
            await client.send(
                get("/echo", "Transfer-Encoding: chunked", method="POST")
                + b"5\r\nhello\r\nzz\r\nnot a chunk\r\n0\r\n\r\n"
            )
            answer = await client.response()
            assert answer.status == 400
            (refused,) = await reported(events, 1)
        async with connection(proxy) as client:  # the proxy (and its capture) goes on
            await client.send(get("/sized/1"))
            assert (await client.response()).status == 200
            await reported(events, 2)
    bad, good = capture.all()
    assert (refused.id, refused.status) == (bad.id, 400) == (1, 400)
    assert bad.status == 400
    # The proxy answered it itself: the capture says so, with the answer the client got.
    assert bad.local
    assert bad.response_head.startswith("HTTP/1.1 400 Bad Request")
    assert bytes(bad.response_body) == answer.body == b"chunked framing: invalid chunk size\n"
    assert (good.id, good.status) == (2, 200)
    assert addon.seen == ["/sized/1"]


# --- replays ------------------------------------------------------------------------------


async def test_an_expected_replay_is_linked_and_its_future_resolves(
    addon: Addon, events: EventLog
) -> None:
    capture = Capture()
    async with proxied(addon.url, events, capture) as proxy:
        async with connection(proxy) as client:
            await client.send(get("/sized/1"))
            await client.response()
        async with connection(proxy) as client:
            done = capture.expect_replay(client.local_port, 1)
            await client.send(post("/echo", b"again"))
            await client.response()
            replayed = await asyncio.wait_for(done, STEP)
            # The next request on that connection is not a replay any more.
            await client.send(get("/sized/2"))
            await client.response()
        async with connection(proxy) as client:
            forgotten = capture.expect_replay(client.local_port, 1)
            capture.forget_replay(client.local_port)
            await client.send(get("/sized/3"))
            await client.response()
            served = await reported(events, 4)
    assert replayed is capture.get(2)
    assert (replayed.replay_of, bytes(replayed.request_body)) == (1, b"again")
    assert [(e.id, e.replay_of) for e in served] == [(1, 0), (2, 1), (3, 0), (4, 0)]
    assert [e.replay_of for e in capture.all()] == [0, 1, 0, 0]
    assert not forgotten.done()


async def test_listeners_see_each_exchange_once_kept(addon: Addon, events: EventLog) -> None:
    capture = Capture()
    seen: list[tuple[int, Any]] = []
    stop = capture.listen(lambda e: seen.append((e.id, capture.get(e.id) is e)))
    async with proxied(addon.url, events, capture) as proxy, connection(proxy) as client:
        await client.send(get("/sized/1"))
        await client.response()
        stop()
        stop()  # twice is harmless
        await client.send(get("/sized/2"))
        await client.response()
        await reported(events, 2)
    assert seen == [(1, True)]


async def test_a_body_that_stops_coming_is_captured_with_the_local_408(
    addon: Addon, events: EventLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(proxy_relay, "SWEEP_INTERVAL", 0.02)
    monkeypatch.setattr(proxy_relay, "CLIENT_IDLE_TIMEOUT", 0.3)
    capture = Capture()
    async with proxied(addon.url, events, capture) as proxy, connection(proxy) as client:
        await client.send(get("/echo", "Content-Length: 100", method="POST") + b"only ten b")
        answer = await client.response()
        (event,) = await reported(events, 1)
    exchange = only(capture)
    assert answer.status == event.status == exchange.status == 408
    assert exchange.local
    assert exchange.response_head.startswith("HTTP/1.1 408 Request Timeout")
    assert bytes(exchange.response_body) == answer.body == b"request body timed out\n"
    assert (bytes(exchange.request_body), exchange.request_size) == (b"only ten b", 10)


async def test_connect_devs_own_requests_are_neither_captured_nor_reported(
    addon: Addon, events: EventLog
) -> None:
    # The tunnel keeper's probes go through the proxy; the ids stay those of the add-on's
    # traffic, as the log shows it, with no gaps.
    capture = Capture()
    proxy = Proxy(
        addon.url,
        events,
        port=0,
        capture=capture,
        unreported=lambda target: target.startswith("/sized/1?probe="),
    )
    await proxy.start()
    try:
        async with connection(proxy) as client:
            await client.send(get("/sized/1?probe=abc"))
            assert (await client.response()).status == 200
            await client.send(get("/sized/2"))
            assert (await client.response()).status == 200
        [event] = await reported(events, 1)
    finally:
        await proxy.close()
    assert (event.path, event.id) == ("/sized/2", 1)
    assert [(e.id, e.request.target) for e in capture.all()] == [(1, "/sized/2")]
    assert addon.seen == ["/sized/1?probe=abc", "/sized/2"]
