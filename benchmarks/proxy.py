"""What users run, measured: requests/s and added latency through a real `connect-dev up`,
beside the add-on reached directly and nginx as the reference proxy, in one run.

    python benchmarks/proxy.py [--seconds 10] [--requests 3000] [--connections 50]
                               [--addon-work-ms 0] [--client auto|wrk|lean|asyncio]
                               [--proxy-class] [--asyncio-loop] [--without-capture]

For the reference figures, install nginx and wrk first (Debian/Ubuntu; each is skipped with a
note when absent):

    apt-get install -y nginx-light wrk

One minimal add-on (an aiohttp server answering ~200 bytes of JSON) runs in its own process on
loopback, and in front of it, each on its own free loopback port:
  - four real `connect-dev up --no-tui` subprocesses (``[tunnel] provider = "none"``, no hosts),
    one per log set-up users have: ``--log-format text`` to a file, text to a pipe (read and
    discarded by this script), ``--log-format json`` to a file, json to a pipe;
  - nginx when installed: one worker, ``proxy_pass`` to the add-on with an upstream keepalive
    pool, ``access_log`` to a file (a line per request, as `up` writes), its own temp prefix;
  - with ``--without-capture``: one more `up` (text log to a file) with ``[inspector]
    capture = false``; every other `up` captures (the default, issue 13), so the goals below
    are measured with the traffic inspector's capture on;
  - with ``--proxy-class``: the ``connect_devloop.proxy.Proxy`` class with an event bus and
    the state reducer subscribed but no renderer, as the first figures of docs/performance.md
    measured it.

Prints, for direct and each proxy:
  1. latency at 1 connection: ``--requests`` sequential GETs on one kept-alive connection to
     each, interleaved in rounds of 100 so that drift hits all alike; median and p95, and what
     the proxy adds (its median minus direct's);
  2. throughput: ``--connections`` kept-alive connections for ``--seconds`` s to each, in 1 s
     slices taken in turn (the order rotated each round); requests/s, the ratio to direct, for
     `up` the ratio to nginx's ratio; with wrk, also its latency under that load (median over
     the slices of each slice's p50 and p99); and the CPU each server spent per request (read
     from /proc, where there is one);
  3. the goals of issue 9, for `up --no-tui` with a text log to a file, in brackets: throughput
     >= 65 % of direct and >= 0.85x nginx's ratio; added latency < 0.15 ms.

The load client (``--client``): ``auto`` (the default) is wrk when installed, else ``lean``.
wrk is C, one thread here, so it leaves the cores to the servers. ``lean`` is one selector loop
over plain non-blocking sockets in a thread of this script (each response checked: status 200
and its whole Content-Length body); ``asyncio`` is the asyncio-streams client the first figures
in docs/performance.md were measured with, about as costly per request as the add-on itself.

Everything is bounded (fixed counts of requests, fixed durations, a timeout on every wait), on
loopback only, and every process this script starts is stopped at the end, also on an error,
Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from common import (
    STOP_TIMEOUT,
    body_length,
    complete_response,
    free_port,
    met,
    percentile,
    print_summary,
    stop,
)

from connect_devloop.eventloop import EVENT_LOOP_ENV

BODY = b'{"ok": true, "page": "hello from the add-on"}\n' * 4  # ~200 bytes, like a small JSON API
NGINX_INSTALL = "apt-get install -y nginx-light"
WRK_INSTALL = "apt-get install -y wrk"
HEADLINE = "up, text log to a file"
GOAL_RATIO, GOAL_VS_NGINX, GOAL_ADDED_MS = 0.65, 0.85, 0.15
START_TIMEOUT = 60.0  # s for a server to be ready (`up` imports aiohttp on a loaded machine)


# --- the servers of this script (each in its own process) ---------------------------------------


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
        line = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)
        yield Server(process, str(json.loads(line)["url"]))
    finally:
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()


# --- the clients ----------------------------------------------------------------------------


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
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 30)
        await asyncio.wait_for(self.reader.readexactly(body_length(head)), 30)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(ConnectionError):
                await self.writer.wait_closed()


async def latencies(urls: list[str], count: int) -> list[list[float]]:
    """ms of ``count`` sequential GETs on one kept-alive connection to each URL, taken in
    rounds of 100 to each in turn (so that drift on a shared machine hits all alike)."""
    connections = [Connection(url) for url in urls]
    try:
        for _ in range(200):  # warm up every path (connections, caches, the proxies' pools)
            for connection in connections:
                await connection.get()
        times: list[list[float]] = [[] for _ in urls]
        for _ in range(max(1, count // 100)):
            for connection, bucket in zip(connections, times, strict=True):
                for _ in range(100):
                    started = time.perf_counter()
                    await connection.get()
                    bucket.append((time.perf_counter() - started) * 1000)
        return times
    finally:
        for connection in connections:
            await connection.close()


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
                    if not complete_response(data):
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


TO_MS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
WRK_TOTAL = re.compile(r"(\d+) requests in ([\d.]+)(us|ms|s|m)\b")
WRK_RATE = re.compile(r"Requests/sec:\s+([\d.]+)")
WRK_PERCENTILE = r"^\s+{}%\s+([\d.]+)(us|ms|s|m)\s*$"
WRK_ERRORS = re.compile(r"Non-2xx or 3xx responses: \d+|Socket errors: .*")


class WrkLoad(Load):
    """``connections`` kept-alive connections to one URL from wrk (``--client wrk``, and
    ``auto`` when it is installed): one run of wrk with one thread per slice. A non-2xx answer
    or a socket error fails the benchmark, as a wrong answer fails the lean client."""

    def __init__(self, url: str, connections: int, binary: str) -> None:
        super().__init__()
        self.command = [binary, "-t1", f"-c{connections}", "--latency", "--timeout", "10s"]
        self.url = url.rstrip("/") + "/bench"
        self.p50: list[float] = []  # ms, one per slice
        self.p99: list[float] = []

    async def run(self, seconds: float) -> None:
        # wrk takes whole seconds; its CPU is ours to count once it is reaped.
        duration = f"-d{max(1, round(seconds))}s"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        process = await asyncio.create_subprocess_exec(
            *self.command,
            duration,
            self.url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            output, _ = await asyncio.wait_for(process.communicate(), seconds + 30)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.cpu += after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        text = output.decode(errors="replace")
        total, rate = WRK_TOTAL.search(text), WRK_RATE.search(text)
        p50 = re.search(WRK_PERCENTILE.format(50), text, re.M)
        p99 = re.search(WRK_PERCENTILE.format(99), text, re.M)
        errors = WRK_ERRORS.search(text)
        if process.returncode or errors or not (total and rate and p50 and p99):
            raise RuntimeError(f"wrk against {self.url} (exit {process.returncode}):\n{text}")
        self.done += int(total[1])
        self.seconds += float(total[2]) * TO_MS[total[3]] / 1000
        self.p50.append(float(p50[1]) * TO_MS[p50[2]])
        self.p99.append(float(p99[1]) * TO_MS[p99[2]])

    async def close(self) -> None:
        pass


def wrk_version(binary: str) -> str:
    # `wrk -v` prints "wrk 4.1.0 [epoll] ..." (Debian: "wrk debian/4.1.0-3") and exits 1.
    output = subprocess.run(
        [binary, "-v"], capture_output=True, text=True, timeout=10, check=False
    ).stdout
    found = re.search(r"wrk (\S+)", output)
    return found[1] if found else "(version unknown)"


# --- the proxies under test: real `up` subprocesses, nginx -----------------------------------


def proc_cpu(pids: list[int]) -> float | None:
    """CPU seconds the processes ``pids`` spent so far, from /proc; None where there is none."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


WRITE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
READY_LINE = re.compile(rb'^[\d:.]+ ready |"event": "ready"', re.M)
DESCRIPTOR = {
    "key": "proxy-benchmark",
    "name": "Proxy benchmark",
    "baseUrl": "{{localBaseUrl}}",
    "authentication": {"type": "none"},
    "modules": {},
}


class UpDaemon:
    """A real `connect-dev up --no-tui` subprocess in front of the add-on, with its log (one
    line per request) to a file, or to a pipe read and discarded by a process of this script
    (``--drain``: as a terminal or a log collector reads it, and not in the load client's
    process, where it would take the load client's GIL)."""

    def __init__(
        self,
        name: str,
        directory: Path,
        addon_url: str,
        log: str,
        to_pipe: bool,
        event_loop: str = "",
        capture: bool = True,
    ) -> None:
        self.name, self.log_format, self.to_pipe = name, log, to_pipe
        self.capture = capture  # [inspector] capture: the traffic inspector's bodies (issue 13)
        # "" = the default (uvloop where installed); "asyncio" = asyncio's own loop.
        self.event_loop = event_loop
        self.directory, self.addon_url = directory, addon_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = directory / f"up.{log}.log"
        self.process: asyncio.subprocess.Process | None = None
        self.drain: asyncio.subprocess.Process | None = None
        self.piped_lines = 0

    async def start(self) -> None:
        self.directory.mkdir()
        (self.directory / "atlassian-connect.json").write_text(json.dumps(DESCRIPTOR))
        config = self.directory / "connect-dev.toml"
        config.write_text(
            f'[addon]\nurl = "{self.addon_url}"\n[proxy]\nport = {self.port}\n'
            '[tunnel]\nprovider = "none"\n'
            + ("" if self.capture else "[inspector]\ncapture = false\n")
        )
        errors = os.open(self.directory / "stderr", WRITE)
        if self.to_pipe:
            piped, output = os.pipe()
            try:
                self.drain = await asyncio.create_subprocess_exec(
                    *(sys.executable, __file__, "--drain"),
                    stdin=piped,
                    stdout=asyncio.subprocess.PIPE,
                    start_new_session=True,
                )
            finally:
                os.close(piped)
        else:
            output = os.open(self.log_path, WRITE)
        try:
            self.process = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "connect_devloop", "up", "--no-tui"),
                *("--log-format", self.log_format, "--config", str(config)),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=errors,
                cwd=self.directory,
                env={**os.environ, EVENT_LOOP_ENV: self.event_loop},
                start_new_session=True,
            )
        finally:
            os.close(output)
            os.close(errors)
        deadline = time.monotonic() + START_TIMEOUT
        try:
            if self.drain is not None:
                assert self.drain.stdout is not None
                said = await asyncio.wait_for(self.drain.stdout.readline(), START_TIMEOUT)
                if said != b"ready\n":
                    raise TimeoutError
            else:
                while not READY_LINE.search(self.log_path.read_bytes()[:65536]):
                    if self.process.returncode is not None or time.monotonic() > deadline:
                        raise TimeoutError
                    await asyncio.sleep(0.02)
        except TimeoutError:
            said = (self.directory / "stderr").read_text(errors="replace")
            raise RuntimeError(f"{self.name}: no `ready` line:\n{said[-2000:]}") from None

    async def cpu(self) -> float | None:
        return proc_cpu([self.process.pid]) if self.process else None

    def log_lines(self) -> int:
        """Lines `up` logged (after ``close``: every one of them)."""
        if self.to_pipe:
            return self.piped_lines
        with self.log_path.open("rb") as log:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: log.read(1 << 20), b""))

    async def close(self) -> None:
        try:
            if self.process is not None:
                await stop(self.process, signal.SIGINT)  # as a user stops it: the log is flushed
        finally:
            if self.drain is not None:
                assert self.drain.stdout is not None
                with contextlib.suppress(TimeoutError, ValueError):  # its count, after EOF
                    said = await asyncio.wait_for(self.drain.stdout.readline(), STOP_TIMEOUT)
                    self.piped_lines = int(said)
                await stop(self.drain, signal.SIGTERM)


def drain() -> None:
    """``--drain``: read stdin to its end and discard it; say "ready" once `up`'s ready line went
    by, and at the end how many lines there were."""
    lines, head, ready = 0, b"", False
    with open(sys.stdin.fileno(), "rb", buffering=0, closefd=False) as pipe:
        while chunk := pipe.read(1 << 20):
            lines += chunk.count(b"\n")
            if not ready:
                head += chunk
                if READY_LINE.search(head):
                    ready = True
                    print("ready", flush=True)
    print(lines, flush=True)


class Nginx:
    """nginx as the reference proxy: one worker, an upstream keepalive pool to the add-on,
    ``access_log`` to a file (a line per request, as `up` writes); its own prefix, config and
    pid file in a temporary directory, on a free loopback port."""

    def __init__(self, binary: str, directory: Path, addon_url: str) -> None:
        self.binary, self.directory = binary, directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.addon = urlsplit(addon_url).netloc
        self.process: asyncio.subprocess.Process | None = None
        self.workers: list[int] = []

    def config(self) -> str:
        prefix = self.directory
        # As root, nginx's workers would switch to a user that may not exist here.
        user = "user root;\n" if os.geteuid() == 0 else ""
        temp = "".join(
            f"    {kind}_temp_path {prefix}/{kind}_temp;\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        return (
            f"{user}daemon off;\nmaster_process on;\nworker_processes 1;\n"
            f"pid {prefix}/nginx.pid;\nerror_log {prefix}/error.log warn;\n"
            "events {\n    worker_connections 4096;\n}\n"
            "http {\n"
            f"    access_log {prefix}/access.log;\n{temp}"
            "    keepalive_requests 1000000;\n"  # the default 1000 would close our clients'
            "    upstream addon {\n"
            f"        server {self.addon};\n"
            "        keepalive 64;\n"  # as many idle add-on connections as `up` pools
            "        keepalive_requests 1000000;\n"
            "    }\n"
            "    server {\n"
            f"        listen 127.0.0.1:{self.port};\n"
            "        location / {\n"
            "            proxy_pass http://addon;\n"
            "            proxy_http_version 1.1;\n"
            '            proxy_set_header Connection "";\n'
            "            proxy_set_header Host $http_host;\n"  # what `up` sends, too
            "            proxy_set_header X-Forwarded-For $remote_addr;\n"
            "            proxy_set_header X-Forwarded-Proto $scheme;\n"
            "            proxy_set_header X-Forwarded-Host $http_host;\n"
            "        }\n"
            "    }\n"
            "}\n"
        )

    async def start(self) -> None:
        self.directory.mkdir()
        config = self.directory / "nginx.conf"
        config.write_text(self.config())
        with (self.directory / "stderr").open("wb") as errors:
            self.process = await asyncio.create_subprocess_exec(
                *(self.binary, "-p", str(self.directory), "-c", str(config)),
                stdin=subprocess.DEVNULL,
                stdout=errors,
                stderr=errors,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                self.workers = children_of(self.process.pid)
                if self.workers:
                    break
            if self.process.returncode is not None or time.monotonic() > deadline:
                said = (self.directory / "stderr").read_text(errors="replace")
                with contextlib.suppress(OSError):
                    said += (self.directory / "error.log").read_text(errors="replace")
                raise RuntimeError(f"nginx did not start:\n{said[-2000:]}")
            await asyncio.sleep(0.02)

    async def cpu(self) -> float | None:
        return proc_cpu([self.process.pid, *self.workers]) if self.process else None

    def log_lines(self) -> int:
        return (self.directory / "access.log").read_bytes().count(b"\n")

    async def close(self) -> None:
        if self.process is not None:
            await stop(self.process, signal.SIGQUIT)  # graceful: the workers finish first


def nginx_version(binary: str) -> str:
    said = subprocess.run(
        [binary, "-v"], capture_output=True, text=True, timeout=10, check=False
    ).stderr
    found = re.search(r"nginx/(\S+)", said)
    return found[1] if found else "(version unknown)"


# --- the run ------------------------------------------------------------------------------------


@dataclass
class Variant:
    """One way to the add-on (direct, or through a proxy) and what was measured through it."""

    name: str
    url: str
    cpu: Callable[[], Awaitable[float | None]]  # its server's CPU seconds so far, if known
    logged: Callable[[], int] | None = None  # lines its log holds (`up` and nginx), once stopped
    latency: list[float] = field(default_factory=list)  # ms, sequential GETs
    load: Load | None = None
    server_cpu: float | None = 0.0  # s its server spent during the load slices

    @property
    def rate(self) -> float:
        assert self.load is not None
        return self.load.rate


async def throughput(
    variants: list[Variant], seconds: float, make_load: Callable[[str], Load]
) -> None:
    """Each variant loaded in 1 s slices, taken in turn, the order rotated each round (noise on
    a shared machine hits all alike, and none always follows the same one)."""
    for variant in variants:
        variant.load = make_load(variant.url)
    slices = max(1, round(seconds))
    for round_ in range(slices):
        shift = round_ % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            assert variant.load is not None
            before = await variant.cpu()
            await variant.load.run(seconds / slices)
            after = await variant.cpu()
            if before is None or after is None or variant.server_cpu is None:
                variant.server_cpu = None
            else:
                variant.server_cpu += after - before
    for variant in variants:
        assert variant.load is not None
        await variant.load.close()


def load_maker(client: str, connections: int, wrk: str | None) -> Callable[[str], Load]:
    if client == "wrk":
        assert wrk is not None
        return lambda url: WrkLoad(url, connections, wrk)
    if client == "lean":
        return lambda url: LeanLoad(url, connections)
    return lambda url: StreamLoad(url, connections)


def describe(variant: Variant, direct: Variant, nginx: Variant | None, sent: int) -> str:
    """One line: requests/s, ratios, latency at 1 connection, under load, CPU, log lines."""
    assert variant.load is not None
    ratio = variant.rate / direct.rate
    median, p95 = statistics.median(variant.latency), percentile(variant.latency, 0.95)
    added = median - statistics.median(direct.latency)
    headline = variant.name == HEADLINE
    parts = [f"{variant.rate:,.0f} req/s"]
    if variant is not direct:
        parts[0] += f", {ratio:.0%} of direct" + (
            f" [goal >= {GOAL_RATIO:.0%}]" if headline else ""
        )
        if variant.name.startswith("up,"):
            if nginx is None:
                parts.append("vs nginx: n/a (nginx skipped)")
            else:
                versus = ratio / (nginx.rate / direct.rate)
                goal = f" [goal >= {GOAL_VS_NGINX}x]" if headline else ""
                parts.append(f"{versus:.2f}x nginx's ratio{goal}")
    one = f"1 connection: median {median:.3f} ms, p95 {p95:.3f} ms"
    if variant is not direct:
        one += f", added {added:.3f} ms" + (f" [goal < {GOAL_ADDED_MS} ms]" if headline else "")
    parts.append(one)
    if isinstance(variant.load, WrkLoad):
        parts.append(
            f"under load: p50 {statistics.median(variant.load.p50):.2f} ms, "
            f"p99 {statistics.median(variant.load.p99):.2f} ms"
        )
    if variant.server_cpu is None:
        parts.append("CPU per request: n/a (no /proc)")
    else:
        who = "the add-on" if variant is direct else "the proxy"
        parts.append(
            f"CPU per request: {who} {variant.server_cpu * 1000 / variant.load.done:.3f} ms"
        )
    if variant.logged is not None:
        parts.append(f"log: {variant.logged():,} lines for {sent + variant.load.done:,} requests")
    return f"{variant.name}: " + "; ".join(parts)


def verdict(direct: Variant, up: Variant, nginx: Variant | None) -> str:
    ratio = up.rate / direct.rate
    added = statistics.median(up.latency) - statistics.median(direct.latency)
    if nginx is None:
        versus = "vs nginx: n/a (nginx skipped)"
    else:
        value = ratio / (nginx.rate / direct.rate)
        versus = (
            f"{value:.2f}x nginx's ratio [goal >= {GOAL_VS_NGINX}x: {met(value >= GOAL_VS_NGINX)}]"
        )
    return (
        f"goals, up --no-tui with a text log to a file: throughput {ratio:.0%} of direct "
        f"[goal >= {GOAL_RATIO:.0%}: {met(ratio >= GOAL_RATIO)}], {versus}, added latency "
        f"{added:.3f} ms [goal < {GOAL_ADDED_MS} ms: {met(added < GOAL_ADDED_MS)}]"
    )


def summary(
    direct: Variant, variants: list[Variant], nginx: Variant | None
) -> dict[str, float | None]:
    """The headline figures for repeat.py: each variant's throughput ratio to direct, proxy CPU
    per request (µs) and added latency (ms); the headline's ratio to nginx's."""
    figures: dict[str, float | None] = {}
    for variant in variants[1:]:
        assert variant.load is not None
        figures[f"{variant.name}: ratio"] = variant.rate / direct.rate
        figures[f"{variant.name}: added ms"] = statistics.median(
            variant.latency
        ) - statistics.median(direct.latency)
        cpu = variant.server_cpu
        figures[f"{variant.name}: CPU µs/request"] = (
            None if cpu is None else cpu * 1e6 / variant.load.done
        )
    if nginx is not None:
        figures[f"{HEADLINE}: x nginx"] = (variants[1].rate / direct.rate) / (
            nginx.rate / direct.rate
        )
    return figures


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
        choices=("auto", "wrk", "lean", "asyncio"),
        default="auto",
        help="the load client for throughput (default auto: wrk when installed, else lean)",
    )
    parser.add_argument(
        "--proxy-class",
        action="store_true",
        help="also measure the Proxy class in-process, without a renderer (the first figures)",
    )
    parser.add_argument(
        "--without-capture",
        action="store_true",
        help="also measure `up` (text log to a file) with [inspector] capture = false (every "
        "other `up` captures, as by default)",
    )
    parser.add_argument(
        "--asyncio-loop",
        action="store_true",
        help="also measure `up` (text log to a file) on asyncio's loop instead of uvloop",
    )
    args = parser.parse_args()
    # SIGTERM stops the run as Ctrl-C does: through every `finally` that stops a process.
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)

    wrk, nginx_binary = shutil.which("wrk"), shutil.which("nginx")
    client = ("wrk" if wrk else "lean") if args.client == "auto" else args.client
    if client == "wrk" and wrk is None:
        parser.error(f"wrk is not installed ({WRK_INSTALL})")
    slices = max(1, round(args.seconds))
    print(
        f"add-on: minimal aiohttp server, {args.addon_work_ms:g} ms of work per request; "
        f"loopback; {os.cpu_count()} CPUs; Python {sys.version.split()[0]}"
    )
    if client == "wrk":
        assert wrk is not None
        load = f"wrk {wrk_version(wrk)}, 1 thread"
    else:
        load = f"the {client} client" + (
            f" (wrk skipped: not installed; {WRK_INSTALL})" if wrk is None else ""
        )
    print(
        f"load client: {client}; {load}, {args.connections} kept-alive connections, "
        f"{slices} slice{'s' * (slices > 1)} of {args.seconds / slices:g} s per variant, "
        "taken in turn"
    )
    count = max(1, args.requests // 100) * 100
    print(
        f"latency: {count} sequential GETs on 1 kept-alive connection per variant, "
        "taken in turn in rounds of 100"
    )
    if nginx_binary:
        print(
            f"nginx {nginx_version(nginx_binary)}: 1 worker, proxy_pass with an upstream "
            "keepalive pool of 64, access_log to a file (a line per request, as `up` writes)"
        )
    else:
        print(f"nginx: skipped, not installed ({NGINX_INSTALL})")

    async with contextlib.AsyncExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="proxy-bench-")))
        addon = await stack.enter_async_context(server("--serve-addon", str(args.addon_work_ms)))
        direct = Variant("direct", addon.url, addon.cpu)
        daemons = [
            UpDaemon(
                f"up, {log} log to a {to}",
                directory / f"up-{log}-{to}",
                addon.url,
                log,
                to == "pipe",
            )
            for log in ("text", "json")
            for to in ("file", "pipe")
        ]
        if args.asyncio_loop:
            daemons.append(
                UpDaemon(
                    "up, text log to a file, asyncio loop",
                    directory / "up-text-file-asyncio",
                    addon.url,
                    "text",
                    False,
                    event_loop="asyncio",
                )
            )
        if args.without_capture:
            daemons.append(
                UpDaemon(
                    "up, text log to a file, capture off",
                    directory / "up-text-file-no-capture",
                    addon.url,
                    "text",
                    False,
                    capture=False,
                )
            )
        servers: list[UpDaemon | Nginx] = list(daemons)
        nginx = Nginx(nginx_binary, directory / "nginx", addon.url) if nginx_binary else None
        if nginx:
            servers.append(nginx)
        for started in servers:
            stack.push_async_callback(started.close)
        await asyncio.gather(*(started.start() for started in servers))
        variants = [direct] + [Variant(d.name, d.url, d.cpu, d.log_lines) for d in daemons]
        reference = Variant("nginx", nginx.url, nginx.cpu, nginx.log_lines) if nginx else None
        if reference:
            variants.append(reference)
        if args.proxy_class:
            proxy = await stack.enter_async_context(server("--serve-proxy", addon.url))
            variants.append(Variant("Proxy class, in-process, no log", proxy.url, proxy.cpu))

        for variant, times in zip(
            variants, await latencies([v.url for v in variants], count), strict=True
        ):
            variant.latency = times
        await throughput(variants, args.seconds, load_maker(client, args.connections, wrk))
        for started in servers:  # before their logs are counted: every line is written
            await started.close()

        sent = 200 + count  # warm-up and latency GETs, before the load
        for variant in variants:
            print(describe(variant, direct, reference, sent))
        assert direct.load is not None
        print(
            f"load client CPU per request: {direct.load.cpu * 1000 / direct.load.done:.3f} ms "
            f"direct, {variants[1].load.cpu * 1000 / variants[1].load.done:.3f} ms through "
            f"{HEADLINE}"
        )
        print(verdict(direct, variants[1], reference))
        print_summary(summary(direct, variants, reference))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve-addon"]:
        asyncio.run(serve_addon(float(sys.argv[2])))
    elif sys.argv[1:2] == ["--drain"]:
        drain()
    elif sys.argv[1:2] == ["--serve-proxy"]:
        asyncio.run(serve_proxy(sys.argv[2]))
    else:
        try:
            asyncio.run(main())
        except (KeyboardInterrupt, asyncio.CancelledError):
            sys.exit("proxy.py: interrupted; every process it started is stopped")
