"""The event loop the daemon runs on: uvloop where it is installed, asyncio's otherwise.

uvloop (libuv, Cython) takes 15-25 % less CPU per proxied request than asyncio's selector loop
in the real ``up`` (docs/performance.md, "uvloop"); it is a dependency on the platforms it
supports. ``CONNECT_DEV_EVENT_LOOP=asyncio`` picks asyncio's loop anyway: to compare, or to rule
the loop out when something looks wrong. Only the daemon's loop changes: the dashboard (Textual)
keeps asyncio's on its own thread (``tui.daemon_thread``).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["EVENT_LOOP_ENV", "loop_factory", "loop_name", "run"]

logger = logging.getLogger(__name__)

EVENT_LOOP_ENV = "CONNECT_DEV_EVENT_LOOP"
_T = TypeVar("_T")


def loop_name() -> str:
    """``uvloop`` or ``asyncio``: what ``run`` will use here."""
    return "uvloop" if _uvloop_factory() is not None else "asyncio"


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    return _uvloop_factory() or asyncio.new_event_loop


def run(main: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run(main)`` on the daemon's loop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)


def _uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    wanted = os.environ.get(EVENT_LOOP_ENV, "").strip().lower()
    if wanted == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if wanted == "uvloop":
            logger.warning("%s=uvloop, but uvloop is not installed: using asyncio", EVENT_LOOP_ENV)
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory
