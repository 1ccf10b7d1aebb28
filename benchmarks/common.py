"""What the benchmark scripts share: free ports, stopping a process group, checking a response,
percentiles. Each script is run as ``python benchmarks/NAME.py``, so this is imported as
``common`` (the script's own directory is first on ``sys.path``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
from collections.abc import AsyncIterator, Mapping, Sequence

__all__ = [
    "STOP_TIMEOUT",
    "SUMMARY_PREFIX",
    "accepting_addon",
    "body_length",
    "complete_response",
    "free_port",
    "met",
    "percentile",
    "print_summary",
]

# The last line of every script: its headline figures as JSON, read by repeat.py.
SUMMARY_PREFIX = "summary: "

STOP_TIMEOUT = 15.0  # s for a process to exit after it was asked to, before it is killed


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def met(ok: bool) -> str:
    return "met" if ok else "missed"


def print_summary(figures: Mapping[str, float | None]) -> None:
    """One line with the run's headline figures (rounded; None when not measured), for
    ``repeat.py`` to take medians of."""
    rounded = {name: None if value is None else round(value, 4) for name, value in figures.items()}
    print(SUMMARY_PREFIX + json.dumps(rounded), flush=True)


async def stop(process: asyncio.subprocess.Process, how: signal.Signals | None = None) -> None:
    """Ask ``process`` to stop with ``how`` (None: it was already asked); if it has not exited
    after STOP_TIMEOUT, kill its process group (each is started in its own session: nothing it
    started survives it)."""
    try:
        if process.returncode is None:
            if how is not None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(how)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
    finally:  # also when this wait is cancelled
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


def body_length(head: bytes) -> int:
    """The Content-Length of a response ``head`` (up to its empty line), which must be a 200."""
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"unexpected answer: {head[:80]!r}")
    lowered = head.lower()
    start = lowered.find(b"\r\ncontent-length:")
    if start < 0:
        raise RuntimeError(f"no Content-Length: {head[:80]!r}")
    start += len(b"\r\ncontent-length:")
    return int(lowered[start : lowered.find(b"\r\n", start)])


def complete_response(data: bytes) -> bool:
    """Whether ``data`` holds a whole response (a 200 with a Content-Length body)."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return False
    size = end + 4 + body_length(data[: end + 2])
    if len(data) > size:
        raise RuntimeError("more bytes than the response's Content-Length")
    return len(data) == size


@contextlib.asynccontextmanager
async def accepting_addon() -> AsyncIterator[str]:
    """An add-on that accepts every lifecycle callback (verification is not what we time)."""
    from aiohttp import web

    async def accept(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/{tail:.*}", accept)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
