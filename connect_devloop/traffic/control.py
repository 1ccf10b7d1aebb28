"""The control socket of a running ``up``: ``.connect-dev/control.sock``.

A Unix socket, so nothing listens on the network for it; mode 0600 in the 0700 state
directory, so only its user can reach it; and each connection's peer is checked as well
(``SO_PEERCRED``): a process of another user is refused even where the file system would let
it through (a root-owned process, a loosened directory). Only the run that holds the project
lock creates it, so a second ``up`` never replaces it: a socket file found at start is what a
crashed run left, and is removed.

It speaks HTTP/1.1 (aiohttp), JSON in and out:

- ``GET /requests[?after=N]``: the summaries kept; ``?follow=1``: then each new one, as JSON
  lines, until the client leaves or the run stops;
- ``GET /requests/{id}[?secrets=1]``: one exchange in full; ``GET /requests/{id}/edit``: the
  request as a file to edit (credentials as placeholders);
- ``POST /requests/{id}/replay`` ``{"edited": text|null, "unchanged": bool}``;
- ``GET /har[?secrets=1]``: HAR 1.2.

Errors are ``{"error": message, "hint": hint}`` with a 4xx status.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from ..errors import DevloopError
from ..proxy.capture import Exchange
from .replay import NotCapturedError
from .service import TrafficService
from .view import summary

__all__ = ["MAX_SOCKET_PATH", "SOCKET_NAME", "ControlServer", "peer_uid", "socket_address"]

logger = logging.getLogger(__name__)

SOCKET_NAME = "control.sock"
# Unix socket paths longer than this do not fit sockaddr_un (108 bytes with its NUL on Linux).
MAX_SOCKET_PATH = 100
_FOLLOW_QUEUE = 1000  # summaries a slow follower may lag behind before it is told it skipped


class ControlServer:
    def __init__(
        self, state_dir: Path, service: TrafficService, *, allowed_uid: int | None = None
    ) -> None:
        self.path = state_dir / SOCKET_NAME
        self._service = service
        self._allowed_uid = os.getuid() if allowed_uid is None else allowed_uid
        self._runner: web.AppRunner | None = None
        self._followers: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self._stop_listening: Callable[[], None] | None = None

    async def start(self) -> None:
        app = web.Application(middlewares=[self._same_user])
        app.router.add_get("/requests", self._requests)
        app.router.add_get("/requests/{id}", self._detail)
        app.router.add_get("/requests/{id}/edit", self._editable)
        app.router.add_post("/requests/{id}/replay", self._replay)
        app.router.add_get("/har", self._har)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        sock = self._bind()
        await web.SockSite(self._runner, sock).start()

    def _bind(self) -> socket.socket:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left by a crashed run: this run holds the project lock
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            address, directory = socket_address(self.path)
            try:
                sock.bind(address)
            finally:
                if directory is not None:
                    os.close(directory)
            # The directory is 0700, so nobody else could reach it in between.
            os.chmod(self.path, 0o600)
            sock.listen(16)
        except OSError as exc:
            sock.close()
            raise DevloopError(
                f"{self.path}: cannot create the control socket: {exc.strerror}",
                hint="`connect-dev requests` and `replay` need it; the dev loop runs on.",
            ) from exc
        sock.setblocking(False)
        return sock

    async def close(self) -> None:
        if self._stop_listening is not None:
            self._stop_listening()
        for queue in list(self._followers):
            queue.put_nowait(None)  # ends each follow stream
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    # --- who may ask ----------------------------------------------------------------------

    @web.middleware
    async def _same_user(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        transport = request.transport
        sock = transport.get_extra_info("socket") if transport is not None else None
        uid = peer_uid(sock) if sock is not None else None
        if uid != self._allowed_uid:
            logger.warning("control socket: refused a connection from uid %s", uid)
            return _error(403, f"refused: the control socket serves uid {self._allowed_uid} only")
        try:
            return await handler(request)
        except NotCapturedError as exc:
            return _error(404, exc.message, exc.hint)
        except DevloopError as exc:
            return _error(409, exc.message, exc.hint)

    # --- routes ---------------------------------------------------------------------------

    async def _requests(self, request: web.Request) -> web.StreamResponse:
        after = _int(request.query.get("after", "0"))
        if request.query.get("follow") != "1":
            return web.json_response(
                {
                    "requests": self._service.summaries(after),
                    "inspector_url": self._service.inspector_url,
                    "public_url": self._service.context.public_url,
                }
            )
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(_FOLLOW_QUEUE)
        self._followers.add(queue)
        if self._stop_listening is None:
            # Only while someone follows: the proxy calls no listener for each request else.
            self._stop_listening = self._service.capture.listen(self._announce)
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        try:
            await response.prepare(request)
            for line in self._service.summaries(after):
                await response.write(_line(line))
            while (item := await queue.get()) is not None:
                await response.write(_line(item))
        except ConnectionResetError:
            pass  # the follower left
        finally:
            self._followers.discard(queue)
            if not self._followers and self._stop_listening is not None:
                self._stop_listening()
                self._stop_listening = None
        return response

    def _announce(self, exchange: Exchange) -> None:
        if not self._followers:
            return
        line = summary(exchange)
        for queue in self._followers:
            if queue.full():
                continue  # a follower that does not read loses lines, never the proxy time
            queue.put_nowait(line)

    async def _detail(self, request: web.Request) -> web.Response:
        secrets = request.query.get("secrets") == "1"
        return web.json_response(
            self._service.detail(_int(request.match_info["id"]), include_secrets=secrets)
        )

    async def _editable(self, request: web.Request) -> web.Response:
        return web.json_response({"text": self._service.editable(_int(request.match_info["id"]))})

    async def _replay(self, request: web.Request) -> web.Response:
        try:
            options = await request.json()
        except ValueError:
            return _error(400, "the replay request is not JSON")
        edited = options.get("edited") if isinstance(options, dict) else None
        unchanged = bool(options.get("unchanged")) if isinstance(options, dict) else False
        outcome = await self._service.replay(
            _int(request.match_info["id"]),
            edited=edited if isinstance(edited, str) else None,
            unchanged=unchanged,
        )
        return web.json_response(outcome.to_dict())

    async def _har(self, request: web.Request) -> web.Response:
        secrets = request.query.get("secrets") == "1"
        return web.json_response(self._service.har(include_secrets=secrets))


def peer_uid(sock: socket.socket) -> int | None:
    """The user id of the process at the other end of a Unix socket (Linux)."""
    try:
        data = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except (OSError, AttributeError):
        return None
    _pid, uid, _gid = struct.unpack("3i", data)
    return int(uid)


def socket_address(path: Path) -> tuple[str, int | None]:
    """The address to bind or connect ``path`` by, and a descriptor to close once that is done
    (None: nothing to close). A path too long for a Unix socket address (108 bytes) is reached
    through ``/proc/self/fd`` of its directory, opened here."""
    text = str(path)
    if len(text.encode()) <= MAX_SOCKET_PATH:
        return text, None
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    return f"/proc/self/fd/{directory}/{path.name}", directory


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"{text!r} is not a request id"}),
            content_type="application/json",
        ) from None


def _line(data: dict[str, Any]) -> bytes:
    return (json.dumps(data) + "\n").encode()


def _error(status: int, message: str, hint: str | None = None) -> web.Response:
    return web.json_response({"error": message, "hint": hint}, status=status)
