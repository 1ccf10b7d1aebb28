"""Shared fixtures: hand-written fakes, project directories, and event recorders.

Real servers (the emulated host, the sample add-on, the proxy) are started by the tests that need
them on free loopback ports; only the UPM client has a fake here, for the registrar's state
machine, where a real host would make timing the thing under test instead of the logic.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from connect_devloop.errors import DevloopError
from connect_devloop.events import Event
from connect_devloop.upm import PluginInfo

from .keyrings import memory_keyring  # noqa: F401 - autouse: an in-memory keychain in every test

SAMPLE_DESCRIPTOR: dict[str, Any] = {
    "key": "test-addon",
    "name": "Test add-on",
    "baseUrl": "{{localBaseUrl}}",
    "authentication": {"type": "jwt"},
    "apiMigrations": {"signed-install": True},
    "lifecycle": {"installed": "/installed", "uninstalled": "/uninstalled"},
    "scopes": ["read"],
    "modules": {"generalPages": [{"key": "hello", "name": {"value": "Hello"}, "url": "/hello"}]},
}


def descriptor_text(**changes: Any) -> str:
    document = {**SAMPLE_DESCRIPTOR, **changes}
    return json.dumps(document, indent=2) + "\n"


class EventLog:
    """Collects events and lets a test await the one it expects, without sleeping."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._changed = asyncio.Event()

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()

    def of(self, name: str, **fields: Any) -> list[Event]:
        return [
            e
            for e in self.events
            if e.name == name and all(getattr(e, k) == v for k, v in fields.items())
        ]

    def names(self) -> list[str]:
        return [e.name for e in self.events]

    async def wait_for(self, predicate: Callable[[EventLog], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate(self):
                self._changed.clear()
                await self._changed.wait()

    async def wait_event(
        self, name: str, count: int = 1, timeout: float = 10.0, **fields: Any
    ) -> Event:
        await self.wait_for(lambda log: len(log.of(name, **fields)) >= count, timeout)
        return self.of(name, **fields)[count - 1]


async def eventually(condition: Callable[[], object], timeout: float = 10.0) -> None:
    """Wait until ``condition()`` holds, polling every 10 ms; fail after ``timeout`` s. For
    what must happen soon: a fixed sleep before asserting it fails on a loaded machine."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - state of objects that have no event to wait on
            await asyncio.sleep(0.01)


@pytest.fixture(autouse=True, scope="session")
def no_real_keychain_in_subprocesses() -> Iterator[None]:
    """`connect-dev` subprocesses must not reach the user's keychain either."""
    previous = os.environ.get("PYTHON_KEYRING_BACKEND")
    os.environ["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("PYTHON_KEYRING_BACKEND", None)
        else:
            os.environ["PYTHON_KEYRING_BACKEND"] = previous


@pytest.fixture
def events() -> EventLog:
    return EventLog()


@dataclass
class FakeUpm:
    """Stands in for ``UpmClient``: records calls; each install waits on ``gate`` if set."""

    installs: list[str] = field(default_factory=list)
    uninstalls: list[str] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    gate: asyncio.Event | None = None
    install_error: DevloopError | None = None
    credentials_error: DevloopError | None = None
    uninstall_hangs: bool = False
    key_for_uri: Callable[[str], str] = lambda uri: "test-addon"
    enabled: bool = True
    silent_until: asyncio.Event | None = None  # the host says nothing until this is set
    last_reply_at: float | None = None  # as UpmClient: when the host last answered

    async def check_dev_mode(self) -> None:
        if self.silent_until is not None:
            await self.silent_until.wait()
        self.last_reply_at = time.monotonic()

    async def install(
        self, plugin_uri: str, *, before_post: Callable[[], Awaitable[None]] | None = None
    ) -> PluginInfo:
        if self.credentials_error is not None:
            raise self.credentials_error  # refused before any POST, like a 401 on the token
        if before_post is not None:
            await before_post()
        self.installs.append(plugin_uri)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.gate is not None:
                await self.gate.wait()
            else:
                await asyncio.sleep(0)
            if self.install_error is not None:
                raise self.install_error
            return PluginInfo(key=self.key_for_uri(plugin_uri), enabled=self.enabled)
        finally:
            self.in_flight -= 1

    async def uninstall(self, key: str) -> bool:
        if self.uninstall_hangs:
            await asyncio.Event().wait()
        self.uninstalls.append(key)
        return True


@pytest.fixture
def fake_upm() -> FakeUpm:
    return FakeUpm()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project directory with a valid descriptor; tests write their own connect-dev.toml."""
    (tmp_path / "atlassian-connect.json").write_text(descriptor_text(), encoding="utf-8")
    return tmp_path
