"""Dev-loop figures against the emulated host on loopback (no install delay).

    python benchmarks/loop.py [--saves 30] [--hosts 1,20,100] [--runs 5]

Prints:
  1. save → installed: time from writing the descriptor to the emulated host recording the
     completed install (its own timestamp), median and p95 over --saves lone saves;
  2. install POSTs per host for a burst of 20 saves in one second (and that the last one won);
  3. a real `connect-dev up` subprocess with each count of --hosts (median of --runs): start to
     `ready` by the daemon's own timestamps (the installs), and from spawning the process
     (interpreter start included); then SIGINT → process exit, and what the hosts still have;
     ratios of the largest count to the smallest;
  5. with one more host that accepts TCP and never answers: start → the healthy host installed
     (and the ratio to the same without the silent host), start → `ready`, and SIGINT → exit
     of a real `connect-dev up` subprocess (targets: ratio ~1, ready within the 5 s silence
     bound, exit < 2 s).
For 3 and 4 the emulated hosts run in a separate process (hostfleet.py), as real hosts would.
The machine is shared and noisy: figures are medians, and the targets are ratios where possible.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from common import accepting_addon, percentile, print_summary

from connect_devloop.config import load_config
from connect_devloop.events import Event, EventBus
from connect_devloop.host import EmulatedHost, run_host
from connect_devloop.supervisor import Supervisor

DESCRIPTOR = {
    "key": "bench-addon",
    "name": "bench",
    "baseUrl": "{{localBaseUrl}}",
    "authentication": {"type": "jwt"},
    "apiMigrations": {"signed-install": True},
    "lifecycle": {"installed": "/installed", "uninstalled": "/uninstalled"},
    "modules": {},
}


@contextlib.asynccontextmanager
async def hosts(count: int) -> AsyncIterator[list[EmulatedHost]]:
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(run_host()) for _ in range(count)]


@dataclass
class RemoteHost:
    base_url: str
    origin: str


@contextlib.asynccontextmanager
async def host_fleet(count: int) -> AsyncIterator[list[RemoteHost]]:
    """``count`` emulated hosts in another process (see hostfleet.py)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).with_name("hostfleet.py")),
        str(count),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stdin is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        yield [RemoteHost(**entry) for entry in json.loads(line)]
    finally:
        process.stdin.close()
        await process.wait()


async def installed_count(sites: list[RemoteHost]) -> int:
    async with aiohttp.ClientSession() as session:
        total = 0
        for site in sites:
            async with session.get(f"{site.origin}/_emulator/record") as response:
                total += len((await response.json())["plugins"])
        return total


def write_project(
    directory: Path,
    addon_url: str,
    sites: list[EmulatedHost] | list[RemoteHost],
    silent_url: str | None = None,
) -> Path:
    (directory / "atlassian-connect.json").write_text(json.dumps(DESCRIPTOR, indent=2))
    urls = [site.base_url for site in sites] + ([silent_url] if silent_url else [])
    entries = "".join(
        f'[[hosts]]\nname = "h{n}"\nurl = "{url}"\nusername = "admin"\npassword = "admin"\n'
        for n, url in enumerate(urls)
    )
    config = directory / "connect-dev.toml"
    config.write_text(
        f'[addon]\nurl = "{addon_url}"\n[proxy]\nport = 0\n[tunnel]\nprovider = "none"\n{entries}'
    )
    return config


class Daemon:
    """`up` in this event loop, with a way to await events."""

    def __init__(self, config: Path) -> None:
        self.bus = EventBus()
        self.events: list[Event] = []
        self._changed = asyncio.Event()
        self.bus.subscribe(self._record)
        self.supervisor = Supervisor(load_config(config), self.bus)
        self.stop = asyncio.Event()
        self.task: asyncio.Task[int] | None = None

    def _record(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()

    def start(self) -> None:
        self.task = asyncio.create_task(self.supervisor.run(self.stop))

    async def wait(self, name: str, timeout: float = 30.0) -> Event:
        async with asyncio.timeout(timeout):
            while True:
                for event in self.events:
                    if event.name == name:
                        return event
                self._changed.clear()
                await self._changed.wait()

    async def close(self) -> None:
        self.stop.set()
        assert self.task is not None
        await self.task


@contextlib.asynccontextmanager
async def one_site_running() -> AsyncIterator[tuple[Path, EmulatedHost]]:
    """An emulated site and a daemon that has installed on it: the project directory and site."""
    async with accepting_addon() as addon, hosts(1) as sites:
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory)
            daemon = Daemon(write_project(path, addon, sites))
            daemon.start()
            try:
                await daemon.wait("ready")
                yield path, sites[0]
            finally:
                await daemon.close()


async def save_to_installed(saves: int) -> list[float]:
    async with one_site_running() as (path, site):
        latencies = []
        for n in range(saves):
            await asyncio.sleep(0.35)  # longer than the settle window: each is a lone save
            before = len(site.record.installs)
            written_at = time.time()
            (path / "atlassian-connect.json").write_text(
                json.dumps({**DESCRIPTOR, "name": f"save {n}"}, indent=2)
            )
            await site.wait_for(lambda r, b=before: len(r.installs) > b, timeout=10)
            latencies.append((site.record.installs[-1].at - written_at) * 1000)
        return latencies


async def burst_posts() -> tuple[int, bool]:
    async with one_site_running() as (path, site):
        await asyncio.sleep(0.35)  # start the burst as a user would: after a quiet gap
        posts_before = len(site.record.install_posts)
        for n in range(20):
            (path / "atlassian-connect.json").write_text(
                json.dumps({**DESCRIPTOR, "name": f"burst {n}"}, indent=2)
            )
            await asyncio.sleep(0.05)
        await site.wait_for(
            lambda r: bool(r.installs) and r.installs[-1].descriptor["name"] == "burst 19",
            timeout=10,
        )
        await asyncio.sleep(1.0)  # anything still coming would arrive now
        posts = len(site.record.install_posts) - posts_before
        return posts, site.record.installs[-1].descriptor["name"] == "burst 19"


@contextlib.contextmanager
def silent_host() -> Iterator[str]:
    """A host URL whose port accepts TCP (the kernel completes the handshake) and never
    answers: a hung server, or a firewall that drops the replies."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/jira"


async def first_install_and_ready(silent: bool) -> tuple[float, float]:
    """ms from start to the first host's install, and to `ready`; with ``silent``, beside a
    host that never answers."""
    async with accepting_addon() as addon, host_fleet(1) as sites:
        with tempfile.TemporaryDirectory() as directory, contextlib.ExitStack() as stack:
            silent_url = stack.enter_context(silent_host()) if silent else None
            daemon = Daemon(write_project(Path(directory), addon, sites, silent_url))
            started = time.perf_counter()
            daemon.start()
            await daemon.wait("registered")
            installed = (time.perf_counter() - started) * 1000
            await daemon.wait("ready")
            ready = (time.perf_counter() - started) * 1000
            await daemon.close()
            return installed, ready


@dataclass
class RealRun:
    """One run of a real `connect-dev up` subprocess, in milliseconds."""

    to_ready: float  # process spawn -> `ready` line (interpreter start included)
    installs: float  # first event -> `ready`, by the daemon's own timestamps (installs only)
    to_exit: float  # SIGINT -> process exit
    left: int  # installs the hosts still have after the exit


async def real_up(count: int, *, silent: bool = False) -> RealRun:
    """`connect-dev up --no-tui --log-format json` with ``count`` hosts (and, with ``silent``,
    one more that never answers): start to ready, then SIGINT to exit."""
    async with accepting_addon() as addon, host_fleet(count) as sites:
        with tempfile.TemporaryDirectory() as directory, contextlib.ExitStack() as stack:
            silent_url = stack.enter_context(silent_host()) if silent else None
            config = write_project(Path(directory), addon, sites, silent_url)
            spawned = time.perf_counter()
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "connect_devloop",
                "up",
                "--no-tui",
                "--log-format",
                "json",
                "--config",
                str(config),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
            )
            assert process.stdout is not None
            first_ts: float | None = None
            async with asyncio.timeout(120):
                while True:
                    event = json.loads(await process.stdout.readline())
                    first_ts = event["ts"] if first_ts is None else first_ts
                    if event["event"] == "ready":
                        break
            to_ready = (time.perf_counter() - spawned) * 1000
            installs = (event["ts"] - first_ts) * 1000
            assert event["installed"] == count, f"{event['installed']} of {count} installed"
            started = time.perf_counter()
            process.send_signal(signal.SIGINT)
            await process.communicate()
            to_exit = (time.perf_counter() - started) * 1000
            assert process.returncode == 0
            return RealRun(to_ready, installs, to_exit, await installed_count(sites))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--saves", type=int, default=30)
    parser.add_argument(
        "--hosts",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1, 20, 100],
        help="host counts for start -> ready and SIGINT -> exit (default 1,20,100)",
    )
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    latencies = await save_to_installed(args.saves)
    print(
        f"save -> installed (1 host, {args.saves} lone saves): "
        f"median {statistics.median(latencies):.1f} ms, p95 {percentile(latencies, 0.95):.1f} ms"
        f"  [target: median <= 40 ms]"
    )

    posts, last_won = await burst_posts()
    print(
        f"burst of 20 saves in 1 s: {posts} install POSTs per host, last save installed: "
        f"{'yes' if last_won else 'NO'}  [target: <= 2]"
    )

    runs = {count: [await real_up(count) for _ in range(args.runs)] for count in args.hosts}
    base = min(args.hosts)

    def median(count: int, figure: str) -> float:
        return statistics.median(getattr(run, figure) for run in runs[count])

    summary: dict[str, float | None] = {}
    for figure, label, target in (
        ("installs", "start -> ready, installs only (first event to ready)", "<= 2.0"),
        ("to_ready", "start -> ready, interpreter start included", "<= 2.0"),
        ("to_exit", "SIGINT -> exit", "< 1000 ms"),
    ):
        figures = ", ".join(
            f"{count} host{'s' if count != 1 else ''} {median(count, figure):.0f} ms"
            for count in args.hosts
        )
        top = max(args.hosts)
        print(
            f"{label}: {figures}; ratio {top}/{base}: "
            f"{median(top, figure) / median(base, figure):.2f}  [target: {target}]"
        )
        summary[f"{figure}: {top}/{base} ratio"] = median(top, figure) / median(base, figure)
        summary[f"{figure}: {top} hosts ms"] = median(top, figure)
    left = sum(run.left for count_runs in runs.values() for run in count_runs)
    print(f"installs left behind after SIGINT: {left}  [target: 0]")

    alone = [await first_install_and_ready(silent=False) for _ in range(args.runs)]
    beside = [await first_install_and_ready(silent=True) for _ in range(args.runs)]
    alone_ms = statistics.median(ms for ms, _ in alone)
    beside_ms = statistics.median(ms for ms, _ in beside)
    ready_ms = statistics.median(ms for _, ms in beside)
    silent_exits = [(await real_up(1, silent=True)).to_exit for _ in range(min(3, args.runs))]
    print(
        f"beside a host that never answers: healthy host installed in {beside_ms:.0f} ms "
        f"(alone {alone_ms:.0f} ms, ratio {beside_ms / alone_ms:.2f}), ready in "
        f"{ready_ms:.0f} ms, SIGINT -> exit median "
        f"{statistics.median(silent_exits):.0f} ms of {len(silent_exits)} runs  "
        "[target: ratio ~1, ready ~5000 ms (the silence bound), exit < 2000 ms]"
    )
    print_summary(summary)


if __name__ == "__main__":
    asyncio.run(main())
