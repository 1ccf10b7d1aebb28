"""Where the log renderers write: a stream, written in batches without losing a line.

A flood of requests is thousands of events a second, all on the proxy's event loop; a write and
a flush (a system call) for each line costs every proxied request. A ``LineOutput`` with
``buffered=True`` instead collects the lines and writes them with one write and one flush:

- at the end of the current turn of the event loop (``loop.call_soon``), so a line is on the
  stream within a turn of the loop (well under a millisecond when the loop is idle, one turn
  of the loop during a flood) and a person watching the log sees it at once;
- at once when the batch passes ``BATCH_LIMIT`` characters, so memory stays bounded when a
  turn of the loop is long;
- at once when there is no running loop (a line rendered outside the daemon).

No line is lost: ``flush_all()`` writes what every live output holds. The CLI calls it when the
daemon ends (normally or on a crash), before a forced exit (a second Ctrl-C calls ``os._exit``,
which flushes nothing), and ``atexit`` calls it for whatever else ends the interpreter. A
closed pipe (``connect-dev up | head``) ends the output quietly: its lines are dropped, nothing
raises, and the standard output is pointed at ``/dev/null`` so that the interpreter's own final
flush does not fail either.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import weakref
from typing import TextIO

__all__ = ["BATCH_LIMIT", "LineOutput", "flush_all"]

logger = logging.getLogger(__name__)

# Characters held before a batch is written without waiting for the end of the loop's turn.
BATCH_LIMIT = 64 * 1024

_live: weakref.WeakSet[LineOutput] = weakref.WeakSet()
_atexit_registered = False


def flush_all() -> None:
    """Write what every buffered output holds (safe to call at any time, from the loop's thread)."""
    for output in list(_live):
        output.flush()


class LineOutput:
    """Text for ``stream``: written at once, or (``buffered``) batched as the module says."""

    __slots__ = ("__weakref__", "_broken", "_buffered", "_pending", "_scheduled", "_size", "stream")

    def __init__(self, stream: TextIO, *, buffered: bool = False) -> None:
        self.stream = stream
        self._buffered = buffered
        self._pending: list[str] = []
        self._size = 0
        self._scheduled = False
        self._broken = False
        if buffered:
            global _atexit_registered
            _live.add(self)
            if not _atexit_registered:
                atexit.register(flush_all)
                _atexit_registered = True

    @property
    def pending(self) -> int:
        """Characters written to this output and not yet to its stream."""
        return self._size

    def write(self, text: str) -> None:
        if self._broken:
            return
        if not self._buffered:
            self._write(text)
            return
        self._pending.append(text)
        self._size += len(text)
        if self._size >= BATCH_LIMIT:
            self.flush()
        elif not self._scheduled:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            loop.call_soon(self._flush_scheduled)
            self._scheduled = True

    def _flush_scheduled(self) -> None:
        self._scheduled = False
        self.flush()

    def flush(self) -> None:
        """Write the pending lines and flush the stream."""
        if not self._pending:
            return
        text = "".join(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending.clear()
        self._size = 0
        self._write(text)

    def _write(self, text: str) -> None:
        if self._broken:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except (BrokenPipeError, ValueError):
            # The reader went away (`up | head`) or the stream was closed: nobody reads these
            # lines any more. Stop writing, and keep the interpreter's final flush quiet.
            self._broken = True
            _silence(self.stream)
        except OSError as exc:
            # A full disk, say: these lines are gone, the next ones may still make it.
            logger.warning("could not write the log: %s", exc)


def _silence(stream: TextIO) -> None:
    """Point a broken stream's file descriptor at /dev/null (what the Python documentation
    advises for SIGPIPE), so that what its buffer still holds is dropped without an error."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        fd = stream.fileno()
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, fd)
        finally:
            os.close(null)
