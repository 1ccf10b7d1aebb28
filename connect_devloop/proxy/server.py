"""The loopback proxy that the tunnel exposes.

It answers ``GET /atlassian-connect.json`` itself with the descriptor rendered for the public URL,
and forwards everything else to the add-on server unchanged: method, path and raw query byte for
byte, headers, and bodies streamed both ways (no decompression, no redirect following, no cookie
jar), adding ``X-Forwarded-For/Proto/Host`` so the add-on can rebuild its public URL. Every
request is reported as a ``request`` event. It never exposes a control endpoint.

The forwarding is a byte relay on asyncio (``relay.py``, with the HTTP/1.1 parsing and
framing in ``http1.py``): per request it parses the two heads and copies the bodies,
which costs a fraction of what an HTTP server plus an HTTP client would (docs/performance.md).
This module is what the rest of connect-dev sees: the descriptor, the inspector, the events.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from ..descriptor import Revision, render_bytes
from ..errors import DevloopError
from ..events import Event, RequestServed
from ..redact import is_secret_name, mask_path, mask_value
from ..tasks import report_crash
from ..upm.explain import GATEWAY_STATUSES, CallbackRejectedError, explain_addon_unreachable
from .capture import Capture, Exchange
from .http1 import RequestHead, simple_response
from .relay import MAX_INSPECTED_BODY, Relay, Upstream

__all__ = [
    "DESCRIPTOR_PATH",
    "INSPECTION_TIMEOUT_SECONDS",
    "AddonAnswer",
    "AddonFailure",
    "Inspector",
    "ProxiedRequest",
    "Proxy",
]

logger = logging.getLogger(__name__)

DESCRIPTOR_PATH = "/atlassian-connect.json"
# Bodies the inspector asks for (lifecycle callbacks) are copied for it when they have a
# Content-Length up to MAX_INSPECTED_BODY (1 MiB); others are forwarded uninspected.
__all__ += ["MAX_INSPECTED_BODY"]
INSPECTION_TIMEOUT_SECONDS = 5.0
# How long ``callbacks_reported`` waits for the inspector's reports of lifecycle callbacks.
CALLBACK_REPORT_WAIT_SECONDS = 2.0


@dataclass(frozen=True)
class AddonAnswer:
    """How a forwarded request ended for the client."""

    status: int  # the add-on's status; the proxy's own 502 when ``failure``; 499: client left
    failure: str = ""  # why the add-on gave no answer ("connection refused", ...), else ""

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300 and not self.failure


@dataclass(frozen=True)
class AddonFailure:
    """A request the proxy had to answer itself because the add-on did not."""

    method: str
    path: str  # decoded, without the query
    reason: str
    at: float  # time.monotonic()


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
    # Resolves once the client got its answer (only after the inspector's body was forwarded);
    # None when nobody forwards it (tests).
    answer: Awaitable[AddonAnswer] | None = None


class Inspector(Protocol):
    """Observes proxied requests (lifecycle callbacks, Connect JWTs) without altering them.

    ``inspect`` runs concurrently with forwarding, so it never delays the add-on; what it
    returns is added to the request's ``request`` event as ``jwt``.
    """

    def wants_body(self, method: str, path: str) -> bool: ...

    def wants_request(self, method: str, path: str, query: str, authorization: str | None) -> bool:
        """False when ``inspect`` would return None for this request at once and with no
        effect (then it is not called): ``path`` decoded, ``query`` as received, and
        ``authorization`` the first Authorization header (None without one). Asked for every
        request, so it must be cheap."""
        ...

    async def inspect(self, request: ProxiedRequest) -> dict[str, Any] | None: ...


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
        capture: Capture | None = None,
        unreported: Callable[[str], bool] | None = None,
    ) -> None:
        """``unreported``: true for a request target that is connect-dev's own (the tunnel
        keeper's probes), which is neither captured nor reported: the ids the inspector gives
        are then those of the add-on's traffic, with no gaps."""
        self.addon_url = addon_url.rstrip("/")
        self._unreported = unreported
        self.capture = capture
        self._emit = emit
        self._port = port
        self._bind = bind
        self._upstream_timeout = upstream_timeout
        self._inspector = inspector
        self._server: asyncio.Server | None = None
        self._relay: Relay | None = None
        self._descriptor: bytes | None = None
        self._revision: Revision | None = None
        self._public_url = ""
        self._answers: dict[asyncio.Task[dict[str, Any] | None], asyncio.Future[AddonAnswer]] = {}
        # Inspections of lifecycle callbacks (the requests whose body the inspector asked for)
        # that have not ended: their ``lifecycle`` events are still to come.
        self._callbacks: set[asyncio.Task[dict[str, Any] | None]] = set()
        self.last_failure: AddonFailure | None = None
        self.url = ""

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1]) if self.url else self._port

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._relay = Relay(
            self, Upstream.from_url(self.addon_url), self._upstream_timeout, self.capture
        )
        try:
            self._server = await loop.create_server(
                self._relay.accept, self._bind, self._port, reuse_address=True
            )
        except OSError as exc:
            await self.close()
            from ..errors import ConfigError

            raise ConfigError(
                f"proxy port {self._port} on {self._bind} is not available: {exc.strerror}",
                hint="Set [proxy] port to a free port, or 0 to pick any free port.",
                key="proxy.port",
            ) from exc
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://{self._bind}:{port}"

    async def close(self) -> None:
        server, self._server = self._server, None
        relay, self._relay = self._relay, None
        if server is not None:
            server.close()  # no new connections
        if relay is not None:
            await relay.close()
        for answer in self._answers.values():
            answer.cancel()  # no answer will come: inspections waiting for one end
        self._answers.clear()
        if server is not None:
            await server.wait_closed()

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

    # --- what the relay asks (relay.Handler) --------------------------------------------------

    def local_response(self, request: RequestHead) -> tuple[int, bytes] | None:
        if request.method not in ("GET", "HEAD"):
            return None
        if request.path != DESCRIPTOR_PATH and _decoded_path(request) != DESCRIPTOR_PATH:
            return None
        head_request = request.method == "HEAD"
        if self._descriptor is None:
            text = b"connect-dev: no valid atlassian-connect.json yet; fix it and save.\n"
            return 503, simple_response(503, text, head_request=head_request)
        return 200, simple_response(
            200,
            self._descriptor,
            content_type="application/json",
            headers=(("Cache-Control", "no-store"),),
            head_request=head_request,
        )

    def unreachable_text(self, request: RequestHead, reason: str) -> str:
        # Noted now, before the client reads the 502: a host fails its install on it at once,
        # and the registrar's explanation must already find why.
        self.last_failure = AddonFailure(
            request.method, _decoded_path(request), reason, time.monotonic()
        )
        return (
            f"connect-dev proxy: the add-on server at {self.addon_url} did not answer "
            f"({reason}).\nStart it, or fix [addon] url in connect-dev.toml.\n"
        )

    def explain_install_failure(self, error: DevloopError, since: float) -> DevloopError:
        """``error`` as the user should read it: when a host failed an install because the
        add-on rejected the ``installed`` callback with 502/503/504, and this proxy gave that
        answer itself (the add-on did not answer a POST since ``since``, ``time.monotonic()``),
        the cause is the add-on server, not its handler."""
        failure = self.last_failure
        if (
            not isinstance(error, CallbackRejectedError)
            or error.callback_status not in (None, *GATEWAY_STATUSES)
            or failure is None
            or failure.at < since
            or failure.method != "POST"
        ):
            return error
        return explain_addon_unreachable(error, self.addon_url, failure.reason)

    def wants_body(self, request: RequestHead) -> bool:
        inspector = self._inspector
        return inspector is not None and inspector.wants_body(
            request.method, _decoded_path(request)
        )

    def inspect(
        self, request: RequestHead, body: bytes | None
    ) -> asyncio.Task[dict[str, Any] | None] | None:
        inspector = self._inspector
        if inspector is None:
            return None
        if body is None and not inspector.wants_request(
            request.method, _decoded_path(request), request.query, _authorization(request)
        ):
            return None  # most requests: no task, and the event is reported at once
        url = _url(request)
        answer: asyncio.Future[AddonAnswer] = asyncio.get_running_loop().create_future()
        seen = ProxiedRequest(
            method=request.method,
            raw_path=request.target,
            path=url.path if url is not None else request.path,
            query_string=url.query_string if url is not None else request.query,
            headers=CIMultiDictProxy(CIMultiDict(request.headers)),
            body=body,
            public_url=self._public_url,
            answer=answer,
        )
        task = asyncio.create_task(inspector.inspect(seen), name="inspect request")
        self._answers[task] = answer
        task.add_done_callback(self._forget_answer)
        if body is not None:
            self._callbacks.add(task)
            task.add_done_callback(self._callbacks.discard)
        return task

    async def callbacks_reported(self) -> None:
        """Wait (CALLBACK_REPORT_WAIT_SECONDS at most) until the inspector has reported every
        lifecycle callback this proxy has received so far. A host calls ``installed`` before it
        finishes the install: the registrar waits for this before it reports the install, so
        that a host's ``lifecycle`` line comes before its ``registered`` line."""
        if self._callbacks:
            await asyncio.wait(list(self._callbacks), timeout=CALLBACK_REPORT_WAIT_SECONDS)

    def _forget_answer(self, task: asyncio.Task[dict[str, Any] | None]) -> None:
        answer = self._answers.pop(task, None)
        if answer is not None and not answer.done():
            answer.cancel()

    async def verdict(
        self, inspection: asyncio.Task[dict[str, Any] | None], status: int, failure: str
    ) -> dict[str, Any] | None:
        answer = self._answers.pop(inspection, None)
        if answer is not None and not answer.done():
            answer.set_result(AddonAnswer(status, failure))
        return await _finish(inspection)

    def task_failed(self, task: str, error: BaseException) -> None:
        report_crash(f"proxy task '{task}'", error, self._emit, then="The proxy goes on")

    def served(
        self,
        request: RequestHead,
        status: int,
        seconds: float,
        verdict: dict[str, Any] | None,
        failure: str,
        exchange: Exchange | None = None,
    ) -> None:
        if self._unreported is not None and self._unreported(request.target):
            return
        number = replay_of = 0
        if exchange is not None and self.capture is not None:
            number = self.capture.commit(exchange, status, seconds, verdict, failure)
            replay_of = exchange.replay_of
        # A Connect JWT in the URL or a header is a bearer credential until it expires:
        # events (and so every log) only ever see it masked.
        self._emit(
            RequestServed.of(
                request.method,
                mask_path(request.target),
                status,
                round(seconds * 1000, 2),
                verdict,
                _masked_headers(request.headers),
                failure,
                number,
                replay_of,
            )
        )


# Header name -> whether its value is a credential (redact.is_secret_name), for the names
# clients keep sending; bounded so that made-up names cannot grow it.
_SECRET_NAMES: dict[str, bool] = {}


def _masked_headers(headers: list[tuple[str, str]]) -> dict[str, str]:
    """``dict(redact.mask_headers(headers))``, without judging the same names every time."""
    masked = {}
    for name, value in headers:
        secret = _SECRET_NAMES.get(name)
        if secret is None:
            secret = is_secret_name(name)
            if len(_SECRET_NAMES) < 1024:
                _SECRET_NAMES[name] = secret
        if secret:
            value = mask_value(value)
        elif "?" in value:  # a URL (Referer, Location) with ?jwt= in it
            value = mask_path(value)
        masked[name] = value
    return masked


def _authorization(request: RequestHead) -> str | None:
    """The first Authorization header's value (as ``CIMultiDict.get`` finds it), or None."""
    for name, value in request.headers:
        if len(name) == 13 and name.lower() == "authorization":
            return value
    return None


def _url(request: RequestHead) -> URL | None:
    """The request's path and query as aiohttp would decode them (what inspectors expect)."""
    try:
        return URL.build(path=request.path, query_string=request.query, encoded=True)
    except ValueError:
        return None


def _decoded_path(request: RequestHead) -> str:
    path = request.path
    if "%" not in path:
        return path
    url = _url(request)
    return url.path if url is not None else path


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
