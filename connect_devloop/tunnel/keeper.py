"""Keeps the tunnel up: health probes, reopening with backoff, and the pre-install check.

A probe is ``GET <public URL>/atlassian-connect.json`` through the tunnel, answered by the proxy
itself (the add-on server is not involved), and it passes when the ``baseUrl`` in the answer is
the public URL: so a probe proves that this URL reaches *this* proxy, not just "something".

- Every ``interval`` seconds the keeper probes; a failed probe is repeated once a second later
  before the tunnel counts as down (one lost packet must not re-install every host). The process
  behind the tunnel (ngrok agent, ssh) is watched more often: its exit is noticed at once.
- When the tunnel is down: ``tunnel_closed{provider, reason}`` (reason ``exited`` or
  ``unreachable``) and a warning with the detail; then it is reopened, the first time at once,
  then after 1, 2, 4 … up to ``backoff_max`` seconds, with a warning for each failed try.
  Once open: ``publish(url)`` (the proxy serves the descriptor for the new URL), then
  ``tunnel_opened{url, provider, inspector_url}``, then ``reopened(old_url, new_url)``: the
  supervisor re-installs every host when the URL changed.
- ``preflight(url)`` runs before every install: a host is never asked to install a descriptor
  it cannot fetch. Its error names the tunnel, not the host.

A ``none`` provider has no process and nothing to reopen: it is not watched, but ``preflight``
still checks its URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable

import aiohttp

from ..errors import DevloopError, TunnelError
from ..events import Event, TunnelClosed, TunnelOpened, Warning
from ..tasks import keep_running
from .base import Tunnel

__all__ = ["PROBE_QUERY", "TunnelKeeper", "is_probe_path"]

logger = logging.getLogger(__name__)

DESCRIPTOR_PATH = "/atlassian-connect.json"
# Marks the keeper's own requests, so the supervisor can leave them out of the request log.
PROBE_QUERY = "connect-dev-probe"
RECHECK_SECONDS = 1.0
PROCESS_POLL_SECONDS = 0.2
BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 30.0


def is_probe_path(path_qs: str) -> bool:
    """True for the path (with query) of a keeper's probe, as the proxy reports it."""
    return path_qs.startswith(f"{DESCRIPTOR_PATH}?{PROBE_QUERY}=")


class TunnelKeeper:
    def __init__(
        self,
        tunnel: Tunnel,
        emit: Callable[[Event], None],
        *,
        publish: Callable[[str], None],
        reopened: Callable[[str, str], None],
        interval: float = 5.0,
        timeout: float = 5.0,
        backoff_max: float = BACKOFF_MAX_SECONDS,
    ) -> None:
        """``publish(url)`` must make the proxy serve the descriptor for ``url``;
        ``reopened(old, new)`` runs after each reopen (and after a failed pre-install check
        when the tunnel answers again, with ``old == new``)."""
        self.tunnel = tunnel
        self._emit = emit
        self._publish = publish
        self._reopened = reopened
        self._interval = interval
        self._timeout = timeout
        self._backoff_max = backoff_max
        self.url = ""
        self.is_open = False
        self._local_url = ""
        self._session: aiohttp.ClientSession | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._poke = asyncio.Event()
        self._preflight_failed = False
        self._checks: dict[str, asyncio.Task[str | None]] = {}

    @property
    def label(self) -> str:
        """How errors name the path from the hosts to the proxy."""
        if self.tunnel.provider != "none":
            return f"the tunnel ({self.tunnel.provider})"
        if getattr(self.tunnel, "configured", False):
            return f"the public URL {self.url} ([tunnel] public_url)"
        return f"the proxy at {self.url}"

    async def open(self, local_url: str) -> str:
        """Open the tunnel to ``local_url`` (the proxy); raises ``TunnelError``."""
        self._local_url = local_url
        self._set_open(await self.tunnel.open(local_url))
        return self.url

    def start(self) -> None:
        """Watch the tunnel from now on (not for provider ``none``: there is nothing to heal)."""
        if self.tunnel.provider != "none" and self._watcher is None:
            self._watcher = asyncio.create_task(
                keep_running(f"tunnel keeper ({self.tunnel.provider})", self._watch, self._emit),
                name="tunnel keeper",
            )

    async def stop(self) -> None:
        """Stop watching, so nothing reopens the tunnel while the hosts uninstall."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def close(self) -> None:
        """Stop watching and close the tunnel; ``tunnel_closed{reason: shutdown}`` if it was
        open."""
        await self.stop()
        try:
            await self.tunnel.close()
        finally:
            if self.is_open:
                self.is_open = False
                self._emit(TunnelClosed(provider=self.tunnel.provider, reason="shutdown"))
            if self._session is not None:
                await self._session.close()
                self._session = None

    async def preflight(self, public_url: str) -> None:
        """Raise ``TunnelError`` unless ``public_url`` serves this proxy's descriptor (with
        that ``baseUrl``). Concurrent checks of one URL share one request."""
        check = self._checks.get(public_url)
        if check is None:
            check = asyncio.create_task(self._probe(public_url), name="tunnel preflight")
            self._checks[public_url] = check
            check.add_done_callback(lambda _: self._checks.pop(public_url, None))
        problem = await asyncio.shield(check)
        if problem is None:
            return
        if self._watcher is not None:
            self._preflight_failed = True
            self._poke.set()  # probe now rather than at the next interval
        watched = (
            f"; it is checked every {self._interval:g} s and reopened when it drops, and "
            "hosts that could not install are installed again once it answers"
            if self._watcher is not None and self._interval > 0
            else ""
        )
        raise TunnelError(
            f"{self.label} does not reach the proxy: {problem}",
            hint=self._hint() + watched,
        )

    def _hint(self) -> str:
        provider = self.tunnel.provider
        if provider == "ngrok":
            return "Check that the ngrok agent runs and ngrok works (https://status.ngrok.com)"
        if provider == "ssh":
            return (
                "Check that the ssh server forwards the port and that [tunnel] public_url "
                "maps to it"
            )
        if getattr(self.tunnel, "configured", False):
            return (
                "Check [tunnel] public_url: with provider none connect-dev runs no tunnel, so "
                f"the one you run must forward this URL to {self._local_url}"
            )
        return "The proxy did not answer on its own port: see the log with -v"

    def _set_open(self, url: str) -> None:
        self.url = url
        self._publish(url)
        self.is_open = True
        # getattr: a tunnel handed in from outside (Supervisor's ``tunnel=``) may predate it.
        inspector = getattr(self.tunnel, "inspector_url", "")
        self._emit(TunnelOpened(url=url, provider=self.tunnel.provider, inspector_url=inspector))

    async def _watch(self) -> None:
        while True:
            reason, detail = await self._trouble()
            self.is_open = False
            self._emit(TunnelClosed(provider=self.tunnel.provider, reason=reason))
            self._emit(Warning(message=f"{self.label} dropped: {detail}; reopening it"))
            old = self.url
            self._set_open(await self._reopen())
            self._preflight_failed = False
            self._reopened(old, self.url)

    async def _trouble(self) -> tuple[str, str]:
        """Wait until the tunnel is down; return (reason, detail)."""
        next_probe = self._next_probe()
        while True:
            exited = self.tunnel.exited()
            if exited is not None:
                return "exited", exited
            if self._poke.is_set() or time.monotonic() >= next_probe:
                self._poke.clear()
                problem = await self._probe(self.url)
                if problem is not None:
                    await asyncio.sleep(RECHECK_SECONDS)
                    exited = self.tunnel.exited()
                    if exited is not None:
                        return "exited", exited
                    problem = await self._probe(self.url)
                    if problem is not None:
                        return "unreachable", problem
                if self._preflight_failed:
                    # A pre-install check failed but the tunnel answers now: retry those hosts.
                    self._preflight_failed = False
                    self._reopened(self.url, self.url)
                next_probe = self._next_probe()
            wait = min(PROCESS_POLL_SECONDS, max(0.0, next_probe - time.monotonic()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), wait)

    def _next_probe(self) -> float:
        return time.monotonic() + self._interval if self._interval > 0 else float("inf")

    async def _reopen(self) -> str:
        delay = BACKOFF_FIRST_SECONDS
        while True:
            await self._close_quietly()
            try:
                return await self.tunnel.open(self._local_url)
            except DevloopError as exc:
                why, hint = exc.message, exc.hint
            except Exception as exc:  # a bug in a provider must not end the reopening
                logger.exception("reopening the %s tunnel failed", self.tunnel.provider)
                why, hint = f"unexpected error: {exc!r}", "See the log with -v."
            self._emit(
                Warning(
                    message=f"{self.label} could not be reopened: {why}; next try in {delay:g} s",
                    hint=hint,
                )
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._backoff_max)

    async def _close_quietly(self) -> None:
        try:
            await self.tunnel.close()
        except Exception:  # a failed clean-up must not stop the reopening
            logger.exception("closing the %s tunnel failed", self.tunnel.provider)

    async def _probe(self, public_url: str) -> str | None:
        """None when ``public_url`` reaches this proxy, else what went wrong."""
        url = f"{public_url}{DESCRIPTOR_PATH}?{PROBE_QUERY}={int(time.time() * 1000)}"
        shown = f"GET {public_url}{DESCRIPTOR_PATH}"
        session = self._client()
        try:
            async with session.get(
                url,
                headers={
                    "Accept": "application/json",
                    # ngrok's free plan shows browsers a warning page instead of the answer.
                    "ngrok-skip-browser-warning": "1",
                    "User-Agent": "connect-dev tunnel check",
                },
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            ) as response:
                body = await response.content.read(1024 * 1024)
                status, headers = response.status, response.headers
        except TimeoutError:
            return f"{shown}: no answer within {self._timeout:g} s"
        except (aiohttp.ClientError, OSError) as exc:
            return f"{shown}: {_reason(exc)}"
        except Exception as exc:  # whatever stops a good answer fails the check, not the caller
            logger.debug("probe of %s failed", url, exc_info=True)
            return f"{shown}: {exc!r}"
        return _judge(shown, public_url, status, headers.get("ngrok-error-code"), body)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            # A fresh connection per probe: a kept-alive one could outlive the tunnel's process.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(force_close=True),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session


def _judge(
    shown: str, public_url: str, status: int, ngrok_code: str | None, body: bytes
) -> str | None:
    if status == 503 and body.startswith(b"connect-dev:"):
        return None  # the proxy answered: it has no valid descriptor yet, but it is reachable
    if status != 200:
        code = f" ({ngrok_code})" if ngrok_code else ""
        return f"{shown} answered HTTP {status}{code}, not the descriptor"
    try:
        document = json.loads(body)
    except ValueError:
        looks = "an HTML page" if body.lstrip()[:1] == b"<" else "something that is not JSON"
        return f"{shown} answered {looks}, not the descriptor"
    base_url = document.get("baseUrl") if isinstance(document, dict) else None
    if base_url != public_url:
        return (
            f"{shown} answered a descriptor with baseUrl {base_url!r}, not {public_url!r}: "
            "another server answers at this URL"
        )
    return None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, ConnectionRefusedError):
            return "connection refused"
        return exc.os_error.strerror or str(exc.os_error)
    return str(exc) or type(exc).__name__
