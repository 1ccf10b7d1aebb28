"""The proxy's memory of recent exchanges: the traffic inspector's raw material.

The relay (``relay.py``) hands each exchange's parts to an ``Exchange`` as they pass: the
request head as it was received, the first ``body_limit`` bytes of each body (the rest is
counted, not kept) and the response head's text. Nothing is decoded or masked here, and a
kept head is parsed again only when someone looks (``connect_devloop.traffic``). ``Capture``
keeps the last ``keep`` exchanges once they are reported, numbered in the order their
``request`` events go out, so an id in the log, the dashboard and ``connect-dev requests`` is
one id.

Everything here is raw, credentials included: a replay that is asked to send a request
unchanged needs them. It lives in the daemon's memory only; whatever leaves it is masked by
``traffic.view`` unless the user asked for secrets.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from .http1 import RequestHead, parse_request_head

__all__ = ["DEFAULT_BODY_LIMIT", "DEFAULT_KEEP", "Capture", "Exchange"]

DEFAULT_KEEP = 500
DEFAULT_BODY_LIMIT = 64 * 1024


class Exchange:
    """One request and its response, as the proxy saw them (bodies capped).

    A plain class with slots, built once per request on the relay's path: no bytearray is
    made until a body has a second piece (most bodies arrive in one read, and a whole read
    within the cap is kept as the ``bytes`` the transport gave, uncopied)."""

    __slots__ = (
        "_request",
        "client_port",
        "duration_ms",
        "failure",
        "head_text",
        "id",
        "limit",
        "local",
        "replay_of",
        "request_body",
        "request_size",
        "response_body",
        "response_chunked",
        "response_head",
        "response_size",
        "started",
        "status",
        "verdict",
    )

    def __init__(
        self,
        request: RequestHead,
        started: float,
        limit: int,
        client_port: int = 0,
        head_text: str = "",
    ) -> None:
        self._request: RequestHead | None = request
        # The request head as received: what is kept once the exchange is reported (see
        # ``keep``), and parsed again only when someone looks.
        self.head_text = head_text
        self.started = started  # wall-clock seconds
        self.limit = limit  # bytes kept of each body
        # the local port of the client's connection (replays are found by it)
        self.client_port = client_port
        self.request_body: bytes | bytearray = b""
        self.request_size = 0  # every body byte seen, kept or not (chunked: with its framing)
        self.response_head = ""  # the status line and header lines as received, no final CRLF
        self.response_body: bytes | bytearray = b""
        self.response_size = 0
        self.response_chunked = False
        self.local = False  # the proxy answered itself (the descriptor, a 502, a refusal)
        # Set when the exchange is reported
        self.id = 0
        self.status = 0
        self.duration_ms = 0.0
        self.verdict: dict[str, Any] | None = None
        self.failure = ""
        self.replay_of = 0  # the id this exchange replays (0: it came from a client)

    @property
    def request(self) -> RequestHead:
        request = self._request
        if request is None:
            request = self._request = parse_request_head(self.head_text)
        return request

    def keep(self) -> None:
        """Let go of what was parsed: a kept exchange holds a few strings and bytes, not the
        parsed head's dozens of objects, which the relay would otherwise have freed while they
        were still in the cache (freeing them 500 requests later cost the relay measurably)."""
        if self.head_text:
            self._request = None
        if type(self.request_body) is bytearray:
            self.request_body = bytes(self.request_body)
        if type(self.response_body) is bytearray:
            self.response_body = bytes(self.response_body)

    def add_request_body(self, piece: bytes | bytearray | memoryview) -> None:
        size = len(piece)
        self.request_size += size
        self.request_body = _kept(self.request_body, piece, 0, size, self.limit)

    def add_response_body(
        self, data: bytes | bytearray | memoryview, start: int, stop: int
    ) -> None:
        if stop > start:
            self.response_size += stop - start
            self.response_body = _kept(self.response_body, data, start, stop, self.limit)

    def set_local_response(self, data: bytes) -> None:
        """A complete response the proxy wrote itself (``simple_response``)."""
        self.local = True
        head, _, body = data.partition(b"\r\n\r\n")
        self.response_head = head.decode("latin-1")
        self.response_body = body[: self.limit]
        self.response_size = len(body)

    @property
    def request_truncated(self) -> bool:
        return self.request_size > len(self.request_body)

    @property
    def response_truncated(self) -> bool:
        return self.response_size > len(self.response_body)


def _kept(
    body: bytes | bytearray, data: bytes | bytearray | memoryview, start: int, stop: int, limit: int
) -> bytes | bytearray:
    """``body`` with ``data[start:stop]`` added, up to ``limit`` bytes in all."""
    room = limit - len(body)
    if room <= 0:
        return body
    stop = min(stop, start + room)
    if not body:
        if start == 0 and stop == len(data) and type(data) is bytes:
            return data  # immutable: kept as it is
        return bytes(data[start:stop])
    grown = body if isinstance(body, bytearray) else bytearray(body)
    grown += data[start:stop]
    return grown


class Capture:
    """The last ``keep`` reported exchanges, by id; and the replays on their way."""

    def __init__(
        self,
        *,
        keep: int = DEFAULT_KEEP,
        body_limit: int = DEFAULT_BODY_LIMIT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keep = keep
        self.body_limit = body_limit
        self._clock = clock
        # Ids are consecutive: the oldest kept is always ``last_id - keep + 1``.
        self._exchanges: dict[int, Exchange] = {}
        self._last_id = 0
        # Replays sent through the proxy, by the local port of their connection: the relay
        # sees them as any other client, and this is how their exchange learns what it replays.
        self._replays: dict[int, tuple[int, asyncio.Future[Exchange]]] = {}
        self._listeners: list[Callable[[Exchange], None]] = []

    def begin(self, request: RequestHead, client_port: int, head_text: str = "") -> Exchange:
        """An exchange for ``request`` (``head_text``: its head as received, what is kept)."""
        exchange = Exchange(request, self._clock(), self.body_limit, client_port, head_text)
        if self._replays and client_port in self._replays:
            exchange.replay_of = self._replays[client_port][0]
        return exchange

    def commit(
        self,
        exchange: Exchange,
        status: int,
        seconds: float,
        verdict: dict[str, Any] | None,
        failure: str,
    ) -> int:
        """Keep ``exchange`` as reported; its id (for the ``request`` event)."""
        number = self._last_id = self._last_id + 1
        exchange.id = number
        exchange.status = status
        exchange.duration_ms = round(seconds * 1000, 2)
        exchange.verdict = verdict
        exchange.failure = failure
        exchange.keep()
        exchanges = self._exchanges
        exchanges[number] = exchange
        if number > self.keep:
            exchanges.pop(number - self.keep, None)
        if exchange.replay_of:
            waiting = self._replays.pop(exchange.client_port, None)
            if waiting is not None and not waiting[1].done():
                waiting[1].set_result(exchange)
        if self._listeners:
            for listener in self._listeners:
                listener(exchange)
        return number

    def get(self, exchange_id: int) -> Exchange | None:
        return self._exchanges.get(exchange_id)

    def all(self) -> list[Exchange]:
        """The kept exchanges, oldest first."""
        return list(self._exchanges.values())

    @property
    def last_id(self) -> int:
        return self._last_id

    def oldest_id(self) -> int:
        return next(iter(self._exchanges), 0)

    def expect_replay(self, client_port: int, replay_of: int) -> asyncio.Future[Exchange]:
        """The exchange of the replay of ``replay_of`` sent from ``client_port``, once
        reported."""
        done: asyncio.Future[Exchange] = asyncio.get_running_loop().create_future()
        self._replays[client_port] = (replay_of, done)
        return done

    def forget_replay(self, client_port: int) -> None:
        self._replays.pop(client_port, None)

    def listen(self, listener: Callable[[Exchange], None]) -> Callable[[], None]:
        """Call ``listener`` with each exchange as it is kept (on the proxy's loop); returns
        the function that stops it."""
        self._listeners.append(listener)

        def stop() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return stop
