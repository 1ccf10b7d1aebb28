"""Watch the descriptor file for saves, the way editors really save, wherever the file really is.

Editors replace files by renaming a temp file over them (IntelliJ, formatters) or by renaming the
old file away first (vim); a watch on the file itself is lost after the first rename. So we watch
the directory that holds the file, keep only changes to its name, and after each batch decide by
what is on disk: the file's bytes and their digest. Saves that leave the bytes unchanged are
dropped.

What the user points at is what is watched:

- A descriptor that is a symlink is followed: the directory of the link and the directory of
  every link it leads through, up to the real file, are watched, so an edit of the target
  (also outside the project) is seen, and so is the link being pointed elsewhere.
- A directory that is renamed, removed or re-created keeps its inotify watch on the old inode,
  which then reports nothing about the path. A cheap check every ``recheck`` seconds notices a
  different directory (or none) at the path and watches again.
- A file that is gone after a batch (and still gone a moment later: vim's save renames the old
  file away before writing the new one) is reported as ``Unreadable``, once, and so is a path
  that is no longer a readable regular file (``files.read_input_file``).

On Linux the directories are watched with inotify on the event loop (``inotify.py``): a save is
read the moment the editor closes the file (0.8 ms from write to yield here, median of 20), at
no idle cost. Elsewhere watchfiles polls from a thread: its ``step`` is the quiet gap it waits
for before yielding and how often its thread wakes, so it sets both the latency and the idle
cost (10 ms: 13.4 ms and 0.4 % of a core; 3 ms: 5.6 ms and 0.7 %; 1 ms: 2.6 ms and 2.1 %). 3 ms
it is; a save that short gap catches half written is not reported invalid unless nothing
follows (the supervisor's ``INVALID_CONFIRM_SECONDS``). ``debounce`` caps how long one of its
batches may grow. Coalescing of bursts is the registrar's job, so the first save of a burst is
reported at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import platform
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import watchfiles

from .files import InputFileError, read_input_file
from .inotify import MOVED, NAMED, InotifyUnavailable, directory_changes

__all__ = ["Unreadable", "watch_file"]

logger = logging.getLogger(__name__)

# Symlinks followed before giving up (the kernel's own limit is 40).
_MAX_LINK_HOPS = 40


@dataclass(frozen=True)
class Unreadable:
    """The watched path has no readable descriptor now: ``reason`` says why ("file was
    removed", "is a directory, not a regular file", …)."""

    reason: str


async def watch_file(
    path: Path,
    *,
    stop_event: asyncio.Event | None = None,
    initial: bytes | None = None,
    debounce_ms: int = 50,
    step_ms: int = 3,
    recheck: float = 0.5,
    removal_grace: float = 0.15,
    backend: str = "auto",
) -> AsyncIterator[bytes | Unreadable]:
    """Yield the file's bytes each time a save changes them, and ``Unreadable`` once each time
    the file stops being readable. ``initial`` is what the caller already has, so an unchanged
    first read is not reported. ``path`` must be absolute. ``backend``: ``inotify`` (Linux),
    ``watchfiles``, or ``auto`` (inotify where it can be used)."""
    stop = stop_event or asyncio.Event()
    last_digest = hashlib.sha256(initial).digest() if initial is not None else None
    last_problem: str | None = None

    def news(now: bytes | Unreadable) -> bytes | Unreadable | None:
        """What to yield for a fresh read: None when nothing changed since the last yield."""
        nonlocal last_digest, last_problem
        if isinstance(now, Unreadable):
            if now.reason == last_problem:
                return None
            last_problem, last_digest = now.reason, None  # the same bytes coming back are news
            return now
        digest = hashlib.sha256(now).digest()
        if digest == last_digest and last_problem is None:
            return None
        last_digest, last_problem = digest, None
        return now

    while not stop.is_set():
        points = _watch_points(path)
        directories = _existing_directories(points)
        if path.parent not in directories:
            if (item := news(Unreadable(_directory_gone(path)))) is not None:
                yield item
            await _wait(stop, recheck)
            continue
        # Anything saved while nothing was watching (start-up, a re-created directory).
        if (item := news(await _read_settled(path, removal_grace))) is not None:
            yield item
        names = frozenset(point.name for point in points)
        rewatch = asyncio.Event()
        monitor = asyncio.create_task(
            _notice_moves(path, points, directories, stop, rewatch, recheck),
            name="watch descriptor: directories",
        )
        try:
            changes = _changes(directories, names, rewatch, backend, debounce_ms, step_ms)
            # aclosing: the inotify descriptor and its waits end here, not when the generator
            # is collected some time later.
            async with contextlib.aclosing(changes):
                async for kind in changes:
                    if kind == MOVED:
                        break  # a watched directory went: watch what is at the path now
                    if (item := news(await _read_settled(path, removal_grace))) is not None:
                        yield item
                    if _watch_points(path) != points:
                        break  # a link in the chain now points elsewhere: watch its new target
        finally:
            monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await monitor


async def _changes(
    directories: list[Path],
    names: frozenset[str],
    stop: asyncio.Event,
    backend: str,
    debounce_ms: int,
    step_ms: int,
) -> AsyncGenerator[str, None]:
    """``NAMED`` for each batch of changes to ``names`` in ``directories``, ``MOVED`` when a
    directory went (inotify only: watchfiles is told by ``_notice_moves``)."""
    if backend == "auto" and _polling_asked():
        backend = "watchfiles"  # it polls, which is what the user asked for
    if backend in ("auto", "inotify"):
        try:
            async for kind in directory_changes(directories, names, stop):
                yield kind
            return
        except InotifyUnavailable as exc:
            if backend == "inotify":
                raise
            logger.debug("watching with watchfiles: %s", exc)
    async for _batch in watchfiles.awatch(
        *directories,
        watch_filter=_named(names),
        debounce=debounce_ms,
        step=step_ms,
        stop_event=stop,
        recursive=False,
    ):
        yield NAMED


def _polling_asked() -> bool:
    """Whether watchfiles would poll: ``WATCHFILES_FORCE_POLLING`` (its switch for file systems
    that send no change events: a VM's or container's shared folder, NFS) set and not
    false/disable(d), or unset on WSL, where Windows drives send none. Then it is used, polling,
    instead of inotify."""
    value = os.environ.get("WATCHFILES_FORCE_POLLING")
    if value:
        return value.lower() not in ("false", "disable", "disabled")
    return "microsoft-standard" in platform.uname().release.lower()


def _named(names: frozenset[str]) -> Callable[[watchfiles.Change, str], bool]:
    def ours(_change: watchfiles.Change, changed: str) -> bool:
        return os.path.basename(changed) in names

    return ours


async def _read_settled(path: Path, grace: float) -> bytes | Unreadable:
    """The file's bytes, or why there are none. A file missing right after a change gets
    ``grace`` seconds to come back (vim renames it away, then writes the new one)."""
    now = _read(path)
    if isinstance(now, Unreadable) and _missing(path):
        await asyncio.sleep(grace)
        now = _read(path)
    return now


def _read(path: Path) -> bytes | Unreadable:
    try:
        # A descriptor is a few KB: reading it inline costs microseconds, a thread hop more.
        return read_input_file(path)
    except InputFileError as exc:
        if exc.missing:
            return Unreadable(_why_missing(path))
        return Unreadable(exc.reason)


def _missing(path: Path) -> bool:
    return not os.path.exists(path)


def _why_missing(path: Path) -> str:
    return _directory_gone(path) if not path.parent.is_dir() else "file was removed"


def _directory_gone(path: Path) -> str:
    return f"directory {path.parent} was removed or renamed"


def _watch_points(path: Path) -> tuple[Path, ...]:
    """``path`` and every file a symlink chain from it passes through, each under its
    directory's real path (what the file system reports changes under)."""
    points: list[Path] = []
    hop = str(path)
    for _ in range(_MAX_LINK_HOPS):
        points.append(Path(os.path.realpath(os.path.dirname(hop))) / os.path.basename(hop))
        try:
            target = os.readlink(hop)
        except OSError:  # not a link (or gone): the chain ends here
            break
        hop = os.path.join(os.path.dirname(hop), target)
    # The path as given comes first, unresolved: it is how the user named the file.
    points[0] = path
    return tuple(points)


def _existing_directories(points: tuple[Path, ...]) -> list[Path]:
    directories: list[Path] = []
    for point in points:
        if point.parent not in directories and point.parent.is_dir():
            directories.append(point.parent)
    return directories


def _identity(directory: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(directory)
    except OSError:
        return None
    return info.st_dev, info.st_ino


async def _notice_moves(
    path: Path,
    points: tuple[Path, ...],
    directories: list[Path],
    stop: asyncio.Event,
    rewatch: asyncio.Event,
    interval: float,
) -> None:
    """Set ``rewatch`` when the watch no longer covers the path: a watched directory was
    renamed, removed or replaced, or the symlink chain changed; also when ``stop`` is set."""
    watched = {directory: _identity(directory) for directory in directories}
    while not stop.is_set():
        await _wait(stop, interval)
        moved = any(_identity(directory) != known for directory, known in watched.items())
        if stop.is_set() or moved or _watch_points(path) != points:
            rewatch.set()
            return


async def _wait(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)
