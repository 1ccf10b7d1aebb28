"""Run N emulated hosts in this process, apart from the daemon being measured.

    python benchmarks/hostfleet.py N

Prints one JSON line: the hosts' base URLs and origins; serves until stdin closes.
Real hosts are other machines: keeping them out of the daemon's process and event loop stops
their work (RSA signing, both ends of every request) from being counted as the daemon's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys

from connect_devloop.host import run_host


async def main(count: int) -> None:
    async with contextlib.AsyncExitStack() as stack:
        hosts = [await stack.enter_async_context(run_host()) for _ in range(count)]
        print(json.dumps([{"base_url": h.base_url, "origin": h.origin} for h in hosts]), flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
