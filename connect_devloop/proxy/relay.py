"""The byte relay behind ``Proxy``: client connections, add-on connections and their pool.

Each connection accepted from the tunnel is a ``ClientConnection``; each connection to the
add-on is an ``UpstreamConnection``. Both are ``asyncio.Protocol`` callbacks rather than
coroutines: a request costs two reads and two writes and no task, no future and no timer, which
is what lets a Python relay keep up with the add-on (see docs/performance.md).

One request at a time per client connection: its head is parsed (``http1``), answered
locally (``Handler.local_response``: the descriptor) or sent with its body to an add-on
connection from the idle pool (or a new one), and the add-on's response is parsed just enough
to know where it ends while its bytes go back to the client. Bytes that arrive after a request
(pipelining) wait in the buffer until the response is complete. An add-on connection serves one
exchange at a time and goes back to the pool only when both the request and the response ended
cleanly, so two requests are never in flight on one add-on connection.

Timeouts cost nothing per read: each connection notes when it last made progress, and one
sweep a second closes those that stalled for too long. Backpressure: when a transport's write
buffer is above its high-water mark, reading the side that feeds it pauses until it drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

from .capture import Capture, Exchange
from .http1 import (
    MAX_HEAD,
    ChunkedScanner,
    HttpError,
    RequestHead,
    parse_request_head,
    parse_response_head,
    simple_response,
)

__all__ = ["Handler", "Relay", "Upstream"]

logger = logging.getLogger(__name__)

Verdict = dict[str, Any] | None

CONNECT_TIMEOUT = 10.0
# A kept-alive client connection with no request is closed after this; it is also how long a
# request head may take to arrive, and how long a client may pause while sending a body or
# stop reading its answer.
CLIENT_IDLE_TIMEOUT = 75.0
# Idle add-on connections are closed before the add-on closes them: Node's default keep-alive
# is 5 s, and a request sent on a connection the server is closing at that moment is lost.
UPSTREAM_IDLE_TIMEOUT = 3.0
MAX_IDLE_UPSTREAMS = 64
SWEEP_INTERVAL = 1.0
# After an error answer, how long what the client still sends is read and dropped before the
# connection closes: closing with unread data makes the kernel send a reset, which can destroy
# the answer before the client reads it (nginx's lingering close).
LINGER_SECONDS = 2.0
# How long closing the proxy waits for the verdicts of requests already answered.
REPORT_GRACE_SECONDS = 6.0
# What a client may have buffered here beyond the current request (pipelined bytes, or body
# bytes while the add-on connection opens) before reading from it pauses.
MAX_PENDING = 256 * 1024
WRITE_HIGH_WATER = 256 * 1024
# Request bodies an inspector asks for are copied for it up to this size; bigger ones are
# only forwarded.
MAX_INSPECTED_BODY = 1024 * 1024
# A request may be sent again on a fresh connection when a kept-alive one turns out to be
# closed before any answer, and repeating it is harmless (RFC 9110 §9.2.2).
IDEMPOTENT = frozenset(("GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"))

_now = time.monotonic


class Handler(Protocol):
    """What the relay asks of the proxy: it moves bytes, the proxy decides and reports."""

    def local_response(self, request: RequestHead) -> tuple[int, bytes] | None:
        """A status and complete response to answer without the add-on, or None."""

    def unreachable_text(self, request: RequestHead, reason: str) -> str:
        """The body of the 502 answered when the add-on does not answer."""

    def wants_body(self, request: RequestHead) -> bool:
        """True when the inspector needs the body of this request."""

    def inspect(self, request: RequestHead, body: bytes | None) -> asyncio.Task[Verdict] | None:
        """Start inspecting a forwarded request (None: nothing inspects it)."""

    async def verdict(
        self, inspection: asyncio.Task[Verdict], status: int, failure: str
    ) -> Verdict:
        """The inspection's result, bounded in time, once the client got ``status``
        (``failure``: why the relay answered it itself, "" when the add-on answered)."""

    def served(
        self,
        request: RequestHead,
        status: int,
        seconds: float,
        verdict: Verdict,
        failure: str,
        exchange: Exchange | None,
    ) -> None:
        """Report a request that ended after ``seconds`` (``failure`` as for ``verdict``;
        ``exchange``: what was captured of it, when the relay captures)."""

    def task_failed(self, task: str, error: BaseException) -> None:
        """A task of the relay (connecting, reporting) ended on an unexpected error."""


@dataclass(frozen=True)
class Upstream:
    """Where the add-on listens, and how its requests are addressed."""

    host: str
    port: int
    ssl: ssl.SSLContext | None
    host_header: str  # the Host the add-on is sent: its own host:port
    prefix: str  # the base path of the add-on's URL, prepended to each path

    @classmethod
    def from_url(cls, url: str) -> Upstream:
        parts = urlsplit(url)
        https = parts.scheme == "https"
        return cls(
            host=parts.hostname or "localhost",
            port=parts.port or (443 if https else 80),
            ssl=ssl.create_default_context() if https else None,
            host_header=parts.netloc.rpartition("@")[2],
            prefix=parts.path.rstrip("/"),
        )


class Relay:
    """What client and add-on connections share: the add-on, the idle pool, the sweep."""

    def __init__(
        self,
        handler: Handler,
        upstream: Upstream,
        upstream_timeout: float,
        capture: Capture | None = None,
    ) -> None:
        self.handler = handler
        self.capture = capture
        self.upstream = upstream
        self.upstream_timeout = upstream_timeout
        self.loop = asyncio.get_running_loop()
        self.clients: set[ClientConnection] = set()
        self.upstreams: set[UpstreamConnection] = set()  # every open add-on connection
        self.idle: list[UpstreamConnection] = []  # the pool, most recently used last
        self.tasks: set[asyncio.Task[None]] = set()  # connections being opened
        self.reports: set[asyncio.Task[None]] = set()  # events waiting for a verdict
        self.connections_opened = 0  # add-on connections opened so far (for tests and stats)
        self.closed = False
        self._sweeper = self.loop.call_later(SWEEP_INTERVAL, self._sweep)

    def accept(self) -> ClientConnection:
        """The protocol factory for the listening socket."""
        return ClientConnection(self)

    def spawn(self, coroutine: Any, name: str, *, report: bool = False) -> None:
        task = self.loop.create_task(coroutine, name=name)
        tasks = self.reports if report else self.tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        task.add_done_callback(self._check)

    def _check(self, task: asyncio.Task[None]) -> None:
        # Without this an exception in a relay task only shows as "Task exception was never
        # retrieved" when the task is collected, if ever.
        if not task.cancelled() and (error := task.exception()) is not None:
            self.handler.task_failed(task.get_name(), error)

    async def connect(self) -> UpstreamConnection:
        up = self.upstream
        async with asyncio.timeout(CONNECT_TIMEOUT):
            _, connection = await self.loop.create_connection(
                lambda: UpstreamConnection(self),
                up.host,
                up.port,
                ssl=up.ssl,
                server_hostname=up.host if up.ssl is not None else None,
            )
        self.connections_opened += 1
        return connection

    def acquire(self) -> UpstreamConnection | None:
        idle = self.idle
        while idle:
            connection = idle.pop()
            # A connection the add-on just closed may still be here until connection_lost.
            if not connection.closed and not connection.is_closing():
                return connection
        return None

    def release(self, connection: UpstreamConnection) -> None:
        if self.closed or connection.closed or len(self.idle) >= MAX_IDLE_UPSTREAMS:
            connection.close()
            return
        connection.resume()  # read while idle: an add-on that closes it is noticed at once
        self.idle.append(connection)

    def held_bytes(self) -> int:
        """The bytes the relay holds in memory right now: buffered input and the transports'
        write buffers (what backpressure keeps bounded)."""
        total = 0
        for client in self.clients:
            total += client.held_bytes()
        for connection in self.upstreams:
            if connection.transport is not None:
                total += connection.transport.get_write_buffer_size()
            total += len(connection._buf)
        return total

    def _sweep(self) -> None:
        now = _now()
        for client in list(self.clients):
            client.check_timeouts(now)
        expired = now - UPSTREAM_IDLE_TIMEOUT
        # An idle connection's last read was the end of its last response.
        for connection in [c for c in self.idle if c.last_io < expired]:
            connection.close()
        self._sweeper = self.loop.call_later(SWEEP_INTERVAL, self._sweep)

    async def close(self) -> None:
        self.closed = True
        self._sweeper.cancel()
        for client in list(self.clients):
            client.abort()
        for connection in list(self.upstreams):
            connection.close(abort=True)
        # connection_lost runs on the next turns of the loop: wait for it, so that no
        # transport outlives the proxy unclosed.
        for _ in range(100):
            if not self.clients and not self.upstreams:
                break
            await asyncio.sleep(0)
        await _cancel(self.tasks)
        # Requests still waiting for the inspector's verdict are reported (the verdict is
        # bounded in time anyway), as a server that shuts down gracefully would.
        if self.reports:
            await asyncio.wait(list(self.reports), timeout=REPORT_GRACE_SECONDS)
        await _cancel(self.reports)


async def _cancel(tasks: set[asyncio.Task[None]]) -> None:
    while tasks:
        pending = list(tasks)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


# ClientConnection states
_HEAD = 0  # waiting for a request head (kept alive, or part of a head arrived)
_EXCHANGE = 1  # a request is being forwarded or answered
_REPORT = 2  # the exchange ended; waiting for the inspector's verdict before the next one
_TUNNEL = 3  # switched protocols (WebSocket): a blind pipe to the add-on
_LINGER = 4  # refused: our side is shut, what the client still sends is read and dropped
_CLOSED = 5

# Why reading from a client is paused (bits)
_UPSTREAM_FULL = 1  # the add-on connection's write buffer is full
_BACKLOG = 2  # too many bytes are waiting here
_CONNECTING = 4  # the body waits for the add-on connection to open


class ClientConnection(asyncio.Protocol):
    """One connection from the tunnel (or a local client), one exchange at a time."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.handler = relay.handler
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.peer_port = 0
        self.local_host = ""
        self._buf = bytearray()
        self._scanned = 0  # how much of _buf is known not to hold the end of a head
        self._state = _HEAD
        self._processing = False
        self._deadline = 0.0  # in _HEAD: when the next head must have arrived
        self._last_read = 0.0  # when the request body last made progress
        self._paused = 0
        self._writing_paused = False
        self._stalled_since = 0.0  # when writing to the client last paused
        self._close_after = False  # close the connection once this exchange ends
        self._exchange = 0  # counts exchanges, so a late connect knows it is no longer wanted
        # The current exchange
        self._request: RequestHead | None = None
        self._started = 0.0
        self._status = 0
        self._failure = ""  # why the add-on gave no answer, when the relay answered itself
        self._head_sent = False  # the final response head went out
        self._request_done = False
        self._response_done = False
        self._body_left = 0
        self._chunks: ChunkedScanner | None = None
        self._upstream: UpstreamConnection | None = None
        self._outbox: list[bytes | bytearray] | None = None  # for the add-on, not yet sent
        self._outbox_size = 0
        self._replay: bytes | None = None
        self._retried = False
        self._tee: bytearray | None = None  # a copy of the body for the inspector
        self._inspection: asyncio.Task[Verdict] | None = None
        self._cap: Exchange | None = None  # what the capture keeps of this exchange
        self._head_text = ""  # the current request's head as received (for the capture)

    # --- asyncio callbacks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (create_server/create_connection); uvloop's do not derive from
        # asyncio.Transport, so this is a cast, not an isinstance check.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.peer, self.peer_port = str(peer[0]), int(peer[1])
        local = transport.get_extra_info("sockname")
        if isinstance(local, tuple):
            host = str(local[0])
            self.local_host = f"[{host}]:{local[1]}" if ":" in host else f"{host}:{local[1]}"
        self._deadline = _now() + CLIENT_IDLE_TIMEOUT
        if self.relay.closed:
            self.transport.abort()
            return
        self.relay.clients.add(self)

    def data_received(self, data: bytes) -> None:
        state = self._state
        if state >= _LINGER:
            return  # refused or closed: dropped
        if self._buf:
            self._buf += data
            self._process()
        elif state == _HEAD:
            # The common case: a whole head (with its body, if small) in one read.
            end = data.find(b"\r\n\r\n")
            if end <= 0 or end > MAX_HEAD or self._writing_paused or data[:2] == b"\r\n":
                self._buf += data
                self._process()
                return
            try:
                text = data[:end].decode("latin-1")
                request = parse_request_head(text)
            except HttpError as exc:
                self._refuse(exc)
                return
            end += 4
            if end < len(data):
                self._buf += memoryview(data)[end:]
            self._head_text = text
            self._begin(request)
            if self._buf:
                self._process()
        elif state == _EXCHANGE and not self._request_done:
            # A body: its bytes go straight through, never into the buffer.
            self._last_read = _now()
            try:
                end = self._forward_body(data, 0)
            except HttpError as exc:
                self._bad_body(exc)
                return
            if end >= 0:
                if end < len(data):
                    self._buf += memoryview(data)[end:]
                self._request_complete()
                if self._buf:
                    self._process()
        elif state == _TUNNEL:
            assert self._upstream is not None
            self._upstream.send(data)
        else:  # pipelined: it waits for the current exchange to end
            self._buf += data
            self._process()

    def eof_received(self) -> bool:
        if self._state == _LINGER:
            self._state = _CLOSED
            return False  # the client is done too: close
        if self._state == _EXCHANGE and self._request_done:
            # The client gave up waiting (or half-closed, which nginx treats the same way):
            # waiting for a slow add-on would leave its socket in CLOSE-WAIT for minutes.
            # The add-on connection goes too; the request is reported as one the client left
            # (499), as when its connection is lost.
            self._status = 499
            self._end_abruptly()
            return False
        if self._state == _REPORT:
            # Its answer was sent; only the event waits for the verdict, not the socket.
            self._close()
        return False  # the transport closes; connection_lost sees what was left unfinished

    def connection_lost(self, exc: Exception | None) -> None:
        self.relay.clients.discard(self)
        state, self._state = self._state, _CLOSED
        upstream, self._upstream = self._upstream, None
        if state == _TUNNEL:
            if upstream is not None:
                upstream.close()
        elif state == _EXCHANGE:
            if upstream is not None:
                upstream.close()  # its response is unfinished: the connection is unusable
            self._outbox = None
            self._tee = None
            # The client went away before the exchange ended (nginx's 499); a response that
            # was complete while the request was not keeps its status.
            self._report(self._status if self._response_done else 499)

    def pause_writing(self) -> None:
        self._writing_paused = True
        self._stalled_since = _now()
        if self._upstream is not None:
            self._upstream.pause()

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._upstream is not None:
            self._upstream.resume()
        self._process()  # a request may be waiting for the last response to drain

    # --- called by the relay and the add-on connection ----------------------------------

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def held_bytes(self) -> int:
        outbox = sum(len(piece) for piece in self._outbox) if self._outbox else 0
        tee = len(self._tee) if self._tee is not None else 0
        written = self.transport.get_write_buffer_size() if self.transport is not None else 0
        return len(self._buf) + outbox + tee + written

    def check_timeouts(self, now: float) -> None:
        state = self._state
        if self._writing_paused and now - self._stalled_since > CLIENT_IDLE_TIMEOUT:
            # A client that stopped reading what it asked for: give up on it (reported 499).
            self.abort()
            return
        if state == _LINGER:
            if now > self._deadline:
                self._close()
            return
        if state == _HEAD:
            if now > self._deadline:
                if self._buf:  # part of a head came, the rest never did
                    self._write(simple_response(408, b"request head timed out\n", close=True))
                self._close()
            return
        if state != _EXCHANGE:
            return
        upstream = self._upstream
        if (
            upstream is not None
            and not self._response_done
            and not upstream.paused
            and now - max(upstream.last_io, self._started) > self.relay.upstream_timeout
        ):
            logger.debug("the add-on stalled for %g s", self.relay.upstream_timeout)
            self._upstream = None
            upstream.close()
            if self._head_sent:
                self._end_abruptly()
            else:
                self._upstream_failed(f"no answer within {self.relay.upstream_timeout:g} s")
        elif (
            not self._request_done
            and not self._paused
            and self._outbox is None
            and now - self._last_read > CLIENT_IDLE_TIMEOUT
        ):
            if not self._head_sent:
                answer = simple_response(408, b"request body timed out\n", close=True)
                if self._cap is not None:
                    self._cap.set_local_response(answer)
                self._write(answer)
                self._status = 408
            self._end_abruptly()

    def interim(self, head: bytes) -> None:
        """A 1xx response (100 Continue) before the final one."""
        self._write(head)

    def will_close(self, *, until_eof: bool) -> bool:
        """Whether the connection closes after the response now starting (``until_eof``:
        only the end of the add-on's connection ends this response)."""
        if until_eof or not self._request_done:
            # Without a length, the client only knows the body ended when we close. And when
            # the add-on answers before the whole body arrived, whatever it does not read
            # cannot be told apart from a next request any more.
            self._close_after = True
        return self._close_after

    def response_started(self, status: int) -> None:
        self._status = status
        self._head_sent = True

    def response_data(self, data: bytes | bytearray | memoryview) -> None:
        self._write(data)

    def response_complete(self, upstream: UpstreamConnection, reusable: bool) -> None:
        self._upstream = None
        if self._paused & _UPSTREAM_FULL:
            self._resume(_UPSTREAM_FULL)
        request = self._request
        assert request is not None
        # An HTTP/1.0 request was forwarded as one: the add-on may close after answering it.
        if reusable and self._request_done and request.version == "HTTP/1.1":
            self.relay.release(upstream)
        else:
            upstream.close()
        self._response_done = True
        if self._request_done:
            self._finish()
        else:
            self._close_after = True
            self._end_abruptly()

    def switch_protocols(self, data: bytes) -> bool:
        """The add-on answered 101 to an upgrade: from now on, a blind pipe both ways."""
        if not self._request_done:
            return False
        assert self._upstream is not None
        self._status = 101
        self._head_sent = True
        self._state = _TUNNEL
        self._write(data)
        if self._buf:  # what the client sent after its request belongs to the new protocol
            self._upstream.send(bytes(self._buf))
            self._buf.clear()
        self._resume(_BACKLOG)
        self._report(101)
        return True

    def upstream_lost(self, upstream: UpstreamConnection, *, answered: bool) -> None:
        """The add-on connection closed before the response ended."""
        if upstream is not self._upstream:
            return
        self._upstream = None
        self._resume(_UPSTREAM_FULL)
        if not answered and self._replay is not None and not self._retried:
            # A kept-alive connection the add-on closed just as it was reused: send the same
            # request again, once, on a new connection.
            logger.debug("add-on connection closed before answering; retrying once")
            self._retried = True
            self._outbox, self._outbox_size = [self._replay], len(self._replay)
            self._replay = None
            self._connect()
            return
        if not self._head_sent:
            self._upstream_failed("it closed the connection without an answer")
        else:
            logger.debug("the add-on closed the connection in the middle of a response")
            self._end_abruptly()

    def upstream_broken(self, upstream: UpstreamConnection, reason: str) -> None:
        """The add-on sent something that is not HTTP."""
        if upstream is not self._upstream:
            return
        self._upstream = None
        upstream.close()
        logger.warning("the add-on's response could not be relayed: %s", reason)
        if not self._head_sent:
            self._upstream_failed(f"its response was not valid HTTP: {reason}")
        else:
            self._end_abruptly()

    def tunnel_closed(self) -> None:
        self._upstream = None
        self._close()

    # --- requests -------------------------------------------------------------------------

    def _process(self) -> None:
        """Handle what the buffer holds, as far as the state allows."""
        if self._processing:
            return  # called back from inside the loop below, which will see the new state
        self._processing = True
        try:
            while self._step():
                pass
        finally:
            self._processing = False
        if self._state < _LINGER:
            if len(self._buf) > MAX_PENDING:
                self._pause(_BACKLOG)
            else:
                self._resume(_BACKLOG)

    def _step(self) -> bool:
        buf = self._buf
        state = self._state
        if state == _EXCHANGE:
            # Bytes after a complete request wait; before that, they are its body.
            return not self._request_done and bool(buf) and self._take_buffered_body()
        if state != _HEAD or not buf or self._writing_paused:
            return False
        if buf[:2] == b"\r\n":  # RFC 9112 §2.2: empty lines before a request are ignored
            del buf[:2]
            return True
        end = buf.find(b"\r\n\r\n", self._scanned)
        if end < 0:
            if len(buf) > MAX_HEAD:
                self._refuse(HttpError(431, "request head too large"))
            else:
                self._scanned = max(0, len(buf) - 3)
            return False
        self._scanned = 0
        if end > MAX_HEAD:
            self._refuse(HttpError(431, "request head too large"))
            return False
        text = buf[:end].decode("latin-1")
        del buf[: end + 4]
        try:
            request = parse_request_head(text)
        except HttpError as exc:
            self._refuse(exc)
            return False
        self._head_text = text
        self._begin(request)
        return True

    def _begin(self, request: RequestHead) -> None:
        self._exchange += 1
        self._state = _EXCHANGE
        self._request = request
        self._started = self._last_read = _now()
        self._status = 0
        self._failure = ""
        self._head_sent = self._response_done = False
        if not request.keep_alive:
            self._close_after = True
        self._chunks = ChunkedScanner() if request.chunked else None
        length = request.content_length
        self._body_left = length or 0
        self._request_done = not (length or request.chunked)
        self._replay = None
        self._retried = False
        self._tee = None
        self._inspection = None
        capture = self.relay.capture
        cap = self._cap = (
            capture.begin(request, self.peer_port, self._head_text) if capture is not None else None
        )
        handler = self.handler
        local = handler.local_response(request)
        if local is not None:
            self._status, data = local
            if cap is not None:
                cap.set_local_response(data)
            self._head_sent = self._response_done = True
            self._write(data)
            # Its body (there should be none) is read and dropped like any other.
            if self._request_done:
                self._finish()
            else:
                self._take_buffered_body()
            return
        up = self.relay.upstream
        head = request.upstream_head(
            host=up.host_header, prefix=up.prefix, peer=self.peer, local_host=self.local_host
        )
        if length and length <= MAX_INSPECTED_BODY and handler.wants_body(request):
            self._tee = bytearray()  # inspected once the body is complete
        else:
            self._inspection = handler.inspect(request, None)
        self._outbox, self._outbox_size = [head], len(head)
        # The body that came with the head goes in the same write; a malformed one is refused
        # here, before the add-on sees anything.
        if not self._request_done and not self._take_buffered_body():
            return
        upstream = self.relay.acquire()
        if upstream is None:
            self._connect()
        else:
            self._attach(upstream, reused=True)

    def _take_buffered_body(self) -> bool:
        """Forward what the buffer holds of the body; False when it was malformed."""
        buf = self._buf
        if not buf:
            return True
        try:
            end = self._forward_body(buf, 0)
        except HttpError as exc:
            self._bad_body(exc)
            return False
        if end < 0:
            buf.clear()
        else:
            del buf[:end]
            self._request_complete()
        return True

    def _forward_body(self, data: bytes | bytearray, start: int) -> int:
        """Send the body bytes in ``data[start:]`` on; where the body ended in ``data``, or
        -1 when all of it was body. Raises ``HttpError`` for malformed chunked framing, before
        anything of this ``data`` is sent."""
        size = len(data)
        chunks = self._chunks
        if chunks is None:
            stop = start + self._body_left
            if stop > size:
                self._body_left = stop - size
                end = stop = -1
            else:
                self._body_left = 0
                end = stop
        else:
            end = stop = chunks.feed(data, start)
        if stop < 0:
            stop = size
        if stop > start:
            # A slice of the buffer is a new bytearray that nothing changes afterwards, so the
            # transport may keep it.
            whole = start == 0 and stop == size and isinstance(data, bytes)
            piece = data if whole else data[start:stop]
            if self._tee is not None:
                self._tee += piece
            if self._cap is not None:
                self._cap.add_request_body(piece)
            self._send(piece)
        return end

    def _send(self, piece: bytes | bytearray) -> None:
        outbox = self._outbox
        if outbox is not None:  # the add-on connection is not there yet
            outbox.append(piece)
            self._outbox_size += len(piece)
            if self._outbox_size > MAX_PENDING:
                self._pause(_CONNECTING)
        elif self._upstream is not None:
            self._upstream.send(piece)
        # else: answered without the add-on, or the add-on failed: the body is dropped

    def _request_complete(self) -> None:
        self._request_done = True
        if self._tee is not None:
            assert self._request is not None
            self._inspection = self.handler.inspect(self._request, bytes(self._tee))
            self._tee = None
        if self._response_done:
            self._finish()

    def _connect(self) -> None:
        self.relay.spawn(self._connect_task(self._exchange), "connect to the add-on")

    async def _connect_task(self, exchange: int) -> None:
        try:
            upstream = await self.relay.connect()
        except Exception as exc:  # refused, unresolvable, TLS, timeout: all a 502
            logger.debug("connecting to the add-on failed: %r", exc)
            if exchange == self._exchange and self._state == _EXCHANGE:
                self._upstream_failed(_reason(exc))
            return
        if exchange != self._exchange or self._state != _EXCHANGE or self._outbox is None:
            self.relay.release(upstream)  # no longer wanted here; a fresh connection for the pool
            return
        self._attach(upstream, reused=False)

    def _attach(self, upstream: UpstreamConnection, *, reused: bool) -> None:
        request = self._request
        outbox = self._outbox
        assert request is not None
        assert outbox is not None
        self._upstream = upstream
        self._outbox = None
        payload = outbox[0] if len(outbox) == 1 else b"".join(outbox)
        method = request.method
        if reused and self._request_done and method in IDEMPOTENT:
            self._replay = bytes(payload)
        upstream.start(self, head_request=method == "HEAD", upgrade=request.upgrade is not None)
        upstream.send(payload)
        if self._writing_paused:
            upstream.pause()
        if upstream.write_paused:
            self._pause(_UPSTREAM_FULL)
        if self._paused & _CONNECTING:
            self._resume(_CONNECTING)

    def _upstream_failed(self, reason: str) -> None:
        """No answer from the add-on: 502, and the rest of the body is dropped."""
        self._outbox = None
        self._resume(_CONNECTING)
        request = self._request
        assert request is not None
        text = self.handler.unreachable_text(request, reason).encode()
        self._status = 502
        self._failure = reason
        self._head_sent = True
        data = simple_response(
            502, text, close=self._close_after, head_request=request.method == "HEAD"
        )
        if self._cap is not None:
            self._cap.set_local_response(data)
        self._write(data)
        self._response_done = True
        if self._request_done:
            self._finish()
        else:
            self._process()

    def _bad_body(self, exc: HttpError) -> None:
        """A malformed chunked body: nothing after the bad line may reach the add-on."""
        logger.debug("refused a request body: %s", exc.reason)
        upstream, self._upstream = self._upstream, None
        if upstream is not None:
            upstream.close()
        self._outbox = None
        self._tee = None
        if self._head_sent:
            self._end_abruptly()
            return
        self._status = exc.status
        if self._cap is not None:  # answered by the proxy itself: the capture says so
            self._cap.set_local_response(_refusal(exc))
        self._report(exc.status)
        self._refuse(exc)

    def _refuse(self, exc: HttpError) -> None:
        """A request that cannot be framed safely: answer, and close once the client is done
        (the add-on never sees it)."""
        logger.debug("refused a request: %s", exc.reason)
        self._write(_refusal(exc))
        self._state = _LINGER
        self._buf.clear()
        self._deadline = _now() + LINGER_SECONDS
        self._paused = 0
        transport = self.transport
        if transport is not None:
            transport.resume_reading()
            if transport.can_write_eof():
                transport.write_eof()

    # --- ending exchanges -----------------------------------------------------------------

    def _finish(self) -> None:
        """Both the request and the response are complete."""
        if self._state != _EXCHANGE:
            return
        request, inspection = self._request, self._inspection
        assert request is not None
        if inspection is not None:
            # The verdict goes into the event, and events keep the order of the requests:
            # the next request on this connection waits for it (the add-on never does).
            self._inspection = None
            self._state = _REPORT
            self.relay.spawn(
                self._report_later(
                    request,
                    self._status,
                    self._failure,
                    self._started,
                    inspection,
                    True,
                    self._cap,
                ),
                "report request",
                report=True,
            )
            return
        now = _now()
        self._served(request, self._status, now - self._started, None, self._failure, self._cap)
        self._next(now)

    def _next(self, now: float) -> None:
        """Ready for the next request on this connection (or closed)."""
        self._request = None
        if self._close_after:
            self._close()
            return
        self._state = _HEAD
        self._deadline = now + CLIENT_IDLE_TIMEOUT
        if self._buf or self._paused:
            self._process()

    def _report(self, status: int) -> None:
        """Report the current exchange, which ended early (its inspection may still run: the
        event waits for it, the connection does not)."""
        request, inspection = self._request, self._inspection
        self._inspection = None
        if request is None:
            return
        if inspection is None:
            self._served(request, status, _now() - self._started, None, self._failure, self._cap)
        else:
            self.relay.spawn(
                self._report_later(
                    request, status, self._failure, self._started, inspection, False, self._cap
                ),
                "report request",
                report=True,
            )

    async def _report_later(
        self,
        request: RequestHead,
        status: int,
        failure: str,
        started: float,
        inspection: asyncio.Task[Verdict],
        then_next: bool,
        exchange: Exchange | None,
    ) -> None:
        verdict: Verdict = None
        error: Exception | None = None
        try:
            verdict = await self.handler.verdict(inspection, status, failure)
        except Exception as exc:
            error = exc
        # Even when the verdict failed, the request is reported and the connection goes on to
        # its next request instead of hanging; the error is reported by the task (spawn).
        now = _now()
        self._served(request, status, now - started, verdict, failure, exchange)
        if then_next and self._state == _REPORT:
            self._next(now)
        if error is not None:
            raise error

    def _served(
        self,
        request: RequestHead,
        status: int,
        seconds: float,
        verdict: Verdict,
        failure: str,
        exchange: Exchange | None,
    ) -> None:
        try:
            self.handler.served(request, status, seconds, verdict, failure, exchange)
        except Exception:  # a subscriber's bug must not break the connection
            logger.exception("reporting a request failed")

    def _end_abruptly(self) -> None:
        """End the exchange and the connection: report the status the client got."""
        if self._state != _EXCHANGE:
            return
        upstream, self._upstream = self._upstream, None
        if upstream is not None:
            upstream.close()
        self._report(self._status or 499)
        self._close()

    def _close(self) -> None:
        self._state = _CLOSED
        self._buf.clear()
        if self.transport is not None:
            self.transport.close()  # after what was written has been sent

    # --- flow control ---------------------------------------------------------------------

    def _write(self, data: bytes | bytearray | memoryview) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def _pause(self, reason: int) -> None:
        if not self._paused and self.transport is not None:
            self.transport.pause_reading()
        self._paused |= reason

    def _resume(self, reason: int) -> None:
        if self._paused & reason:
            self._paused &= ~reason
            if not self._paused and self.transport is not None:
                self.transport.resume_reading()


# UpstreamConnection states
_U_IDLE = 0  # in the pool (or just connected)
_U_HEAD = 1  # waiting for a response head
_U_BODY = 2  # relaying a response body
_U_TUNNEL = 3
_U_CLOSED = 4


class UpstreamConnection(asyncio.Protocol):
    """One connection to the add-on, serving one exchange at a time."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.transport: asyncio.Transport | None = None
        self.client: ClientConnection | None = None
        self.closed = False
        self.paused = False  # reading paused because the client is not keeping up
        self.write_paused = False
        self.last_io = 0.0  # when it last received (or was sent) something
        self._state = _U_IDLE
        self._buf = bytearray()
        self._head_request = False
        self._upgrade = False
        self._left = 0  # bytes of the body still to come; -1: until the connection closes
        self._chunks: ChunkedScanner | None = None
        self._keep_alive = True
        self._answered = False  # some byte of a response arrived

    # --- asyncio callbacks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (create_server/create_connection); uvloop's do not derive from
        # asyncio.Transport, so this is a cast, not an isinstance check.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self.relay.upstreams.add(self)

    def data_received(self, data: bytes) -> None:
        self.last_io = _now()
        state = self._state
        client = self.client
        if client is None:  # an idle connection spoke out of turn: it can no longer be trusted
            self.close()
        elif state == _U_BODY and not self._buf:
            self._relay(client, data, 0, 0, b"")
        elif state == _U_HEAD:
            self._answered = True
            if self._buf:
                self._buf += data
                data = bytes(self._buf)
                self._buf.clear()
            self._read_head(client, data)
        elif state == _U_TUNNEL:
            client.response_data(data)

    def eof_received(self) -> bool:
        return False  # close; connection_lost decides what that means

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.relay.upstreams.discard(self)
        state, self._state = self._state, _U_CLOSED
        client, self.client = self.client, None
        if client is None:
            with contextlib.suppress(ValueError):
                self.relay.idle.remove(self)
            return
        if state == _U_TUNNEL:
            client.tunnel_closed()
        elif state == _U_BODY and self._left == -1:
            client.response_complete(self, False)  # the close ends the body
        elif state in (_U_HEAD, _U_BODY):
            client.upstream_lost(self, answered=self._answered)

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.client is not None:
            self.client._pause(_UPSTREAM_FULL)

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.client is not None:
            self.client._resume(_UPSTREAM_FULL)

    # --- called by the client connection --------------------------------------------------

    def start(self, client: ClientConnection, *, head_request: bool, upgrade: bool) -> None:
        self.client = client
        self._state = _U_HEAD
        self._head_request = head_request
        self._upgrade = upgrade
        self._answered = False
        self._keep_alive = True

    def send(self, data: bytes | bytearray) -> None:
        if self.transport is not None:
            self.last_io = _now()
            self.transport.write(data)

    def is_closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def pause(self) -> None:
        if not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()

    def close(self, *, abort: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        self.client = None
        if self.transport is not None:
            if abort:
                self.transport.abort()
            else:
                self.transport.close()

    # --- responses ------------------------------------------------------------------------

    def _read_head(self, client: ClientConnection, data: bytes) -> None:
        """Handle the response head(s) at the start of ``data``, and what follows them."""
        start = 0
        while True:
            end = data.find(b"\r\n\r\n", start)
            if end < 0 and len(data) - start <= MAX_HEAD:
                self._buf += memoryview(data)[start:]
                return
            if end < 0 or end - start > MAX_HEAD:
                client.upstream_broken(self, "response head too large")
                return
            try:
                head = parse_response_head(
                    data[start:end].decode("latin-1"), head_request=self._head_request
                )
            except HttpError as exc:
                client.upstream_broken(self, exc.reason)
                return
            body = end + 4
            status = head.status
            if status == 101:
                if not self._upgrade or not client.switch_protocols(
                    head.for_client(data[start:body], switching=True)
                ):
                    client.upstream_broken(self, "101 Switching Protocols without an upgrade")
                    return
                self._state = _U_TUNNEL
                if body < len(data):
                    client.response_data(data[body:])
                return
            if status < 200:  # 100 Continue and the like: relayed, then the real answer
                client.interim(head.for_client(data[start:body]))
                start = body
                continue
            break
        self._state = _U_BODY
        length = head.length
        self._left = -1 if length is None else length
        self._chunks = ChunkedScanner() if length is None else None
        self._keep_alive = head.keep_alive
        client.response_started(status)
        cap = client._cap
        if cap is not None:
            cap.response_head = head.text
            cap.response_chunked = length is None
        raw = data[start:body] if start or body < len(data) else data
        rewritten = head.for_client(raw, close=client.will_close(until_eof=length == -1))
        if rewritten is raw:  # sent as it came, in the same write as the body
            self._relay(client, data, start, body, b"")
        else:
            self._relay(client, data, body, body, rewritten)

    def _relay(
        self, client: ClientConnection, data: bytes, begin: int, start: int, head: bytes
    ) -> None:
        """Send ``head``, then ``data`` from ``begin`` to the end of the response body, which
        starts at ``start``, to the client (in one write when small), and notice whether the
        body ended in ``data``."""
        size = len(data)
        chunks = self._chunks
        if chunks is not None:
            try:
                end = chunks.feed(data, start)
            except HttpError as exc:
                client.upstream_broken(self, exc.reason)
                return
        elif self._left < 0:
            end = -1
        elif start + self._left > size:
            self._left -= size - start
            end = -1
        else:
            end = start + self._left
            self._left = 0
        stop = size if end < 0 else end
        cap = client._cap
        if cap is not None:
            cap.add_response_body(data, start, stop)
        if head:
            if stop - begin < 65536:
                client.response_data(head + data[begin:stop])
            else:
                client.response_data(head)
                client.response_data(memoryview(data)[begin:stop])
        elif begin == 0 and stop == size:
            client.response_data(data)
        elif stop > begin:
            client.response_data(memoryview(data)[begin:stop])
        if end >= 0:
            self._state = _U_IDLE
            self._chunks = None
            self.client = None
            # Bytes after the end of the response are the add-on's mistake: never reuse.
            client.response_complete(self, self._keep_alive and end == size)


def _refusal(exc: HttpError) -> bytes:
    """The answer to a request the relay refuses (it closes the connection)."""
    return simple_response(exc.status, f"{exc.reason}\n".encode(), close=True)


def _reason(exc: BaseException) -> str:
    """Why connecting failed, in the words a person uses (not "[Errno 111] Connect call
    failed ('127.0.0.1', 3999)")."""
    if isinstance(exc, TimeoutError):
        return f"no connection within {CONNECT_TIMEOUT:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, socket.gaierror):
        return f"its host name does not resolve ({exc.strerror or exc})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed ({exc.reason or exc})"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[:1].lower() + exc.strerror[1:]
    return str(exc) or type(exc).__name__
