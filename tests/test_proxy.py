"""The proxy against a real upstream aiohttp server on loopback."""

from __future__ import annotations

import gzip
import io
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from connect_devloop import descriptor
from connect_devloop.proxy import Proxy

from .conftest import EventLog, descriptor_text
from .servers import serve


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """An add-on server that echoes what it received and offers a few awkward responses."""
    seen: list[dict[str, Any]] = []

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append(
            {
                "method": request.method,
                "raw_path": request.raw_path,
                "headers": dict(request.headers),
                "body_length": len(body),
            }
        )
        return web.json_response(seen[-1], headers={"Set-Cookie": "session=abc; Path=/"})

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("/elsewhere")

    async def gzipped(request: web.Request) -> web.Response:
        return web.Response(
            body=gzip.compress(b"x" * 1000),
            headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"},
        )

    async def streamed(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for index in range(50):
            await response.write(f"chunk {index}\n".encode())
        await response.write_eof()
        return response

    async def teapot(request: web.Request) -> web.Response:
        return web.Response(status=418, text="short and stout")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/gzip", gzipped)
    app.router.add_get("/stream", streamed)
    app.router.add_get("/teapot", teapot)
    app.router.add_route("*", "/{tail:.*}", echo)
    async with serve(app) as url:
        yield url, seen


@pytest.fixture
async def proxy(
    upstream: tuple[str, list[dict[str, Any]]], events: EventLog
) -> AsyncIterator[Proxy]:
    proxy = Proxy(upstream[0], events, port=0)
    await proxy.start()
    yield proxy
    await proxy.close()


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield session


async def test_descriptor_is_rendered_for_the_public_url(
    proxy: Proxy, client: aiohttp.ClientSession, upstream: Any
) -> None:
    async with client.get(f"{proxy.url}/atlassian-connect.json") as response:
        assert response.status == 503
        assert "no valid atlassian-connect.json yet" in await response.text()
    revision = descriptor.parse(descriptor_text().encode())
    proxy.publish(revision, "https://abc.example/")
    async with client.get(f"{proxy.url}/atlassian-connect.json") as response:
        assert response.status == 200
        assert response.headers["Cache-Control"] == "no-store"
        served = json.loads(await response.read())
    assert served["baseUrl"] == "https://abc.example"
    assert served["key"] == "test-addon"
    assert upstream[1] == [], "the descriptor must never be fetched from the add-on"


async def test_forwards_method_path_raw_query_headers_and_body(
    proxy: Proxy, client: aiohttp.ClientSession, upstream: Any
) -> None:
    body = b"a" * (3 * 1024 * 1024 + 17)
    url = URL(f"{proxy.url}/api/items%2Fx?b=2&a=1+1&a=%2A&jwt=abc.def", encoded=True)
    async with client.put(
        url,
        data=io.BytesIO(body),
        headers={"X-Custom": "yes", "Authorization": "JWT t"},
        skip_auto_headers=("Content-Type",),
    ) as response:
        assert response.status == 200
        echoed = await response.json()
        assert response.headers["Set-Cookie"] == "session=abc; Path=/"
    assert echoed["method"] == "PUT"
    assert echoed["raw_path"] == "/api/items%2Fx?b=2&a=1+1&a=%2A&jwt=abc.def"
    assert echoed["body_length"] == len(body)
    headers = echoed["headers"]
    assert headers["X-Custom"] == "yes"
    assert headers["Authorization"] == "JWT t"
    assert headers["X-Forwarded-For"] == "127.0.0.1"
    assert headers["X-Forwarded-Proto"] == "http"
    assert headers["X-Forwarded-Host"] == proxy.url.removeprefix("http://")
    assert headers["Host"] == upstream[0].removeprefix("http://")


async def test_keeps_forwarded_headers_from_a_tunnel_agent_in_front(
    proxy: Proxy, client: aiohttp.ClientSession
) -> None:
    headers = {
        "X-Forwarded-Proto": "https",
        "X-Forwarded-For": "203.0.113.9",
        "X-Forwarded-Host": "abc.ngrok.app",
    }
    async with client.get(f"{proxy.url}/x", headers=headers) as response:
        echoed = (await response.json())["headers"]
    assert echoed["X-Forwarded-Proto"] == "https"
    assert echoed["X-Forwarded-Host"] == "abc.ngrok.app"
    assert echoed["X-Forwarded-For"] == "203.0.113.9, 127.0.0.1"


async def test_passes_redirects_compression_streams_and_statuses_through(
    proxy: Proxy, client: aiohttp.ClientSession
) -> None:
    async with client.get(f"{proxy.url}/redirect", allow_redirects=False) as response:
        assert response.status == 302
        assert response.headers["Location"] == "/elsewhere"
    async with client.get(f"{proxy.url}/gzip") as response:
        assert response.headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(await response.read()) == b"x" * 1000
    async with client.get(f"{proxy.url}/stream") as response:
        text = await response.text()
        assert text.splitlines()[-1] == "chunk 49"
        assert len(text.splitlines()) == 50
    async with client.get(f"{proxy.url}/teapot") as response:
        assert response.status == 418
        assert await response.text() == "short and stout"


async def test_requests_are_reported_as_events(
    proxy: Proxy, client: aiohttp.ClientSession, events: EventLog
) -> None:
    async with client.post(f"{proxy.url}/installed?x=1", json={}) as response:
        await response.read()
    async with client.get(f"{proxy.url}/teapot") as response:
        await response.read()
    requests = events.of("request")
    assert [(e.method, e.path, e.status) for e in requests] == [  # type: ignore[attr-defined]
        ("POST", "/installed?x=1", 200),
        ("GET", "/teapot", 418),
    ]
    assert all(e.duration_ms >= 0 for e in requests)  # type: ignore[attr-defined]


async def test_add_on_down_gives_502_that_says_what_to_do(
    events: EventLog, client: aiohttp.ClientSession
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    proxy = Proxy(f"http://127.0.0.1:{dead_port}", events, port=0)
    await proxy.start()
    try:
        async with client.get(f"{proxy.url}/hello") as response:
            assert response.status == 502
            text = await response.text()
    finally:
        await proxy.close()
    assert f"the add-on server at http://127.0.0.1:{dead_port} did not answer" in text
    assert "fix [addon] url in connect-dev.toml" in text
    assert [(e.path, e.status) for e in events.of("request")] == [("/hello", 502)]  # type: ignore[attr-defined]


async def test_taken_port_is_a_config_error(events: EventLog) -> None:
    from connect_devloop.errors import ConfigError

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        proxy = Proxy("http://127.0.0.1:1", events, port=port)
        with pytest.raises(ConfigError) as caught:
            await proxy.start()
    assert caught.value.key == "proxy.port"
    assert f"proxy port {port} on 127.0.0.1 is not available" in caught.value.message


async def test_request_events_never_show_a_jwt_from_the_url(
    proxy: Proxy, client: aiohttp.ClientSession, events: EventLog
) -> None:
    token = "eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJ4In0.c2lnbmF0dXJl"
    async with client.get(f"{proxy.url}/page?a=1&jwt={token}&b=2") as response:
        assert response.status == 200
        assert (await response.json())["raw_path"] == f"/page?a=1&jwt={token}&b=2"
    async with client.get(f"{proxy.url}/page?jwt={token}") as response:
        await response.read()
    paths = [e.path for e in events.of("request")]  # type: ignore[attr-defined]
    assert paths == ["/page?a=1&jwt=••••••&b=2", "/page?jwt=••••••"]


async def test_request_events_carry_headers_with_credentials_masked(
    proxy: Proxy, client: aiohttp.ClientSession, events: EventLog
) -> None:
    headers = {"Authorization": "JWT abc.def.ghi", "Cookie": "s=1", "X-Trace": "t-1"}
    async with client.get(f"{proxy.url}/page", headers=headers) as response:
        echoed = (await response.json())["headers"]
    assert echoed["Authorization"] == "JWT abc.def.ghi", "the add-on gets it unchanged"
    (event,) = events.of("request")
    recorded = event.headers  # type: ignore[attr-defined]
    assert recorded["Authorization"] == "JWT •••••• (11 chars)"
    assert recorded["Cookie"] == "•••••• (3 chars)"
    assert recorded["X-Trace"] == "t-1"
    assert "abc.def.ghi" not in str(event.to_dict())


class ChoosyInspector:
    """Inspects only what ``wants_request`` lets through, and records what it was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str, str, str | None]] = []
        self.inspected: list[str] = []

    def wants_body(self, method: str, path: str) -> bool:
        return False

    def wants_request(self, method: str, path: str, query: str, authorization: str | None) -> bool:
        self.asked.append((method, path, query, authorization))
        return "inspect" in query or authorization is not None

    async def inspect(self, request: Any) -> dict[str, Any] | None:
        self.inspected.append(request.raw_path)
        return {"verified": True}


async def test_a_request_the_inspector_does_not_want_starts_no_inspection(
    upstream: tuple[str, list[dict[str, Any]]], events: EventLog, client: aiohttp.ClientSession
) -> None:
    inspector = ChoosyInspector()
    proxy = Proxy(upstream[0], events, port=0, inspector=inspector)
    await proxy.start()
    try:
        for path, headers in (
            ("/a%20page?x=%41", []),
            ("/b?inspect=1", []),
            ("/c", [("authorization", "Basic eA==")]),
            ("/d", []),
        ):
            async with client.get(URL(f"{proxy.url}{path}", encoded=True), headers=headers) as r:
                assert r.status == 200
        await events.wait_event("request", count=4)
        assert not proxy._answers, "no inspection is left behind"
    finally:
        await proxy.close()
    assert inspector.asked == [
        ("GET", "/a page", "x=%41", None),  # the path decoded, the query as received
        ("GET", "/b", "inspect=1", None),
        ("GET", "/c", "", "Basic eA=="),
        ("GET", "/d", "", None),
    ]
    assert inspector.inspected == ["/b?inspect=1", "/c"]
    served = events.of("request")
    assert [e.path for e in served] == ["/a%20page?x=%41", "/b?inspect=1", "/c", "/d"]  # type: ignore[attr-defined]
    assert [e.jwt for e in served] == [None, {"verified": True}, {"verified": True}, None]  # type: ignore[attr-defined]


def test_the_inspector_is_shown_the_authorization_header_it_would_read() -> None:
    from multidict import CIMultiDict

    from connect_devloop.proxy.http1 import parse_request_head
    from connect_devloop.proxy.server import _authorization

    for fields in (
        "\r\nauthorization: Basic eA==\r\nAuthorization: JWT second",
        "\r\nX-Authorization: JWT no\r\nAUTHORIZATION:  JWT yes ",
        "\r\nAccept: */*",
    ):
        head = parse_request_head(f"GET / HTTP/1.1\r\nHost: h{fields}")
        assert _authorization(head) == CIMultiDict(head.headers).get("Authorization")


def test_the_request_event_built_by_the_proxy_is_the_dataclass_one() -> None:
    from dataclasses import fields

    from connect_devloop.events import RequestServed

    values: dict[str, Any] = {
        "method": "POST",
        "path": "/p?jwt=••••••",
        "status": 201,
        "duration_ms": 1.25,
        "jwt": {"verified": True},
        "headers": {"X": "1"},
        "addon_error": "connection refused",
        "id": 7,
        "replay_of": 3,
    }
    fast = RequestServed.of(**values)
    assert fast == RequestServed(ts=fast.ts, **values)
    # A new field must be added to ``RequestServed.of`` too.
    assert {f.name for f in fields(RequestServed)} == {"ts", *values}
    assert fast.to_dict() == RequestServed(ts=fast.ts, **values).to_dict()
    with pytest.raises(AttributeError):
        fast.status = 1  # type: ignore[misc]


class BrokenInspector:
    """An inspector whose result the proxy cannot use: its verdict step raises."""

    def wants_body(self, method: str, path: str) -> bool:
        return False

    def wants_request(self, method: str, path: str, query: str, authorization: str | None) -> bool:
        return True  # every request

    async def inspect(self, request: Any) -> dict[str, Any] | None:
        return {"verified": True}


async def test_a_crash_in_a_proxy_task_is_reported_not_swallowed(
    upstream: tuple[str, list[dict[str, Any]]],
    events: EventLog,
    client: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken_verdict(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("verdict exploded")

    proxy = Proxy(upstream[0], events, port=0, inspector=BrokenInspector())
    monkeypatch.setattr(proxy, "verdict", broken_verdict)
    await proxy.start()
    try:
        async with client.get(f"{proxy.url}/page") as response:
            assert response.status == 200  # the add-on's answer reached the client
        error = await events.wait_event("error", timeout=5)
        # The request was still reported, and its kept-alive connection serves the next one.
        async with client.get(f"{proxy.url}/next") as response:
            assert response.status == 200
        await events.wait_for(lambda log: len(log.of("request")) == 2, timeout=5)
    finally:
        await proxy.close()
    assert error.task == "proxy task 'report request'"  # type: ignore[attr-defined]
    assert error.message.startswith(  # type: ignore[attr-defined]
        "proxy task 'report request' stopped on an unexpected error: RuntimeError (raised at "
    )


def test_the_events_headers_are_masked_as_redact_masks_headers() -> None:
    # The proxy inlines redact.mask_header's rule (it runs for every header of every request):
    # the two must never say different things.
    from connect_devloop.proxy.server import _masked_headers
    from connect_devloop.redact import mask_headers

    headers = [
        ("Authorization", "JWT eyJhbGciOiJIUzI1NiJ9.e30.sig"),
        ("Cookie", "session=abc123"),
        ("X-Api-Token", "planted-token-value"),
        ("Referer", "https://site.example/page?lang=en&jwt=eyJ.payload.sig"),
        ("Location", "/next?%6Awt=encoded-token&x=1"),
        ("Accept", "*/*"),
        ("X-Plain", "a?b=c"),
    ]
    assert _masked_headers(headers) == dict(mask_headers(headers))
    assert _masked_headers(headers) == dict(mask_headers(headers))  # from the name cache too
