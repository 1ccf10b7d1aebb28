"""The loopback proxy that the tunnel exposes.

It answers ``GET /atlassian-connect.json`` itself with the descriptor rendered for the public URL,
and forwards everything else to the add-on server unchanged: method, path, raw query, headers,
and bodies streamed both ways (no decompression, no redirect following, no cookie jar), adding
``X-Forwarded-For/Proto/Host`` so the add-on can rebuild its public URL. Every request is
reported as a ``request`` event. It never exposes a control endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from .descriptor import Revision, render_bytes
from .events import Event, RequestServed
from .redact import mask_headers, mask_path

__all__ = [
    "DESCRIPTOR_PATH",
    "INSPECTION_TIMEOUT_SECONDS",
    "Inspector",
    "ProxiedRequest",
    "Proxy",
]

logger = logging.getLogger(__name__)

DESCRIPTOR_PATH = "/atlassian-connect.json"
# Bodies the inspector asks for (lifecycle callbacks) are buffered; past this size they are
# streamed to the add-on uninspected rather than held in memory.
MAX_INSPECTED_BODY = 1024 * 1024
INSPECTION_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class ProxiedRequest:
    """What an ``Inspector`` sees of a request the proxy forwards (it cannot change it)."""

    method: str
    raw_path: str  # path and query exactly as received, still percent-encoded
    path: str  # decoded path, without the query
    query_string: str
    headers: Mapping[str, str]
    body: bytes | None  # only when the inspector asked for it with wants_body()
    public_url: str  # the public base URL the descriptor is served for


class Inspector(Protocol):
    """Observes proxied requests (lifecycle callbacks, Connect JWTs) without altering them.

    ``inspect`` runs concurrently with forwarding, so it never delays the add-on; what it
    returns is added to the request's ``request`` event as ``jwt``.
    """

    def wants_body(self, method: str, path: str) -> bool: ...

    async def inspect(self, request: ProxiedRequest) -> dict[str, Any] | None: ...


# RFC 9110 §7.6.1 hop-by-hop headers, plus those aiohttp recomputes for each leg.
_HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
    )
)


class Proxy:
    def __init__(
        self,
        addon_url: str,
        emit: Callable[[Event], None],
        *,
        port: int = 0,
        bind: str = "127.0.0.1",
        upstream_timeout: float = 300.0,
        inspector: Inspector | None = None,
    ) -> None:
        self.addon_url = addon_url.rstrip("/")
        self._emit = emit
        self._port = port
        self._bind = bind
        self._upstream_timeout = upstream_timeout
        self._inspector = inspector
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._descriptor: bytes | None = None
        self._revision: Revision | None = None
        self._public_url = ""
        self.url = ""

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1]) if self.url else self._port

    async def start(self) -> None:
        # Compression, redirects and cookies belong to the browser and the add-on, not to us.
        self._session = aiohttp.ClientSession(
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=10, sock_read=self._upstream_timeout
            ),
        )
        app = web.Application(client_max_size=0)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._bind, self._port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await self.close()
            from .errors import ConfigError

            raise ConfigError(
                f"proxy port {self._port} on {self._bind} is not available: {exc.strerror}",
                hint="Set [proxy] port to a free port, or 0 to pick any free port.",
                key="proxy.port",
            ) from exc
        port = self._runner.addresses[0][1]
        self.url = f"http://{self._bind}:{port}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def publish(self, revision: Revision | None, public_url: str) -> None:
        """Serve ``revision`` rendered for ``public_url`` from now on (None: nothing valid yet)."""
        self._revision = revision
        self._public_url = public_url
        self._descriptor = (
            render_bytes(revision.document, public_url) if revision is not None else None
        )

    @property
    def descriptor(self) -> bytes | None:
        return self._descriptor

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        status = 500
        response: web.StreamResponse
        inspection: asyncio.Task[dict[str, Any] | None] | None = None
        try:
            if request.path == DESCRIPTOR_PATH and request.method in ("GET", "HEAD"):
                response = self._serve_descriptor()
            else:
                body = await self._body_for_inspection(request)
                inspection = self._start_inspection(request, body)
                response = await self._forward(request, body)
            status = response.status
            return response
        except asyncio.CancelledError:
            status = 499  # the client went away mid-request (nginx's convention)
            raise
        finally:
            verdict = await _finish(inspection)
            self._emit(
                RequestServed(
                    method=request.method,
                    # A Connect JWT in the URL or a header is a bearer credential until it
                    # expires: events (and so every log) only ever see it masked.
                    path=mask_path(request.path_qs),
                    headers=dict(mask_headers(request.headers.items())),
                    status=status,
                    duration_ms=round((time.monotonic() - started) * 1000, 2),
                    jwt=verdict,
                )
            )

    async def _body_for_inspection(self, request: web.Request) -> bytes | None:
        if self._inspector is None or not self._inspector.wants_body(request.method, request.path):
            return None
        if (request.content_length or 0) > MAX_INSPECTED_BODY:
            return None
        return await request.read()

    def _start_inspection(
        self, request: web.Request, body: bytes | None
    ) -> asyncio.Task[dict[str, Any] | None] | None:
        if self._inspector is None:
            return None
        seen = ProxiedRequest(
            method=request.method,
            raw_path=request.raw_path,
            path=request.path,
            query_string=request.query_string,
            headers=request.headers,
            body=body,
            public_url=self._public_url,
        )
        return asyncio.create_task(self._inspector.inspect(seen), name="inspect request")

    def _serve_descriptor(self) -> web.Response:
        if self._descriptor is None:
            return web.Response(
                status=503,
                text="connect-dev: no valid atlassian-connect.json yet; fix it and save.\n",
            )
        return web.Response(
            body=self._descriptor,
            content_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    async def _forward(self, request: web.Request, body: bytes | None) -> web.StreamResponse:
        assert self._session is not None
        # encoded=True: forward the raw path and query byte for byte. yarl would otherwise
        # normalise escapes (%2A -> *), and the add-on must see exactly what the host sent.
        target = URL(self.addon_url + request.raw_path, encoded=True)
        headers = self._upstream_headers(request)
        data: bytes | aiohttp.StreamReader | None = body
        if body is None and request.body_exists:
            data = request.content
        try:
            upstream = await self._session.request(
                request.method,
                target,
                headers=headers,
                data=data,
                allow_redirects=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
            )
        except (aiohttp.ClientConnectionError, OSError, TimeoutError) as exc:
            logger.debug("upstream %s failed: %r", target, exc)
            reason = str(exc) or type(exc).__name__
            return web.Response(
                status=502,
                text=(
                    f"connect-dev proxy: the add-on server at {self.addon_url} did not answer "
                    f"({reason}).\nStart it, or fix [addon] url in connect-dev.toml.\n"
                ),
            )
        try:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for name, value in upstream.headers.items():
                if name.lower() not in _HOP_BY_HOP:
                    response.headers.add(name, value)
            if upstream.headers.get("Content-Length") is None:
                response.enable_chunked_encoding()
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response
        except (aiohttp.ClientError, ConnectionResetError) as exc:
            logger.debug("streaming %s failed: %r", target, exc)
            with contextlib.suppress(Exception):
                if request.transport is not None:
                    request.transport.close()
            return response
        finally:
            upstream.release()

    def _upstream_headers(self, request: web.Request) -> CIMultiDict[str]:
        headers: CIMultiDict[str] = CIMultiDict()
        for name, value in request.headers.items():
            if name.lower() not in _HOP_BY_HOP and name.lower() != "host":
                headers.add(name, value)
        peer = request.remote or ""
        previous = request.headers.get("X-Forwarded-For")
        headers["X-Forwarded-For"] = f"{previous}, {peer}" if previous else peer
        # A tunnel agent in front of us (ngrok) already says https; keep what it said.
        headers.setdefault("X-Forwarded-Proto", request.scheme)
        headers.setdefault("X-Forwarded-Host", request.host)
        return headers


async def _finish(inspection: asyncio.Task[dict[str, Any] | None] | None) -> dict[str, Any] | None:
    """The inspector's verdict, bounded in time; an inspector bug never breaks a request."""
    if inspection is None:
        return None
    try:
        return await asyncio.wait_for(inspection, INSPECTION_TIMEOUT_SECONDS)
    except TimeoutError:
        return {"verified": False, "reason": "inspection timed out"}
    except Exception:
        logger.exception("request inspection failed")
        return {"verified": False, "reason": "inspection failed (see the log with -v)"}
