"""The watcher against real files saved the ways editors save them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from connect_devloop.watcher import Unreadable, watch_file


class Saves:
    """Runs ``watch_file`` in a task and collects what it yields."""

    def __init__(self, path: Path, initial: bytes | None, **options: Any) -> None:
        self.path = path
        self._options = options
        self.seen: list[bytes | Unreadable] = []
        self.arrived = asyncio.Event()
        self.stop = asyncio.Event()
        self.ready = asyncio.Event()
        self._initial = initial
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for raw in watch_file(
            self.path, stop_event=self.stop, initial=self._initial, **self._options
        ):
            self.seen.append(raw)
            self.arrived.set()

    async def wait_count(self, count: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.seen) < count:
                self.arrived.clear()
                await self.arrived.wait()


@pytest.fixture(params=["inotify", "watchfiles"])
def backend(request: pytest.FixtureRequest) -> str:
    """Every behaviour holds for both: inotify on Linux, watchfiles elsewhere."""
    name: str = request.param
    return name


@pytest.fixture
async def saves(tmp_path: Path, backend: str) -> AsyncIterator[Saves]:
    path = tmp_path / "atlassian-connect.json"
    path.write_bytes(b"v0")
    watcher = Saves(path, b"v0", backend=backend)
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


async def test_a_deleted_file_is_reported_once_and_seen_again_when_back(saves: Saves) -> None:
    saves.path.unlink()
    await saves.wait_count(1)
    assert saves.seen == [Unreadable("file was removed")]
    # The same bytes as before the removal are news: the file is back.
    saves.path.write_bytes(b"v0")
    await saves.wait_count(2)
    assert saves.seen[1:] == [b"v0"]


async def test_vim_style_save_is_not_reported_as_a_removal(saves: Saves) -> None:
    backup = saves.path.with_name("atlassian-connect.json~")
    os.replace(saves.path, backup)
    await asyncio.sleep(0.03)  # longer than the watcher's quiet step: its own batch
    saves.path.write_bytes(b"after vim")
    await saves.wait_count(1)
    await asyncio.sleep(0.3)
    assert saves.seen == [b"after vim"]


async def watching(path: Path, initial: bytes | None, **options: Any) -> Saves:
    watcher = Saves(path, initial, **options)
    await asyncio.sleep(0.2)  # the Rust watcher registers the directories in its thread
    return watcher


async def stop(watcher: Saves) -> None:
    watcher.stop.set()
    await asyncio.wait_for(watcher.task, 5)


async def test_a_symlink_is_followed_to_its_target_outside_the_directory(
    tmp_path: Path, backend: str
) -> None:
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    target = elsewhere / "descriptor.json"
    target.write_bytes(b"v0")
    link = project / "atlassian-connect.json"
    link.symlink_to(target)
    watcher = await watching(link, b"v0", backend=backend)
    try:
        target.write_bytes(b"edited target")
        await watcher.wait_count(1)
        # Pointing the link at another file is a save too, and that file is watched from then.
        other = elsewhere / "other.json"
        other.write_bytes(b"other target")
        temp = project / "link.tmp"
        temp.symlink_to(other)
        os.replace(temp, link)
        await watcher.wait_count(2)
        await asyncio.sleep(0.6)  # let the watch move to the new target
        other.write_bytes(b"other edited")
        await watcher.wait_count(3)
        other.unlink()
        await watcher.wait_count(4)
    finally:
        await stop(watcher)
    assert watcher.seen == [
        b"edited target",
        b"other target",
        b"other edited",
        Unreadable(f"is a broken symbolic link (to {other}, which does not exist)"),
    ]


async def test_a_renamed_or_recreated_directory_is_noticed(tmp_path: Path, backend: str) -> None:
    directory = tmp_path / "addon"
    directory.mkdir()
    path = directory / "atlassian-connect.json"
    path.write_bytes(b"v0")
    watcher = await watching(path, b"v0", recheck=0.1, backend=backend)
    try:
        directory.rename(tmp_path / "addon-old")
        await watcher.wait_count(1)
        assert watcher.seen == [Unreadable(f"directory {directory} was removed or renamed")]
        directory.mkdir()
        path.write_bytes(b"v1")
        await watcher.wait_count(2)
        await asyncio.sleep(0.3)  # the new directory is watched now
        path.write_bytes(b"v2")
        await watcher.wait_count(3)
        shutil.rmtree(directory)
        await watcher.wait_count(4)
    finally:
        await stop(watcher)
    assert watcher.seen[1:] == [
        b"v1",
        b"v2",
        Unreadable(f"directory {directory} was removed or renamed"),
    ]


async def test_a_path_that_becomes_a_fifo_is_reported_without_blocking(
    tmp_path: Path, backend: str
) -> None:
    path = tmp_path / "atlassian-connect.json"
    path.write_bytes(b"v0")
    watcher = await watching(path, b"v0", backend=backend)
    try:
        path.unlink()
        os.mkfifo(path)
        await watcher.wait_count(1)
        await asyncio.sleep(0.3)
    finally:
        await stop(watcher)
    assert watcher.seen[-1] == Unreadable("is a FIFO (named pipe), not a regular file")


@pytest.mark.parametrize(
    ("value", "polls"),
    [("1", True), ("true", True), ("false", False), ("disabled", False), ("", False)],
)
async def test_watchfiles_force_polling_is_honoured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, polls: bool
) -> None:
    """Shared folders of VMs and containers send no change events: users set watchfiles'
    switch, and `auto` then uses watchfiles (which polls) instead of inotify."""
    import connect_devloop.watcher as watcher_module

    monkeypatch.setenv("WATCHFILES_FORCE_POLLING", value)
    assert watcher_module._polling_asked() is polls
    path = tmp_path / "atlassian-connect.json"
    path.write_bytes(b"v0")
    watcher = await watching(path, b"v0")
    try:
        # A poller's first scan is its baseline, and on a loaded machine it may come after a
        # first write: save again (another size each time: a poller compares sizes and times,
        # which may be whole seconds) until a save is seen, for 10 s at most.
        for attempt in range(20):
            path.write_bytes(b"v1, polled" + b"!" * attempt)
            with contextlib.suppress(TimeoutError):
                await watcher.wait_count(1, timeout=0.5)
                break
    finally:
        await stop(watcher)
    assert watcher.seen
    assert all(isinstance(seen, bytes) and seen.startswith(b"v1, polled") for seen in watcher.seen)
