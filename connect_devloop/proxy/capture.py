"""The proxy's memory of recent exchanges: the traffic inspector's raw material.

The relay (``relay.py``) hands each exchange's parts to an ``Exchange`` as they pass: the
request head it already parsed, the first ``body_limit`` bytes of each body (the rest is
counted, not kept) and the response head's text. Nothing is parsed, decoded or masked here:
that costs time only when someone looks (``connect_devloop.traffic``). ``Capture`` keeps the
last ``keep`` exchanges once they are reported, numbered in the order their ``request``
events go out, so an id in the log, the dashboard and ``connect-dev requests`` is one id.

Everything here is raw, credentials included: a replay that is asked to send a request
unchanged needs them. It lives in the daemon's memory only; whatever leaves it is masked by
``traffic.view`` unless the user asked for secrets.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .http1 import RequestHead

__all__ = ["DEFAULT_BODY_LIMIT", "DEFAULT_KEEP", "Capture", "Exchange"]

DEFAULT_KEEP = 500
DEFAULT_BODY_LIMIT = 64 * 1024


@dataclass(slots=True, eq=False)
class Exchange:
    """One request and its response, as the proxy saw them (bodies capped)."""

    request: RequestHead
    started: float  # wall-clock seconds
    limit: int  # bytes kept of each body
    request_body: bytearray = field(default_factory=bytearray)
    request_size: int = 0  # every body byte seen, kept or not (chunked: with its framing)
    response_head: str = ""  # the status line and header lines as received, no final CRLF
    response_body: bytearray = field(default_factory=bytearray)
    response_size: int = 0
    response_chunked: bool = False
    local: bool = False  # the proxy answered itself (the descriptor, a 502, a refusal)
    client_port: int = 0  # the local port of the client's connection (replays are found by it)
    # Set when the exchange is reported
    id: int = 0
    status: int = 0
    duration_ms: float = 0.0
    verdict: dict[str, Any] | None = None
    failure: str = ""
    replay_of: int = 0  # the id this exchange replays (0: it came from a client)

    def add_request_body(self, piece: bytes | bytearray | memoryview) -> None:
        size = len(piece)
        room = self.limit - len(self.request_body)
        if room > 0:
            self.request_body += piece if size <= room else piece[:room]
        self.request_size += size

    def add_response_body(
        self, data: bytes | bytearray | memoryview, start: int, stop: int
    ) -> None:
        if stop <= start:
            return
        room = self.limit - len(self.response_body)
        if room > 0:
            self.response_body += data[start : min(stop, start + room)]
        self.response_size += stop - start

    def set_local_response(self, data: bytes) -> None:
        """A complete response the proxy wrote itself (``simple_response``)."""
        self.local = True
        head, _, body = data.partition(b"\r\n\r\n")
        self.response_head = head.decode("latin-1")
        self.response_body = bytearray(body[: self.limit])
        self.response_size = len(body)

    @property
    def request_truncated(self) -> bool:
        return self.request_size > len(self.request_body)

    @property
    def response_truncated(self) -> bool:
        return self.response_size > len(self.response_body)


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
        self._exchanges: OrderedDict[int, Exchange] = OrderedDict()
        self._last_id = 0
        # Replays sent through the proxy, by the local port of their connection: the relay
        # sees them as any other client, and this is how their exchange learns what it replays.
        self._replays: dict[int, tuple[int, asyncio.Future[Exchange]]] = {}
        self._listeners: list[Callable[[Exchange], None]] = []

    def begin(self, request: RequestHead, client_port: int) -> Exchange:
        exchange = Exchange(request, self._clock(), self.body_limit, client_port=client_port)
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
        self._last_id += 1
        exchange.id = self._last_id
        exchange.status = status
        exchange.duration_ms = round(seconds * 1000, 2)
        exchange.verdict = verdict
        exchange.failure = failure
        exchanges = self._exchanges
        exchanges[exchange.id] = exchange
        if len(exchanges) > self.keep:
            exchanges.popitem(last=False)
        port = exchange.client_port
        if exchange.replay_of and port in self._replays:
            _, done = self._replays.pop(port)
            if not done.done():
                done.set_result(exchange)
        for listener in self._listeners:
            listener(exchange)
        return exchange.id

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
