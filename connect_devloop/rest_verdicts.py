"""What an emulated site thought of the app's REST calls, as ``rest_call`` events.

An emulated site (``connect-dev host``, ``demo``) judges every call to its REST API as Cloud
does (host/rest_auth.py) and keeps the verdict in its record. For each configured UPM host
whose URL is on loopback, ``up`` asks once, at start, whether its ``/_emulator`` answers; for
those that do it then reads the calls it has not seen yet about once a second
(``GET /_emulator/record?rest_calls_since=N``) and reports each call made by or for an app.
Real hosts are never asked anything: only loopback URLs are tried, and only ``/_emulator``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from .config import HostConfig
from .events import Event, RestCall

__all__ = ["POLL_SECONDS", "RestVerdictWatch", "emulated_site_origin"]

logger = logging.getLogger(__name__)

POLL_SECONDS = 1.0
_ASK_TIMEOUT = aiohttp.ClientTimeout(total=2.0)


def emulated_site_origin(host: HostConfig) -> str | None:
    """Where a host's control API would be: its origin, for a UPM host on loopback only."""
    if host.registrar != "upm" or not host.is_local:
        return None
    parts = urlsplit(host.url)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass
class _Site:
    name: str
    origin: str
    seen: int = 0


class RestVerdictWatch:
    """Reports the REST verdicts of the emulated sites among ``hosts``; ``run`` returns at
    once when there is none."""

    def __init__(
        self,
        hosts: Sequence[HostConfig],
        session: aiohttp.ClientSession,
        emit: Callable[[Event], None],
        *,
        interval: float = POLL_SECONDS,
    ) -> None:
        self._hosts = list(hosts)
        self._session = session
        self._emit = emit
        self._interval = interval
        self._sites: list[_Site] | None = None  # found once, on the first run

    async def run(self) -> None:
        if self._sites is None:
            self._sites = [site for site in await self._find_sites() if site is not None]
        if not self._sites:
            return
        while True:
            for site in self._sites:
                await self._read_new(site)
            await asyncio.sleep(self._interval)

    async def _find_sites(self) -> list[_Site | None]:
        candidates = [
            (host.name, origin)
            for host in self._hosts
            if (origin := emulated_site_origin(host)) is not None
        ]
        return list(await asyncio.gather(*(self._emulated(n, o) for n, o in candidates)))

    async def _emulated(self, name: str, origin: str) -> _Site | None:
        """The site, with the calls made before ``up`` started counted as seen; ``None`` for a
        loopback host that is no emulated site (a local Jira, a host not up yet)."""
        answer = await self._ask(origin)
        if answer is None or not isinstance(answer.get("rest_calls_total"), int):
            logger.debug(
                "%s: no emulated site at %s; its REST calls are not reported", name, origin
            )
            return None
        logger.debug("%s: emulated site at %s; reporting its REST verdicts", name, origin)
        return _Site(name, origin, seen=answer["rest_calls_total"])

    async def _ask(self, origin: str, since: int = 0) -> dict[str, Any] | None:
        url = f"{origin}/_emulator/record"
        try:
            async with self._session.get(
                url, params={"rest_calls_since": str(since)}, timeout=_ASK_TIMEOUT
            ) as response:
                if response.status != 200:
                    return None
                answer = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None
        return answer if isinstance(answer, dict) else None

    async def _read_new(self, site: _Site) -> None:
        answer = await self._ask(site.origin, site.seen)
        if answer is None:
            return  # the site is restarting or gone: try again on the next round
        total = answer.get("rest_calls_total")
        calls = answer.get("rest_calls")
        if not isinstance(total, int) or not isinstance(calls, list):
            return
        if total < site.seen:
            # The site's record was reset: everything it holds now is new.
            site.seen = 0
            return
        site.seen = total
        for call in calls:
            event = rest_call_event(site.name, call) if isinstance(call, dict) else None
            if event is not None:
                self._emit(event)


def rest_call_event(host: str, call: dict[str, Any]) -> RestCall | None:
    """The event for one recorded call made by or for an app (a JWT, or ``AP.request``'s
    ``AP-Client-Key``); ``None`` for a person's own call."""
    verdict = call.get("verdict")
    if not isinstance(verdict, dict):
        return None
    if call.get("auth") != "jwt" and not call.get("app_key"):
        return None
    path = str(call.get("path", ""))
    if call.get("query"):
        path += f"?{call['query']}"

    def text(name: str) -> str | None:
        value = verdict.get(name)
        return value if isinstance(value, str) else None

    return RestCall(
        # When the site judged it: the record's wall-clock time, as events' ``ts`` is.
        ts=at if isinstance(at := call.get("at"), int | float) else time.time(),
        host=host,
        method=str(call.get("method", "")),
        path=path,
        status=int(call.get("status", 0)),
        accepted=bool(verdict.get("accepted")),
        reason=str(verdict.get("reason", "")),
        qsh_expected=text("qsh_expected"),
        qsh_received=text("qsh_received"),
        canonical_request=text("canonical_request"),
        app_canonical_request=text("app_canonical_request"),
        message=text("message"),
        explanation=text("explanation"),
        app_key=text("app_key") or (str(call["app_key"]) if call.get("app_key") else None),
        auth=str(call.get("auth", "")),
        required_scope=text("required_scope"),
    )
