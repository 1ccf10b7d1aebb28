"""The commands' end of the control socket (``control.py``): ``connect-dev requests`` and
``connect-dev replay`` ask the ``up`` running in the project."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

from ..errors import DevloopError
from .control import SOCKET_NAME, socket_address

__all__ = ["ControlClient", "NoDaemonError"]

# Generous: a replay waits for the add-on (REPLAY_TIMEOUT_SECONDS is 60).
_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=90)


class NoDaemonError(DevloopError):
    """No ``up`` answers on the project's control socket."""


class ControlClient:
    """``async with ControlClient(state_dir) as client: await client.get("/requests")``"""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / SOCKET_NAME
        self._directory: int | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ControlClient:
        try:
            # Kept open while the session lives: aiohttp connects when a request is made.
            address, self._directory = socket_address(self.path)
        except OSError:
            address = str(self.path)  # no directory: connecting says there is no daemon
        self._session = aiohttp.ClientSession(
            connector=aiohttp.UnixConnector(path=address), timeout=_TIMEOUT
        )
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
        if self._directory is not None:
            os.close(self._directory)

    async def get(self, path: str, **params: str) -> Any:
        return await self._call("GET", path, params=params)

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        return await self._call("POST", path, json=body)

    async def lines(self, path: str, **params: str) -> AsyncIterator[dict[str, Any]]:
        """The JSON lines of a streamed answer, as they come."""
        assert self._session is not None
        try:
            async with self._session.get(f"http://connect-dev{path}", params=params) as response:
                if response.status != 200:
                    raise _answer_error(await _json(response))
                async for raw in response.content:
                    if raw.strip():
                        yield json.loads(raw)
        except aiohttp.ClientConnectionError as exc:
            raise self._unreachable(exc) from exc

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        assert self._session is not None
        try:
            async with self._session.request(
                method, f"http://connect-dev{path}", **kwargs
            ) as response:
                data = await _json(response)
        except aiohttp.ClientConnectionError as exc:
            raise self._unreachable(exc) from exc
        if response.status != 200:
            raise _answer_error(data)
        return data

    def _unreachable(self, exc: aiohttp.ClientConnectionError) -> DevloopError:
        project = self.path.parent.parent
        cause = getattr(exc, "os_error", None) or exc.__cause__
        code = getattr(cause, "errno", None)
        if not self.path.exists() and code in (errno.ENOENT, None):
            return NoDaemonError(
                f"no `connect-dev up` is running in {project} (no control socket at {self.path})",
                hint="Start `connect-dev up` in this project, or point --config at the "
                "project whose run you want to ask.",
            )
        if code in (errno.EACCES, errno.EPERM):
            return NoDaemonError(
                f"{self.path}: permission denied: the control socket belongs to another user",
                hint="Ask as the user who runs `connect-dev up`.",
            )
        if code == errno.ECONNREFUSED:
            return NoDaemonError(
                f"no `connect-dev up` answers on {self.path}: it is left from a run that ended",
                hint="Start `connect-dev up` in this project (it replaces the socket).",
            )
        if isinstance(exc, aiohttp.ServerDisconnectedError):
            return NoDaemonError(
                f"the `connect-dev up` in {project} stopped while answering",
            )
        return NoDaemonError(f"cannot reach the `connect-dev up` in {project}: {exc}")


async def _json(response: aiohttp.ClientResponse) -> Any:
    try:
        return await response.json(content_type=None)
    except ValueError:
        text = (await response.text(errors="replace"))[:200]
        return {"error": f"the daemon answered HTTP {response.status}: {text}"}


def _answer_error(data: Any) -> DevloopError:
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        hint = data.get("hint")
        return DevloopError(data["error"], hint if isinstance(hint, str) else None)
    return DevloopError(f"the daemon answered {data!r}")
