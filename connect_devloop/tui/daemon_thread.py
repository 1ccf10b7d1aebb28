"""The daemon on its own thread and event loop, so the dashboard never holds up the proxy.

With the daemon inside Textual's loop, every redraw (a few milliseconds under a flood of
requests) held every proxied request waiting behind it: p99 added latency 9.6 ms with the
dashboard on screen against 0.37 ms without (docs/performance.md). On its own loop the proxy
waits at most for the interpreter's thread switch, which ``run_dashboard`` shortens.

Nothing else changes for the daemon: it still emits on the bus (the dashboard's subscriber is
safe from any thread) and still stops when its own ``stop`` is set; each call from the
dashboard is handed to the daemon's loop, which is uvloop where installed (``eventloop``).
A replay is too: it sends through the proxy, whose sockets belong to that loop. The capture
(``traffic``) is read from the dashboard's thread as it is (see ``inspector``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from .. import eventloop
from ..traffic.replay import ReplayError, ReplayOutcome
from ..traffic.service import TrafficService
from .inspector import NOT_CAPTURING, traffic_of

if TYPE_CHECKING:
    from .app import Daemon

__all__ = ["ThreadedDaemon"]


class ThreadedDaemon:
    """A ``Daemon`` that runs ``daemon`` on a thread of its own, with its own event loop."""

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._running = False

    async def run(self, stop: asyncio.Event) -> int:
        outcome: concurrent.futures.Future[int] = concurrent.futures.Future()
        thread = threading.Thread(
            target=self._main, args=(outcome,), name="connect-dev daemon", daemon=True
        )
        self._running = True
        thread.start()
        finished = asyncio.wrap_future(outcome)
        stopping: asyncio.Future[bool] = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait((finished, stopping), return_when=asyncio.FIRST_COMPLETED)
            if not finished.done():
                self._call(self._set_stop)
            # The teardown is never cut short from here: ``finished`` ends when the daemon's
            # run returns, whatever happens to the task awaiting it.
            return await asyncio.shield(finished)
        finally:
            stopping.cancel()

    def _main(self, outcome: concurrent.futures.Future[int]) -> None:
        try:
            outcome.set_result(eventloop.run(self._run_here()))
        except BaseException as exc:  # handed to the dashboard's loop, which reports it
            outcome.set_exception(exc)
        finally:
            self._started.set()  # never leave a caller waiting for a loop that is gone

    async def _run_here(self) -> int:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._started.set()
        return await self._daemon.run(self._stop)

    def _set_stop(self) -> None:
        assert self._stop is not None
        self._stop.set()

    def _daemon_loop(self) -> asyncio.AbstractEventLoop | None:
        """The daemon's loop once it runs (a caller waits the few microseconds of its start);
        None before ``run`` and after the daemon has finished."""
        if not self._running:
            return None
        self._started.wait()
        loop = self._loop
        return None if loop is None or loop.is_closed() else loop

    def _call(self, callback: Callable[[], object]) -> None:
        """Run ``callback()`` on the daemon's loop (dropped once that loop has ended)."""
        loop = self._daemon_loop()
        if loop is None:
            return
        # RuntimeError: the loop closed in between; the daemon has finished.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(callback)

    def reinstall(self, host: str | None = None, *, reason: str = "manual") -> None:
        self._call(lambda: self._daemon.reinstall(host, reason=reason))

    def validate_now(self) -> None:
        self._call(self._daemon.validate_now)

    async def uninstall(self, host: str) -> bool:
        loop = self._daemon_loop()
        if loop is None:
            return False
        future = asyncio.run_coroutine_threadsafe(self._daemon.uninstall(host), loop)
        return await asyncio.wrap_future(future)

    @property
    def traffic(self) -> TrafficService | None:
        return traffic_of(self._daemon)

    async def replay(
        self, exchange_id: int, *, edited: str | None = None, unchanged: bool = False
    ) -> ReplayOutcome:
        traffic, loop = self.traffic, self._daemon_loop()
        if traffic is None or loop is None:
            raise ReplayError(f"request {exchange_id} cannot be sent again: {NOT_CAPTURING}")
        replay = traffic.replay(exchange_id, edited=edited, unchanged=unchanged)
        try:
            future = asyncio.run_coroutine_threadsafe(replay, loop)
        except RuntimeError:  # the loop closed in between: the daemon has finished
            replay.close()
            raise ReplayError(f"request {exchange_id} was not sent: connect-dev stopped") from None
        return await asyncio.wrap_future(future)
