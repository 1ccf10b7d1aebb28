"""The UPM REST client: one host, one admin account, requests and install-task polling.

``UpmClient`` installs an add-on from its descriptor URL, follows the install task to its end,
reads and uninstalls apps, and checks Cloud's development mode, exactly as PROTOCOL.md §2 tells.
The aiohttp session is injected and owned by the caller. Reading replies is left to ``replies``
and wording failures to ``explain``, so this module is only the conversation with the host.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final
from urllib.parse import quote

import aiohttp
from yarl import URL

from ..errors import AuthenticationError, UpmError
from ..secret import Secret
from .explain import (
    explain_dev_mode_off,
    explain_failed_task,
    explain_install_rejection,
    explain_install_timeout,
    explain_missing_upm,
    explain_not_json,
    explain_request_timeout,
    explain_task_poll_failure,
    explain_unexpected_reply,
    explain_uninstall_refused,
    explain_unnamed_completion,
    explain_unreachable,
)
from .replies import (
    REDIRECT_STATUSES,
    REMOTE_INSTALL_TYPE,
    URI_INSTALL_TYPE,
    HostIdentity,
    InstallProgress,
    PluginInfo,
    Reply,
    dev_mode_setting,
    excerpt,
    installed_plugin_ref,
    is_invalid_token,
    looks_like_plugin,
    ping_after_seconds,
    plugin_info,
    task_done,
    task_failure,
    task_state,
)

__all__ = ["UpmClient"]

logger = logging.getLogger(__name__)

# UPM resources produce their own vendor media types; Jersey answers 406 to a bare
# "application/json", so anything else is accepted with a lower preference.
ACCEPT: Final = "application/json, */*;q=0.1"

# A task that says it is done but neither fails nor names the app usually turns into a 303 on
# the next poll; after this many such answers we stop waiting for one.
MAX_UNNAMED_DONE_POLLS: Final = 3

# "admin" as a password would scrub the word out of "not an admin"; passwords this short are
# local SDK defaults, not secrets, and API tokens are far longer.
MIN_REDACTED_CHARS: Final = 8


class UpmClient:
    """UPM REST client for one host and one admin account."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        username: str,
        password: Secret,
        *,
        request_timeout: float = 15.0,
        install_timeout: float = 120.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        parsed = URL(self.base_url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise UpmError(
                f"host URL {self.base_url!r} is not an absolute http(s) URL",
                hint="Use the product's base URL including its context path, e.g. "
                "https://SITE.atlassian.net/wiki or http://localhost:2990/jira.",
            )
        self._session = session
        self._host = HostIdentity(self.base_url, username)
        self._origin = str(parsed.origin())
        self._request_timeout = request_timeout
        self._install_timeout = install_timeout
        if ":" in username:
            raise AuthenticationError(
                f"username {username!r} for {self.base_url} contains a ':'",
                hint="HTTP Basic authentication cannot carry a ':' in the username; "
                "Cloud usernames are the account's e-mail address.",
            )
        # Built by hand: aiohttp.BasicAuth is deprecated in 3.14 and its repr shows the password.
        credentials = f"{username}:{password.reveal()}".encode()
        self._authorization = Secret("Basic " + base64.b64encode(credentials).decode("ascii"))
        self._secrets_to_scrub = tuple(
            Secret(text)
            for text in (password.reveal(), self._authorization.reveal().removeprefix("Basic "))
            if len(text) >= MIN_REDACTED_CHARS
        )
        self._install_type: str | None = None
        self._dev_mode_confirmed = False
        # When the host last answered anything (monotonic): tells a slow host from a silent one.
        self.last_reply_at: float | None = None

    def __repr__(self) -> str:
        return f"UpmClient({self.base_url!r}, username={self._host.username!r})"

    @property
    def upm_url(self) -> str:
        return self._host.upm_url

    async def check_dev_mode(self) -> None:
        """Raise ``DevModeOffError`` when Cloud development mode is off; Server/DC pass."""
        if self._dev_mode_confirmed:
            return
        reply = await self._send("GET", f"{self.upm_url}settings")
        if reply.status == 404:
            logger.debug("%s has no UPM settings resource: not Cloud, no dev mode to check", self)
        elif reply.status == 200:
            if dev_mode_setting(self._json(reply)) is False:
                raise explain_dev_mode_off(self._host, None)
        else:
            raise explain_unexpected_reply(reply, self._host, doing="reading the UPM settings")
        self._dev_mode_confirmed = True

    async def fetch_token(self) -> str:
        """A fresh single-use ``upm-token``."""
        # HEAD is what atlassian-connect-express uses and avoids downloading the whole app list;
        # anything but a clean answer is retried as GET, whose body explains the failure.
        head = await self._send("HEAD", self.upm_url)
        token = head.header("upm-token")
        if head.status == 200 and token:
            return token
        reply = await self._get_upm_root()
        token = reply.header("upm-token")
        if not token:
            raise UpmError(
                f"{self.base_url} answered GET {self.upm_url} without an upm-token header",
                hint="UPM always sends one to an admin; a proxy in front of the host may be "
                "stripping response headers, or the URL is not the product's base URL.",
                status=reply.status,
            )
        return token

    async def list_plugins(self) -> list[PluginInfo]:
        body = self._json(await self._get_upm_root())
        plugins = body.get("plugins") if isinstance(body, dict) else None
        if not isinstance(plugins, list):
            raise UpmError(
                f"{self.base_url} answered GET {self.upm_url} without a list of plugins",
                hint="The URL may point at something other than Jira/Confluence; "
                "check the host url and its context path.",
            )
        return [plugin_info(item) for item in plugins if looks_like_plugin(item)]

    async def get_plugin(self, key: str) -> PluginInfo | None:
        reply = await self._send("GET", self._plugin_url(key))
        if reply.status == 404:
            await self._confirm_upm_exists()
            return None
        if reply.status != 200:
            raise explain_unexpected_reply(reply, self._host, doing=f"reading app {key}")
        return self._plugin_from(reply)

    async def uninstall(self, key: str) -> bool:
        """True when the app was removed, False when it was not installed."""
        reply = await self._send("DELETE", self._plugin_url(key))
        if reply.status in (200, 202, 204):
            return True
        if reply.status == 404:
            # A wrong context path also answers 404; "not installed" must not hide it.
            await self._confirm_upm_exists()
            return False
        if reply.status == 403:
            raise explain_uninstall_refused(reply, self._host, key)
        raise explain_unexpected_reply(reply, self._host, doing=f"uninstalling {key}")

    async def install(
        self, plugin_uri: str, *, before_post: Callable[[], Awaitable[None]] | None = None
    ) -> PluginInfo:
        """Install from ``plugin_uri`` and wait for the host to finish, within install_timeout.

        ``before_post`` runs right before each install POST, once the host has accepted our
        credentials: the earliest moment the add-on can end up installed (the ledger's cue).
        """
        progress = InstallProgress()
        try:
            async with asyncio.timeout(self._install_timeout):
                accepted = await self._submit_install(plugin_uri, before_post)
                progress.submitted = True
                return await self._follow_install(accepted, plugin_uri, progress)
        except TimeoutError as exc:
            raise explain_install_timeout(
                self._host, plugin_uri, self._install_timeout, progress
            ) from exc

    async def _submit_install(
        self, plugin_uri: str, before_post: Callable[[], Awaitable[None]] | None
    ) -> Reply:
        body = json.dumps({"pluginUri": plugin_uri}).encode()
        untried = [REMOTE_INSTALL_TYPE, URI_INSTALL_TYPE]
        media_types = [self._install_type] if self._install_type else untried
        token_retries = 1
        while True:
            token = await self.fetch_token()
            if before_post is not None:
                await before_post()
            reply = await self._send(
                "POST",
                self.upm_url,
                params={"token": token},
                body=body,
                content_type=media_types[0],
            )
            if reply.status == 415 and len(media_types) > 1:
                logger.debug("%s refused %s; retrying as %s", self, *media_types[:2])
                media_types.pop(0)
                continue
            if reply.status == 403 and token_retries and is_invalid_token(reply):
                logger.debug("%s refused a fresh UPM token; retrying once with another", self)
                token_retries -= 1
                continue
            if reply.status in (200, 201, 202):
                self._install_type = media_types[0]
                return reply
            raise explain_install_rejection(reply, self._host, plugin_uri)

    async def _follow_install(
        self, reply: Reply, plugin_uri: str, progress: InstallProgress
    ) -> PluginInfo:
        progress.task_url = self._task_url(reply)
        unnamed_done_polls = 0
        while True:
            if reply.status in REDIRECT_STATUSES:
                return await self._fetch_installed_plugin(reply)
            if reply.status not in (200, 201, 202):
                raise explain_task_poll_failure(reply, self._host, plugin_uri)
            body = reply.json_or_none()
            if reply.text.strip() and body is None:
                raise explain_not_json(reply, self._host)
            if looks_like_plugin(body):
                return plugin_info(body)
            task: Mapping[str, Any] = body if isinstance(body, dict) else {}
            progress.state = task_state(task) or progress.state
            if task_done(task):
                failure = task_failure(task)
                if failure is not None:
                    raise explain_failed_task(failure, self._host, plugin_uri)
                plugin_ref = installed_plugin_ref(task)
                if plugin_ref is not None:
                    return await self._fetch_plugin_at(self._on_origin(plugin_ref))
                unnamed_done_polls += 1
                if unnamed_done_polls > MAX_UNNAMED_DONE_POLLS:
                    raise explain_unnamed_completion(reply, self._host, plugin_uri)
            if progress.task_url is None:
                raise UpmError(
                    f"{self.base_url} accepted the install of {plugin_uri} but gave no task "
                    "URL to follow (no Location header, no links.self)",
                    hint=f"Check {self._host.manage_apps_url} to see whether the app arrived.",
                    status=reply.status,
                )
            await asyncio.sleep(ping_after_seconds(task))
            reply = await self._send("GET", progress.task_url)

    async def _fetch_installed_plugin(self, redirect: Reply) -> PluginInfo:
        location = redirect.header("Location")
        if not location:
            raise UpmError(
                f"{self.base_url} answered the install task with HTTP {redirect.status} "
                "but no Location header naming the installed app",
                hint=f"Check {self._host.manage_apps_url} to see whether the app arrived.",
                status=redirect.status,
            )
        return await self._fetch_plugin_at(self._on_origin(location))

    async def _fetch_plugin_at(self, url: str) -> PluginInfo:
        reply = await self._send("GET", url)
        if reply.status == 404:
            raise UpmError(
                f"{self.base_url} reported the install complete but {reply.url} is not found",
                hint=f"Check {self._host.manage_apps_url}: the app may have been removed "
                "right after installing, or a proxy rewrites the host's URLs.",
                status=404,
            )
        if reply.status != 200:
            raise explain_unexpected_reply(reply, self._host, doing="reading the installed app")
        return self._plugin_from(reply)

    def _plugin_from(self, reply: Reply) -> PluginInfo:
        body = self._json(reply)
        if not looks_like_plugin(body):
            raise UpmError(
                f"{self.base_url} answered GET {reply.url} with something that is not an app "
                f"(no key): {excerpt(reply.text)}",
                hint="The URL may point at something other than Jira/Confluence; "
                "check the host url and its context path.",
                status=reply.status,
            )
        return plugin_info(body)

    async def _get_upm_root(self) -> Reply:
        reply = await self._send("GET", self.upm_url)
        if reply.status == 404:
            raise explain_missing_upm(reply, self._host)
        if reply.status != 200:
            raise explain_unexpected_reply(reply, self._host, doing="listing the installed apps")
        return reply

    async def _confirm_upm_exists(self) -> None:
        # HEAD spares downloading every app's details; only a failure needs GET's body.
        if (await self._send("HEAD", self.upm_url)).status != 200:
            await self._get_upm_root()

    def _plugin_url(self, key: str) -> str:
        return f"{self.upm_url}{quote(key, safe='')}-key"

    def _task_url(self, accepted: Reply) -> str | None:
        # Location is absolute and authoritative; links.self is the fallback some hosts omit it for.
        location = accepted.header("Location")
        if location:
            return self._on_origin(location)
        body = accepted.json_or_none()
        links = body.get("links") if isinstance(body, dict) else None
        link = links.get("self") if isinstance(links, dict) else None
        return self._on_origin(link) if isinstance(link, str) and link else None

    def _on_origin(self, ref: str) -> str:
        """``ref`` from the host (Location, links.*) as a URL on this client's own origin.

        Links already contain the context path (``/wiki/rest/...``), so they are joined to the
        origin, never to the product base. Absolute URLs keep only their path: a host behind a
        proxy may name its internal address, and credentials must not go anywhere else anyway.
        """
        parsed = URL(ref)
        if parsed.is_absolute() or ref.startswith("/"):
            if parsed.is_absolute() and str(parsed.origin()) != self._origin:
                logger.debug("%s linked to %s; following it on %s", self, ref, self._origin)
            return self._origin + (parsed.raw_path_qs or "/")
        return str(URL(self.upm_url).join(parsed))

    async def _send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> Reply:
        headers = {"Accept": ACCEPT, "Authorization": self._authorization.reveal()}
        if content_type:
            headers["Content-Type"] = content_type
        started = time.monotonic()
        try:
            async with self._session.request(
                method,
                url,
                params=params,
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self._request_timeout),
            ) as response:
                self.last_reply_at = time.monotonic()
                raw = await response.read()
                text = raw.decode(response.charset or "utf-8", errors="replace")
                reply = Reply(method, url, response.status, response.headers, self._scrub(text))
        except TimeoutError as exc:  # before ClientError: aiohttp's timeouts are both
            raise explain_request_timeout(self._host, method, url, self._request_timeout) from exc
        except aiohttp.ClientError as exc:
            raise explain_unreachable(exc, self._host, method, url) from exc
        logger.debug(
            "%s %s -> %d in %.0f ms", method, url, reply.status, 1000 * (time.monotonic() - started)
        )
        return reply

    def _json(self, reply: Reply) -> Any:
        # Not a Reply method: the error comes from explain, which itself builds on replies.
        try:
            return json.loads(reply.text)
        except ValueError as exc:
            raise explain_not_json(reply, self._host) from exc

    def _scrub(self, text: str) -> str:
        for secret in self._secrets_to_scrub:
            text = text.replace(secret.reveal(), "***")
        return text
