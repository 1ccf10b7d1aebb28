"""Helpers for end-to-end tests: a recording add-on server and an in-process `up`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from connect_devloop.config import load_config
from connect_devloop.events import EventBus
from connect_devloop.supervisor import Supervisor

from .conftest import EventLog
from .keyrings import REPO_ROOT
from .servers import serve

CONNECT_DEV = [sys.executable, "-m", "connect_devloop"]


@dataclass
class RecordingAddon:
    """An add-on server that accepts (or, on demand, rejects) lifecycle callbacks."""

    url: str = ""
    callbacks: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    installed_status: int = 204
    uninstalled_delay: float = 0.0  # seconds; makes a teardown slow enough to interrupt


@contextlib.asynccontextmanager
async def recording_addon() -> AsyncIterator[RecordingAddon]:
    addon = RecordingAddon()

    async def lifecycle(request: web.Request) -> web.Response:
        payload = await request.json()
        addon.callbacks.append((request.path, payload))
        if request.path == "/uninstalled":
            await asyncio.sleep(addon.uninstalled_delay)
        status = addon.installed_status if request.path == "/installed" else 204
        if status >= 400:
            return web.Response(status=status, text="tenant store is down")
        return web.Response(status=status)

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=f"page {request.path_qs}")

    app = web.Application()
    app.router.add_post("/installed", lifecycle)
    app.router.add_post("/uninstalled", lifecycle)
    app.router.add_get("/{tail:.*}", page)
    async with serve(app) as url:
        addon.url = url
        yield addon


def host_toml(
    name: str, url: str, *, password: str = "admin", username: str = "admin", product: str = "jira"
) -> str:
    return (
        f'[[hosts]]\nname = "{name}"\nurl = "{url}"\nproduct = "{product}"\n'
        f'username = "{username}"\npassword = "{password}"\n'
    )


def write_config(project: Path, addon_url: str, hosts: Sequence[str], *, port: int = 0) -> Path:
    text = (
        'descriptor = "atlassian-connect.json"\n'
        f'[addon]\nurl = "{addon_url}"\n'
        f"[proxy]\nport = {port}\n"
        '[tunnel]\nprovider = "none"\n' + "".join(hosts)
    )
    path = project / "connect-dev.toml"
    path.write_text(text, encoding="utf-8")
    return path


@dataclass
class Running:
    supervisor: Supervisor
    events: EventLog
    stop: asyncio.Event
    task: asyncio.Task[int]

    async def shutdown(self, timeout: float = 20.0) -> int:
        self.stop.set()
        return await asyncio.wait_for(self.task, timeout)


@contextlib.asynccontextmanager
async def running_up(
    config_path: Path, *, settle: float = 0.2, wait_ready: bool = True
) -> AsyncIterator[Running]:
    """`connect-dev up` in this event loop; stopped (with teardown) on exit."""
    events = EventLog()
    bus = EventBus()
    bus.subscribe(events)
    supervisor = Supervisor(load_config(config_path), bus, settle=settle, teardown_timeout=5.0)
    stop = asyncio.Event()
    task = asyncio.create_task(supervisor.run(stop))
    running = Running(supervisor, events, stop, task)
    try:
        if wait_ready:
            await events.wait_event("ready", timeout=15)
        yield running
    finally:
        if not task.done():
            await running.shutdown()


def save(path: Path, document_text: str) -> None:
    """A plain save: truncate and write, like most editors without safe-write."""
    path.write_text(document_text, encoding="utf-8")


def installed_descriptors(record: Any) -> list[dict[str, Any]]:
    return [install.descriptor for install in record.installs]


def dumps(value: Any) -> str:
    return json.dumps(value, indent=2, default=str)


@dataclass
class Process:
    """A subprocess whose stdout lines (JSON where they parse) are collected as they come, and
    whose stderr is drained meanwhile (a verbose child must never block on a full pipe)."""

    process: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    reader: asyncio.Task[None] | None = None
    errors: bytearray = field(default_factory=bytearray)
    error_reader: asyncio.Task[None] | None = None

    def start_reading(self) -> None:
        self.reader = asyncio.create_task(self._read())
        if self.process.stderr is not None:
            self.error_reader = asyncio.create_task(self._read_errors())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            self.lines.append(line.decode(errors="replace").rstrip("\n"))
            self.changed.set()
        self.changed.set()

    async def _read_errors(self) -> None:
        assert self.process.stderr is not None
        while chunk := await self.process.stderr.read(65536):
            self.errors += chunk

    async def stderr_text(self) -> str:
        """All of stderr, once the process has exited."""
        if self.error_reader is not None:
            await self.error_reader
        elif self.process.stderr is not None:
            self.errors += await self.process.stderr.read()
        return self.errors.decode(errors="replace")

    def events(self, name: str) -> list[dict[str, Any]]:
        found = []
        for line in self.lines:
            with contextlib.suppress(ValueError):
                data = json.loads(line)
                if isinstance(data, dict) and data.get("event") == name:
                    found.append(data)
        return found

    async def wait_event(self, name: str, timeout: float = 30.0, **fields: Any) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                for event in self.events(name):
                    if all(event.get(k) == v for k, v in fields.items()):
                        return event
                if self.process.returncode is not None and self.reader and self.reader.done():
                    stderr = await self.stderr_text()
                    raise AssertionError(
                        f"exited before {name}: {self.lines[-20:]} {stderr[-2000:]}"
                    )
                self.changed.clear()
                await self.changed.wait()

    async def wait_event_count(self, name: str, count: int, timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.events(name)) < count:
                if self.process.returncode is not None:
                    raise AssertionError(f"exited before {count} {name}: {self.lines[-20:]}")
                self.changed.clear()
                await self.changed.wait()

    async def stop(self, sig: int = signal.SIGINT, timeout: float = 20.0) -> str:
        if self.process.returncode is None:
            self.process.send_signal(sig)
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        if self.reader is not None:
            await self.reader
        return await self.stderr_text()


@contextlib.asynccontextmanager
async def connect_dev_up(
    config: Path, env: dict[str, str], *, args: Sequence[str] = ()
) -> AsyncIterator[Process]:
    """A real `connect-dev up --no-tui --log-format json [ARGS]` subprocess, stopped with
    SIGINT."""
    process = Process(
        await asyncio.create_subprocess_exec(
            *CONNECT_DEV,
            "up",
            "--no-tui",
            "--log-format",
            "json",
            "--config",
            str(config),
            *args,
            cwd=REPO_ROOT,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    )
    process.start_reading()
    try:
        yield process
    finally:
        await process.stop()


def run_cli(
    *args: str, cwd: Path | None = None, command: Sequence[str] = CONNECT_DEV
) -> subprocess.CompletedProcess[str]:
    """A `connect-dev` command run to its end (30 s at most), its output captured."""
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=30,
        check=False,
        stdin=subprocess.DEVNULL,
    )
