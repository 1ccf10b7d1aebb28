"""What the proxy costs: added latency per request, and requests/s through it vs direct.

    python benchmarks/proxy.py [--requests 3000] [--seconds 10] [--connections 50]
                               [--addon-work-ms 0] [--client lean|asyncio]

The add-on (a minimal aiohttp server) and the proxy (``connect_devloop.proxy.Proxy`` with an
event bus and the state reducer subscribed, as in `up`, without a renderer) each run in their
own process, on loopback; the load comes from this process.

Prints:
  1. latency: ``--requests`` sequential GETs on one kept-alive connection, direct and through
     the proxy, interleaved in rounds of 100 so that drift hits both alike; median and p95 of
     each, and what the proxy adds (proxied minus direct);
  2. throughput: ``--connections`` concurrent kept-alive connections for ``--seconds`` s,
     direct and through the proxy in alternating 1 s slices; requests/s of each and the ratio,
     and the CPU each process spent per request (the load client's included, so that a reader
     can see it was not the bottleneck).
Targets (DESIGN, issue 3): median added latency < 1 ms; throughput >= 50 % of direct.

The load client matters on a small machine, where it shares the cores with both servers. The
default (``lean``) is one selector loop over plain non-blocking sockets in a thread: about a
third of the CPU per request of an asyncio-streams client, so the direct figure is the
add-on's capacity rather than the client's. ``--client asyncio`` is the asyncio-streams client
the first figures in docs/performance.md were measured with; it costs about as much CPU per
request as the add-on itself. Everything is bounded: a fixed count of requests, a fixed time
of load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import selectors
import socket
import statistics
import sys
import time
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

BODY = b'{"ok": true, "page": "hello from the add-on"}\n' * 4  # ~200 bytes, like a small JSON API


# --- the servers (each in its own process) -------------------------------------------------------


async def serve_addon(work_ms: float) -> None:
    from aiohttp import web

    async def page(request: web.Request) -> web.Response:
        if work_ms:  # what a real handler spends (templates, queries): CPU, not sleep
            until = time.perf_counter() + work_ms / 1000
            while time.perf_counter() < until:
                pass
        return web.Response(body=BODY, content_type="application/json")

    app = web.Application()
    app.router.add_get("/{tail:.*}", page)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    print(json.dumps({"url": f"http://127.0.0.1:{runner.addresses[0][1]}"}), flush=True)
    await answer_cpu_questions()
    await runner.cleanup()


async def answer_cpu_questions() -> None:
    """Each line on stdin asks for this process's CPU seconds so far; EOF ends the server."""
    loop = asyncio.get_running_loop()
    while await loop.run_in_executor(None, sys.stdin.readline):
        print(json.dumps({"cpu": time.process_time()}), flush=True)


async def serve_proxy(addon_url: str) -> None:
    from connect_devloop.events import EventBus
    from connect_devloop.proxy import Proxy
    from connect_devloop.state import State, reduce

    bus = EventBus()
    state = State.initial([])

    def track(event: object) -> None:
        nonlocal state
        state = reduce(state, event)  # type: ignore[arg-type]

    bus.subscribe(track)
    proxy = Proxy(addon_url, bus.emit, port=0)
    await proxy.start()
    print(json.dumps({"url": proxy.url}), flush=True)
    await answer_cpu_questions()
    await proxy.close()


class Server:
    """A server process of this script: its URL, and its CPU time on demand."""

    def __init__(self, process: asyncio.subprocess.Process, url: str) -> None:
        self.process = process
        self.url = url

    async def cpu(self) -> float:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(b"cpu\n")
        await self.process.stdin.drain()
        line = await asyncio.wait_for(self.process.stdout.readline(), 30)
        return float(json.loads(line)["cpu"])


@contextlib.asynccontextmanager
async def server(*args: str) -> AsyncIterator[Server]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        yield Server(process, str(json.loads(line)["url"]))
    finally:
        process.stdin.close()
        await asyncio.wait_for(process.wait(), 30)


# --- the client -----------------------------------------------------------------------------


class Connection:
    """One kept-alive HTTP/1.1 connection that GETs a path and reads the whole answer."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.request = f"GET /bench HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self) -> None:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(self.request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        await self.reader.readexactly(body_length(head))

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(ConnectionError):
                await self.writer.wait_closed()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def latencies(direct_url: str, proxy_url: str, count: int) -> tuple[list[float], ...]:
    direct, proxied = Connection(direct_url), Connection(proxy_url)
    for _ in range(200):  # warm up both paths (connections, caches, the proxy's pool)
        await direct.get()
        await proxied.get()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(max(1, count // 100)):
        for connection, bucket in ((direct, times[0]), (proxied, times[1])):
            for _ in range(100):
                started = time.perf_counter()
                await connection.get()
                bucket.append((time.perf_counter() - started) * 1000)
    await direct.close()
    await proxied.close()
    return times


class Load:
    """What a load client counts over its slices: requests done, wall time, its own CPU."""

    def __init__(self) -> None:
        self.done = 0
        self.seconds = 0.0
        self.cpu = 0.0  # this client's CPU (its thread's), to show it was not the bottleneck

    @property
    def rate(self) -> float:
        return self.done / self.seconds

    @contextlib.contextmanager
    def timing(self) -> Iterator[float]:
        """Count the time and the CPU of this thread spent inside; yields the start time."""
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            yield started
        finally:
            self.seconds += time.perf_counter() - started
            self.cpu += time.thread_time() - cpu

    async def run(self, seconds: float) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class StreamLoad(Load):
    """``connections`` kept-alive connections to one URL on asyncio streams, loaded in slices
    of time (``--client asyncio``)."""

    def __init__(self, url: str, connections: int) -> None:
        super().__init__()
        self.connections = [Connection(url) for _ in range(connections)]

    async def run(self, seconds: float) -> None:
        with self.timing() as started:
            deadline = started + seconds

            async def worker(connection: Connection) -> None:
                while time.perf_counter() < deadline:
                    await connection.get()
                    self.done += 1

            await asyncio.gather(*(worker(c) for c in self.connections))

    async def close(self) -> None:
        for connection in self.connections:
            await connection.close()


class LeanLoad(Load):
    """``connections`` kept-alive connections to one URL, driven by one selector loop over
    non-blocking sockets in a worker thread (``--client lean``, the default). Each response is
    checked like ``Connection.get`` checks it: status 200 and the whole Content-Length body."""

    def __init__(self, url: str, connections: int) -> None:
        super().__init__()
        parts = urlsplit(url)
        self.address = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.request = f"GET /bench HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode()
        self.count = connections
        self.sockets: list[socket.socket] = []

    async def run(self, seconds: float) -> None:
        await asyncio.to_thread(self._run, seconds)

    def _run(self, seconds: float) -> None:
        if not self.sockets:
            for _ in range(self.count):
                connection = socket.create_connection(self.address)
                connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                connection.setblocking(False)
                self.sockets.append(connection)
        request = self.request
        pending: dict[socket.socket, bytes] = {}
        with self.timing() as started, selectors.DefaultSelector() as selector:
            deadline = started + seconds
            for connection in self.sockets:
                selector.register(connection, selectors.EVENT_READ, connection)
                connection.send(request)  # a few dozen bytes: the socket buffer takes them
            in_flight = len(self.sockets)
            while in_flight:
                events = selector.select(30)
                if not events:
                    raise RuntimeError("no answer for 30 s")
                for key, _ in events:
                    connection = key.data
                    data = connection.recv(65536)
                    if not data:
                        raise RuntimeError("the server closed a kept-alive connection")
                    data = pending.pop(connection, b"") + data
                    if not _complete_response(data):
                        pending[connection] = data
                        continue
                    self.done += 1
                    if time.perf_counter() < deadline:
                        connection.send(request)
                    else:  # this connection is done for this slice
                        selector.unregister(connection)
                        in_flight -= 1

    async def close(self) -> None:
        for connection in self.sockets:
            connection.close()


def body_length(head: bytes) -> int:
    """The Content-Length of a response ``head`` (up to its empty line), which must be a 200."""
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"unexpected answer: {head[:80]!r}")
    lowered = head.lower()
    start = lowered.find(b"\r\ncontent-length:")
    if start < 0:
        raise RuntimeError(f"no Content-Length: {head[:80]!r}")
    start += len(b"\r\ncontent-length:")
    return int(lowered[start : lowered.find(b"\r\n", start)])


def _complete_response(data: bytes) -> bool:
    """Whether ``data`` holds a whole response (200 with a Content-Length body)."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return False
    size = end + 4 + body_length(data[: end + 2])
    if len(data) > size:
        raise RuntimeError("more bytes than the response's Content-Length")
    return len(data) == size


async def throughput(
    addon: Server, proxy: Server, seconds: float, connections: int, client: str
) -> tuple[Load, Load, float, float]:
    """Direct and proxied load in alternating 1 s slices (noise on a shared machine hits both
    alike); also the CPU the add-on spends per direct request, and the proxy per request."""
    kind = LeanLoad if client == "lean" else StreamLoad
    direct: Load = kind(addon.url, connections)
    proxied: Load = kind(proxy.url, connections)
    addon_cpu = proxy_cpu = 0.0
    slices = max(1, round(seconds))
    for _ in range(slices):
        before = await addon.cpu()
        await direct.run(seconds / slices)
        addon_cpu += await addon.cpu() - before
        before = await proxy.cpu()
        await proxied.run(seconds / slices)
        proxy_cpu += await proxy.cpu() - before
    await direct.close()
    await proxied.close()
    return direct, proxied, addon_cpu * 1000 / direct.done, proxy_cpu * 1000 / proxied.done


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument(
        "--addon-work-ms",
        type=float,
        default=0.0,
        help="CPU the add-on spends per request (default 0: the cheapest possible add-on)",
    )
    parser.add_argument(
        "--client",
        choices=("lean", "asyncio"),
        default="lean",
        help="the load client for throughput (default lean: a selector loop, see above)",
    )
    args = parser.parse_args()

    print(f"add-on work per request: {args.addon_work_ms:g} ms; load client: {args.client}")
    async with (
        server("--serve-addon", str(args.addon_work_ms)) as addon,
        server("--serve-proxy", addon.url) as proxy,
    ):
        direct, proxied = await latencies(addon.url, proxy.url, args.requests)
        added_median = statistics.median(proxied) - statistics.median(direct)
        added_p95 = percentile(proxied, 0.95) - percentile(direct, 0.95)
        print(
            f"latency, {len(direct)} sequential GETs each: direct median "
            f"{statistics.median(direct):.3f} ms, p95 {percentile(direct, 0.95):.3f} ms; "
            f"through the proxy median {statistics.median(proxied):.3f} ms, "
            f"p95 {percentile(proxied, 0.95):.3f} ms"
        )
        print(
            f"added by the proxy: median {added_median:.3f} ms, p95 {added_p95:.3f} ms  "
            f"[target: median < 1 ms]"
        )
        loads = await throughput(addon, proxy, args.seconds, args.connections, args.client)
        direct_load, proxied_load, addon_ms, proxy_ms = loads
        print(
            f"throughput, {args.connections} connections for {args.seconds:g} s each "
            f"(alternating 1 s slices): direct {direct_load.rate:,.0f} req/s, through the proxy "
            f"{proxied_load.rate:,.0f} req/s, ratio {proxied_load.rate / direct_load.rate:.0%}"
            "  [target: >= 50 %]"
        )
        print(
            f"CPU per request: the add-on {addon_ms:.3f} ms, the proxy {proxy_ms:.3f} ms "
            f"({proxy_ms / addon_ms:.1f}x the add-on's); the load client "
            f"{direct_load.cpu * 1000 / direct_load.done:.3f} ms direct, "
            f"{proxied_load.cpu * 1000 / proxied_load.done:.3f} ms proxied"
        )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve-addon"]:
        asyncio.run(serve_addon(float(sys.argv[2])))
    elif sys.argv[1:2] == ["--serve-proxy"]:
        asyncio.run(serve_proxy(sys.argv[2]))
    else:
        asyncio.run(main())
