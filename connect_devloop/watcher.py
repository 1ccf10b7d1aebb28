"""Watch the descriptor file for saves, the way editors really save.

Editors replace files by renaming a temp file over them (IntelliJ, formatters) or by renaming the
old file away first (vim); a watch on the file itself is lost after the first rename. So we watch
the parent directory, keep only changes to our file name, and after each batch decide by what is
on disk: the file's bytes and their digest. Saves that leave the bytes unchanged are dropped.

``step`` is the quiet gap watchfiles waits for before yielding (it sets the latency, ~20 ms here);
``debounce`` caps how long one batch may grow. Coalescing of bursts is the registrar's job, so
the watcher reports the first save of a burst immediately instead of waiting it out.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import watchfiles

__all__ = ["watch_file"]

logger = logging.getLogger(__name__)


async def watch_file(
    path: Path,
    *,
    stop_event: asyncio.Event | None = None,
    initial: bytes | None = None,
    debounce_ms: int = 50,
    step_ms: int = 10,
) -> AsyncIterator[bytes]:
    """Yield the file's bytes each time a save changes them. ``initial`` is what the caller
    already has, so an unchanged first save is not reported. ``path`` must be absolute."""
    name = path.name
    last_digest = hashlib.sha256(initial).digest() if initial is not None else None

    def ours(_change: watchfiles.Change, changed: str) -> bool:
        return Path(changed).name == name

    async for _changes in watchfiles.awatch(
        path.parent,
        watch_filter=ours,
        debounce=debounce_ms,
        step=step_ms,
        stop_event=stop_event,
        recursive=False,
    ):
        try:
            # A descriptor is a few KB: reading it inline costs microseconds, a thread hop more.
            raw = path.read_bytes()  # noqa: ASYNC240
        except FileNotFoundError:
            # Mid-way through a vim-style save, or deleted: wait for the next change.
            logger.debug("%s is absent after a change", path)
            continue
        except OSError as exc:
            logger.warning("cannot read %s: %s", path, exc)
            continue
        digest = hashlib.sha256(raw).digest()
        if digest == last_digest:
            continue
        last_digest = digest
        yield raw
