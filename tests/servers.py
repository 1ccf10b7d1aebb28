"""Serving a test's own aiohttp app on a free loopback port."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web


@contextlib.asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Run ``app`` on 127.0.0.1 on a free port; yield its base URL; clean up on exit."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def text_app(text: str = "add-on saw {path_qs}") -> web.Application:
    """An add-on that answers every GET with ``text`` (``{path_qs}`` filled in)."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=text.format(path_qs=request.path_qs))

    app = web.Application()
    app.router.add_get("/{tail:.*}", page)
    return app
