"""Background tasks that never end unnoticed.

Every long-lived task of ``up`` (the descriptor watcher, each host's install worker, the tunnel
keeper, the readiness check) runs through ``keep_running``: an unexpected exception is logged
with its traceback, reported as an ``error`` event naming the task, and the task is started
again after a short, growing pause. Without this an exception ends the task silently: the
screen still says ready while every later save is ignored, and the exception only surfaces
(if at all) when teardown cancels the dead task.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import traceback
from collections.abc import Awaitable, Callable

from .events import Error, Event

__all__ = ["FIRST_RESTART_SECONDS", "MAX_RESTART_SECONDS", "keep_running", "report_crash"]

logger = logging.getLogger(__name__)

FIRST_RESTART_SECONDS = 0.5
MAX_RESTART_SECONDS = 30.0
# A task that ran this long before failing starts again after the first pause, not a longer one.
_HEALTHY_RUN_SECONDS = 60.0


def report_crash(task: str, exc: BaseException, emit: Callable[[Event], None], then: str) -> None:
    """Report ``exc`` as an ``error`` event and log its traceback (shown with -v). ``then``
    says what happens next ("It restarts in 0.5 s").

    The event names the exception's type and where it was raised, not its text: an error's
    text may quote a value (a header, a config line) that is a secret, and the event reaches
    the screen and the logs."""
    logger.debug("%s failed", task, exc_info=exc)
    emit(
        Error(
            task=task,
            message=f"{task} stopped on an unexpected error: {type(exc).__name__}{_raised_at(exc)}",
            hint=f"{then}. This is a connect-devloop bug: please report it with the output "
            "of the same run with -v (it has the traceback).",
        )
    )


def _raised_at(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    innermost = frames[-1]
    return f" (raised at {os.path.basename(innermost.filename)}:{innermost.lineno})"


async def keep_running(
    task: str,
    run: Callable[[], Awaitable[None]],
    emit: Callable[[Event], None],
    *,
    first_delay: float = FIRST_RESTART_SECONDS,
    max_delay: float = MAX_RESTART_SECONDS,
) -> None:
    """Await ``run()`` until it returns; each time it raises, report it and call it again.
    Cancellation ends it as usual."""
    delay = first_delay
    while True:
        started = time.monotonic()
        try:
            await run()
            return
        except Exception as exc:
            if time.monotonic() - started >= _HEALTHY_RUN_SECONDS:
                delay = first_delay
            report_crash(task, exc, emit, then=f"It restarts in {delay:g} s")
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay)
