"""The watcher against real files saved the ways editors save them."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from connect_devloop.watcher import watch_file


class Saves:
    """Runs ``watch_file`` in a task and collects what it yields."""

    def __init__(self, path: Path, initial: bytes | None) -> None:
        self.path = path
        self.seen: list[bytes] = []
        self.arrived = asyncio.Event()
        self.stop = asyncio.Event()
        self.ready = asyncio.Event()
        self._initial = initial
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for raw in watch_file(self.path, stop_event=self.stop, initial=self._initial):
            self.seen.append(raw)
            self.arrived.set()

    async def wait_count(self, count: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.seen) < count:
                self.arrived.clear()
                await self.arrived.wait()


@pytest.fixture
async def saves(tmp_path: Path) -> AsyncIterator[Saves]:
    path = tmp_path / "atlassian-connect.json"
    path.write_bytes(b"v0")
    watcher = Saves(path, b"v0")
    # The Rust watcher starts in a thread; give it a moment to register the directory.
    await asyncio.sleep(0.2)
    yield watcher
    watcher.stop.set()
    await asyncio.wait_for(watcher.task, 5)


async def test_plain_write_is_seen(saves: Saves) -> None:
    saves.path.write_bytes(b"v1")
    await saves.wait_count(1)
    assert saves.seen == [b"v1"]


async def test_safe_write_temp_then_rename_is_seen_every_time(saves: Saves) -> None:
    for n in range(1, 6):
        temp = saves.path.with_name(f".atlassian-connect.json.tmp{n}")
        temp.write_bytes(f"safe {n}".encode())
        os.replace(temp, saves.path)
        await saves.wait_count(n)
    assert saves.seen == [f"safe {n}".encode() for n in range(1, 6)]


async def test_vim_style_rename_away_then_write_is_seen(saves: Saves) -> None:
    for n in range(1, 4):
        backup = saves.path.with_name("atlassian-connect.json~")
        os.replace(saves.path, backup)
        saves.path.write_bytes(f"vim {n}".encode())
        backup.unlink()
        await saves.wait_count(n)
    assert saves.seen == [b"vim 1", b"vim 2", b"vim 3"]


async def test_unchanged_content_and_other_files_are_ignored(saves: Saves) -> None:
    saves.path.write_bytes(b"v0")  # same bytes as the initial content
    (saves.path.parent / "other.json").write_bytes(b"noise")
    saves.path.write_bytes(b"v1")
    await saves.wait_count(1)
    await asyncio.sleep(0.15)
    assert saves.seen == [b"v1"]


async def test_deleted_then_recreated_file_is_seen_once_back(saves: Saves) -> None:
    saves.path.unlink()
    await asyncio.sleep(0.1)
    assert saves.seen == []
    saves.path.write_bytes(b"back")
    await saves.wait_count(1)
    assert saves.seen == [b"back"]
