"""What a user of the dashboard gets during a request flood: the latency the proxy adds while
the dashboard is on screen, and the memory of the `up` process as the requests pile up.

    python benchmarks/tui_flood.py [--requests 100000] [--connections 4]

One minimal add-on (an aiohttp server answering ~200 bytes of JSON) runs in its own process on
loopback, and in front of it, each on its own free loopback port (``[tunnel] provider =
"none"``, no hosts):
  - `connect-dev up` on a 120x40 pseudo-terminal, so that the CLI picks the dashboard by itself
    as it does for a person (TERM=xterm-256color); another process of this script reads the
    screen's bytes as a terminal would, and discards them;
  - `connect-dev up --no-tui --log-format text` with its log (one line per request) to a file.
The real command on a terminal rather than the app under ``App.run_test(headless=True)``: the
headless driver writes no screen, and the bytes written to the terminal (and their flushes) are
a part of what the dashboard costs the proxy's event loop, which it shares.

The flood: --requests GETs to each of the add-on directly, the dashboard's `up` and the
`--no-tui` `up`, from the lean client (one selector loop over --connections kept-alive
non-blocking sockets in a thread of this script; each response checked: status 200 and its
whole Content-Length body; wrk is not used because it runs for a duration, not a fixed count).
The requests go in 10 slices per target, taken in turn (the order rotated each slice), so that
noise on the shared machine hits all alike.

Prints:
  1. for each target, the latency of a request under the flood (send to whole answer) p50, p99
     and max, and requests/s; for both `up`s what they add to direct's p50 and p99;
  2. the resident memory (VmRSS from /proc/PID/status) of both `up` processes after 0, 20 %,
     50 % and 100 % of the requests (0, 20k, 50k and 100k by default), read after a 0.3 s pause
     so that the dashboard has folded what it received;
  3. what the dashboard's requests panel counted and the lines the text log holds (a line per
     request: none lost);
  4. the goals of issue 9, in brackets: p99 added < 5 ms with the dashboard on screen; RSS flat
     (at most +2 MiB) from 20 % to 100 % of the requests.

Everything is bounded (a fixed count of requests, a timeout on every wait), on loopback only,
and every process this script starts is stopped at the end, also on an error, Ctrl-C or
SIGTERM: the dashboard is quit with `q` as a person would, `--no-tui` with SIGINT, and each
process group is killed if it has not exited after 15 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import os
import pty
import re
import selectors
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from array import array
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from common import (
    STOP_TIMEOUT,
    complete_response,
    free_port,
    met,
    percentile,
    print_summary,
    stop,
)

BODY = b'{"ok": true, "page": "hello from the add-on"}\n' * 4  # ~200 bytes, like a small JSON API
SLICES = 10
CHECKPOINTS = (0.0, 0.2, 0.5, 1.0)  # fractions of --requests at which RSS is read
GOAL_P99_ADDED_MS = 5.0
GOAL_FLAT_MIB = 2.0  # RSS growth from the 20 % checkpoint to the end that still counts as flat
START_TIMEOUT = 60.0  # s for a server to be ready (`up` imports textual on a loaded machine)
SETTLE = 0.3  # s of quiet before RSS is read: the dashboard folds its inbox every 0.1 s
COLUMNS, ROWS = 120, 40
READY = "● ready".encode()
TITLE = re.compile(rb"Requests ([\d,]+)")
DESCRIPTOR = {
    "key": "tui-flood-benchmark",
    "name": "TUI flood benchmark",
    "baseUrl": "{{localBaseUrl}}",
    "authentication": {"type": "none"},
    "modules": {},
}


# --- the processes of this script ----------------------------------------------------------------


async def serve_addon() -> None:
    """``--serve-addon``: the minimal add-on; prints its URL, serves until stdin's EOF."""
    from aiohttp import web

    async def page(request: web.Request) -> web.Response:
        return web.Response(body=BODY, content_type="application/json")

    app = web.Application()
    app.router.add_get("/{tail:.*}", page)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    print(json.dumps({"url": f"http://127.0.0.1:{runner.addresses[0][1]}"}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await runner.cleanup()


def drain_screen() -> None:
    """``--drain-screen``: read the terminal (stdin is the pseudo-terminal's master side) until
    the dashboard closes it, as a terminal emulator would, and discard it. Say "ready" once the
    header showed `● ready`; at the end, the bytes read and the last requests title seen."""
    total, tail, ready, title = 0, b"", False, b""
    while True:
        try:
            chunk = os.read(0, 1 << 20)
        except OSError:  # EIO: every process on the other side closed it
            break
        if not chunk:
            break
        total += len(chunk)
        window = tail + chunk
        if not ready and READY in window:
            ready = True
            print("ready", flush=True)
        titles = TITLE.findall(window)
        if titles:
            title = titles[-1]
        tail = window[-64:]
    print(json.dumps({"bytes": total, "requests_title": title.decode()}), flush=True)


@contextlib.asynccontextmanager
async def addon() -> AsyncIterator[str]:
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, __file__, "--serve-addon"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)
        yield str(json.loads(line)["url"])
    finally:
        process.stdin.close()
        await stop(process)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no VmRSS for {pid}")


def terminal_environment() -> dict[str, str]:
    """This environment without a size of its own: the dashboard reads the terminal's."""
    return {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}


WRITE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC


class Up:
    """A real `connect-dev up` in front of the add-on: with the dashboard on a pseudo-terminal
    (``dashboard``), else ``--no-tui`` with its text log to a file."""

    def __init__(self, name: str, directory: Path, addon_url: str, *, dashboard: bool) -> None:
        self.name, self.directory, self.dashboard = name, directory, dashboard
        self.addon_url = addon_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = directory / "up.log"
        self.process: asyncio.subprocess.Process | None = None
        self.screen: asyncio.subprocess.Process | None = None  # drain_screen, for the dashboard
        self.master: int | None = None
        self.screen_said: dict[str, object] = {}

    async def start(self) -> None:
        self.directory.mkdir()
        (self.directory / "atlassian-connect.json").write_text(json.dumps(DESCRIPTOR))
        config = self.directory / "connect-dev.toml"
        config.write_text(
            f'[addon]\nurl = "{self.addon_url}"\n[proxy]\nport = {self.port}\n'
            '[tunnel]\nprovider = "none"\n'
        )
        command = [sys.executable, "-m", "connect_devloop", "up", "--config", str(config)]
        if self.dashboard:
            await self._start_on_a_terminal(command)
        else:
            await self._start_logging_to_a_file(command)

    async def _start_on_a_terminal(self, command: list[str]) -> None:
        self.master, slave = pty.openpty()
        try:
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
            self.screen = await asyncio.create_subprocess_exec(
                *(sys.executable, __file__, "--drain-screen"),
                stdin=self.master,
                stdout=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
            self.process = await asyncio.create_subprocess_exec(
                *command,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                cwd=self.directory,
                env={**terminal_environment(), "TERM": "xterm-256color"},
                start_new_session=True,
            )
        finally:
            os.close(slave)
        assert self.screen.stdout is not None
        try:
            said = await asyncio.wait_for(self.screen.stdout.readline(), START_TIMEOUT)
        except TimeoutError:
            said = b""
        if said != b"ready\n":
            raise RuntimeError(f"{self.name}: the dashboard never showed `● ready`")

    async def _start_logging_to_a_file(self, command: list[str]) -> None:
        output = os.open(self.log_path, WRITE)
        errors = os.open(self.directory / "stderr", WRITE)
        try:
            self.process = await asyncio.create_subprocess_exec(
                *command,
                *("--no-tui", "--log-format", "text"),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=errors,
                cwd=self.directory,
                start_new_session=True,
            )
        finally:
            os.close(output)
            os.close(errors)
        deadline = time.monotonic() + START_TIMEOUT
        while not re.search(rb"^[\d:.]+ ready ", self.log_path.read_bytes()[:65536], re.M):
            if self.process.returncode is not None or time.monotonic() > deadline:
                said = (self.directory / "stderr").read_text(errors="replace")
                raise RuntimeError(f"{self.name}: no `ready` line:\n{said[-2000:]}")
            await asyncio.sleep(0.02)

    def rss(self) -> float:
        assert self.process is not None
        return rss_mib(self.process.pid)

    def log_lines(self) -> int:
        with self.log_path.open("rb") as log:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: log.read(1 << 20), b""))

    async def close(self) -> None:
        """Stop as a user does: `q` on the dashboard, SIGINT for --no-tui."""
        try:
            if self.process is not None:
                if self.dashboard and self.master is not None:
                    with contextlib.suppress(OSError):
                        os.write(self.master, b"q")
                    await stop(self.process)
                else:
                    await stop(self.process, signal.SIGINT)
        finally:
            if self.screen is not None:
                assert self.screen.stdout is not None
                with contextlib.suppress(TimeoutError, ValueError):
                    said = await asyncio.wait_for(self.screen.stdout.readline(), STOP_TIMEOUT)
                    self.screen_said = json.loads(said)
                await stop(self.screen, signal.SIGTERM)
            if self.master is not None:
                os.close(self.master)
                self.master = None


# --- the flood ---------------------------------------------------------------------------------


@dataclass
class Target:
    """One way to the add-on and what the flood measured through it."""

    name: str
    url: str
    up: Up | None = None
    latency: array[float] = field(default_factory=lambda: array("d"))  # ms per request
    seconds: float = 0.0
    rss: list[float] = field(default_factory=list)  # MiB at each checkpoint (`up` only)

    @property
    def rate(self) -> float:
        return len(self.latency) / self.seconds


def flood(target: Target, count: int, connections: int) -> None:
    """``count`` GETs to ``target`` over ``connections`` kept-alive connections, each kept busy
    (a new request as soon as the last one's answer is whole); each latency recorded."""
    parts = urlsplit(target.url)
    request = f"GET /bench HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode()
    address = (parts.hostname or "127.0.0.1", parts.port or 80)
    sockets = []
    started: dict[socket.socket, float] = {}
    pending: dict[socket.socket, bytes] = {}
    latency = target.latency
    sent = 0
    with selectors.DefaultSelector() as selector:
        try:
            begun = time.perf_counter()
            for _ in range(min(connections, count)):
                connection = socket.create_connection(address, timeout=30)
                connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                connection.setblocking(False)
                sockets.append(connection)
                selector.register(connection, selectors.EVENT_READ, connection)
                started[connection] = time.perf_counter()
                connection.send(request)  # a few dozen bytes: the socket buffer takes them
                sent += 1
            in_flight = len(sockets)
            while in_flight:
                events = selector.select(30)
                if not events:
                    raise RuntimeError(f"{target.name}: no answer for 30 s")
                for key, _ in events:
                    connection = key.data
                    data = connection.recv(65536)
                    if not data:
                        raise RuntimeError(f"{target.name}: a kept-alive connection was closed")
                    data = pending.pop(connection, b"") + data
                    if not complete_response(data):
                        pending[connection] = data
                        continue
                    now = time.perf_counter()
                    latency.append((now - started[connection]) * 1000)
                    if sent < count:
                        started[connection] = now
                        connection.send(request)
                        sent += 1
                    else:
                        selector.unregister(connection)
                        in_flight -= 1
            target.seconds += time.perf_counter() - begun
        finally:
            for connection in sockets:
                connection.close()


async def read_rss(targets: list[Target]) -> None:
    await asyncio.sleep(SETTLE)
    for target in targets:
        if target.up is not None:
            target.rss.append(target.up.rss())


async def run_flood(targets: list[Target], requests: int, connections: int) -> None:
    """Each target gets ``requests`` in SLICES slices, taken in turn (the order rotated each
    slice); RSS of every `up` read at each checkpoint."""
    bounds = [round(requests * n / SLICES) for n in range(SLICES + 1)]
    marks = {round(fraction * SLICES) for fraction in CHECKPOINTS}
    await read_rss(targets)
    for index in range(SLICES):
        shift = index % len(targets)
        for target in targets[shift:] + targets[:shift]:
            await asyncio.to_thread(flood, target, bounds[index + 1] - bounds[index], connections)
        if index + 1 in marks:
            await read_rss(targets)


# --- the report ----------------------------------------------------------------------------------


def describe(target: Target, direct: Target) -> str:
    p50, p99 = statistics.median(target.latency), percentile(target.latency, 0.99)
    line = (
        f"{target.name}: {len(target.latency):,} requests, {target.rate:,.0f} req/s; "
        f"latency p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {max(target.latency):.1f} ms"
    )
    if target is not direct:
        added50 = p50 - statistics.median(direct.latency)
        added99 = p99 - percentile(direct.latency, 0.99)
        line += f"; added p50 {added50:.2f} ms, p99 {added99:.2f} ms"
        if target.up is not None and target.up.dashboard:
            line += f" [goal p99 added < {GOAL_P99_ADDED_MS:g} ms]"
    return line


def describe_rss(target: Target, requests: int) -> str:
    points = ", ".join(
        f"{round(fraction * requests):,}: {rss:.1f} MiB"
        for fraction, rss in zip(CHECKPOINTS, target.rss, strict=True)
    )
    after = target.rss[-1] - target.rss[1]
    return (
        f"RSS of {target.name}: {points}; from {round(CHECKPOINTS[1] * requests):,} to "
        f"{requests:,}: {after:+.1f} MiB [goal flat after 20 %: <= +{GOAL_FLAT_MIB:g} MiB]"
    )


def verdict(direct: Target, dashboard: Target) -> str:
    added99 = percentile(dashboard.latency, 0.99) - percentile(direct.latency, 0.99)
    after = dashboard.rss[-1] - dashboard.rss[1]
    return (
        f"goals, up with the dashboard on screen: p99 added {added99:.2f} ms "
        f"[goal < {GOAL_P99_ADDED_MS:g} ms: {met(added99 < GOAL_P99_ADDED_MS)}], "
        f"RSS after 20 % {after:+.1f} MiB [goal flat: {met(after <= GOAL_FLAT_MIB)}]"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=100_000, help="per target")
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args()
    if args.requests < SLICES or args.connections < 1:
        parser.error(f"--requests must be at least {SLICES}, --connections at least 1")
    # SIGTERM stops the run as Ctrl-C does: through every `finally` that stops a process.
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)

    print(
        f"add-on: minimal aiohttp server, ~200 bytes of JSON; loopback; {os.cpu_count()} CPUs; "
        f"Python {sys.version.split()[0]}"
    )
    print(
        f"flood: {args.requests:,} GETs per target from the lean client, {args.connections} "
        f"kept-alive connections, in {SLICES} slices per target taken in turn"
    )
    print(
        f"dashboard: `connect-dev up` on a {COLUMNS}x{ROWS} pseudo-terminal, its screen read "
        "and discarded by another process; --no-tui: `connect-dev up --no-tui --log-format "
        "text` to a file"
    )
    async with contextlib.AsyncExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tui-flood-")))
        addon_url = await stack.enter_async_context(addon())
        dashboard_up = Up("up, dashboard", directory / "dashboard", addon_url, dashboard=True)
        text_up = Up("up --no-tui", directory / "no-tui", addon_url, dashboard=False)
        for up in (dashboard_up, text_up):
            stack.push_async_callback(up.close)
        await asyncio.gather(dashboard_up.start(), text_up.start())
        direct = Target("direct", addon_url)
        dashboard = Target(dashboard_up.name, dashboard_up.url, dashboard_up)
        text = Target(text_up.name, text_up.url, text_up)
        targets = [direct, dashboard, text]
        await run_flood(targets, args.requests, args.connections)
        for up in (dashboard_up, text_up):  # before the screen and the log are read
            await up.close()

        for target in targets:
            print(describe(target, direct))
        for target in (dashboard, text):
            print(describe_rss(target, args.requests))
        title = dashboard_up.screen_said.get("requests_title", "(none seen)")
        screen = int(str(dashboard_up.screen_said.get("bytes", 0)))
        print(
            f"dashboard: requests panel title `Requests {title}` for {args.requests:,} "
            f"requests; {screen / 2**20:.1f} MiB written to the terminal"
        )
        print(f"--no-tui: log: {text_up.log_lines():,} lines for {args.requests:,} requests")
        print(verdict(direct, dashboard))

        def added(target: Target, fraction: float) -> float:
            return percentile(target.latency, fraction) - percentile(direct.latency, fraction)

        print_summary(
            {
                "dashboard: p99 added ms": added(dashboard, 0.99),
                "dashboard: p50 added ms": added(dashboard, 0.5),
                "--no-tui: p99 added ms": added(text, 0.99),
                "dashboard: RSS after 20 % MiB": dashboard.rss[-1] - dashboard.rss[1],
                "dashboard: req/s": dashboard.rate,
                "--no-tui: req/s": text.rate,
            }
        )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve-addon"]:
        asyncio.run(serve_addon())
    elif sys.argv[1:2] == ["--drain-screen"]:
        drain_screen()
    else:
        try:
            asyncio.run(main())
        except (KeyboardInterrupt, asyncio.CancelledError):
            sys.exit("tui_flood.py: interrupted; every process it started is stopped")
