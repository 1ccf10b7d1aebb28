"""Linux inotify on a few directories, read on the asyncio loop: a save is seen the moment the
editor closes the file, at no cost while nothing happens.

watchfiles (the portable watcher, used where this is not available) polls its event queue from
a thread every ``step`` milliseconds and yields only after a quiet ``step``: its latency and its
idle cost are traded against each other (docs/performance.md). Here the kernel wakes the loop
through the inotify file descriptor instead, as Node's ``fs.watch`` (what ACE uses) does.

Only whole operations are watched: a file closed after writing, renamed in or out, created,
deleted, or its attributes changed. A plain write is seen at its close, so a save is never read
half written; an editor that keeps the file open while writing is rare for a descriptor.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import struct
import sys
from collections.abc import AsyncGenerator, Iterable
from pathlib import Path

__all__ = ["MOVED", "NAMED", "InotifyUnavailable", "directory_changes"]

# <sys/inotify.h>
_IN_ATTRIB = 0x00000004
_IN_CLOSE_WRITE = 0x00000008
_IN_MOVED_FROM = 0x00000040
_IN_MOVED_TO = 0x00000080
_IN_CREATE = 0x00000100
_IN_DELETE = 0x00000200
_IN_DELETE_SELF = 0x00000400
_IN_MOVE_SELF = 0x00000800
_IN_Q_OVERFLOW = 0x00004000
_IN_IGNORED = 0x00008000
_IN_ONLYDIR = 0x01000000
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC

_FILE_EVENTS = _IN_CLOSE_WRITE | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_CREATE | _IN_DELETE
_SELF_EVENTS = _IN_DELETE_SELF | _IN_MOVE_SELF | _IN_IGNORED
_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of NUL-padded name

NAMED = "named"  # something happened to one of the watched names
MOVED = "moved"  # a watched directory was moved or removed: watch again


class InotifyUnavailable(Exception):
    """Not Linux, no libc symbol, or the kernel refused (limits): use the portable watcher."""


class _Libc:
    def __init__(self) -> None:
        if sys.platform != "linux":
            raise InotifyUnavailable(f"inotify is Linux only (this is {sys.platform})")
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
            self.init1 = libc.inotify_init1
            self.add_watch = libc.inotify_add_watch
        except (OSError, AttributeError) as exc:
            raise InotifyUnavailable(f"no inotify in the C library: {exc}") from exc
        self.init1.argtypes = [ctypes.c_int]
        self.init1.restype = ctypes.c_int
        self.add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        self.add_watch.restype = ctypes.c_int


_libc: _Libc | None = None


def _c() -> _Libc:
    global _libc
    if _libc is None:
        _libc = _Libc()
    return _libc


def _open(directories: Iterable[Path]) -> int:
    libc = _c()
    fd: int = libc.init1(_IN_NONBLOCK | _IN_CLOEXEC)
    if fd < 0:
        raise InotifyUnavailable(f"inotify_init1: {os.strerror(ctypes.get_errno())}")
    try:
        for directory in directories:
            mask = _FILE_EVENTS | _IN_ATTRIB | _SELF_EVENTS | _IN_ONLYDIR
            if libc.add_watch(fd, os.fsencode(directory), mask) < 0:
                error = ctypes.get_errno()
                raise InotifyUnavailable(f"inotify_add_watch {directory}: {os.strerror(error)}")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _kinds(data: bytes, names: frozenset[str]) -> set[str]:
    kinds: set[str] = set()
    offset = 0
    while offset + _HEADER.size <= len(data):
        _wd, mask, _cookie, length = _HEADER.unpack_from(data, offset)
        raw_name = data[offset + _HEADER.size : offset + _HEADER.size + length]
        offset += _HEADER.size + length
        if mask & _SELF_EVENTS:
            kinds.add(MOVED)
        elif mask & _IN_Q_OVERFLOW or os.fsdecode(raw_name.split(b"\0", 1)[0]) in names:
            kinds.add(NAMED)
    return kinds


async def directory_changes(
    directories: Iterable[Path], names: frozenset[str], stop: asyncio.Event
) -> AsyncGenerator[str, None]:
    """Yield ``NAMED`` when one of ``names`` in ``directories`` was written, renamed, created or
    deleted, and ``MOVED`` when a directory itself went (then stop watching: the caller starts
    again). Events that arrive together are yielded once. Ends when ``stop`` is set. Raises
    ``InotifyUnavailable`` at once when inotify cannot be used."""
    fd = _open(directories)
    loop = asyncio.get_running_loop()
    seen: set[str] = set()
    arrived = asyncio.Event()

    def readable() -> None:
        while True:
            try:
                data = os.read(fd, 64 * 1024)
            except BlockingIOError:
                break
            except OSError:  # the descriptor went bad: say so as a move, so the caller rewatches
                seen.add(MOVED)
                break
            if not data:
                break
            seen.update(_kinds(data, names))
        if seen:
            arrived.set()

    loop.add_reader(fd, readable)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        while not stop.is_set():
            waiting = asyncio.ensure_future(arrived.wait())
            try:
                await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiting
            if stop.is_set():
                return
            arrived.clear()
            kinds, seen_now = set(seen), seen
            seen_now.clear()
            if MOVED in kinds:
                yield MOVED
                return
            if NAMED in kinds:
                yield NAMED
    finally:
        loop.remove_reader(fd)
        with contextlib.suppress(OSError):
            os.close(fd)
        stopping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopping
