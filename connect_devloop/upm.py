"""Async client for the Universal Plugin Manager (UPM) REST API of Jira and Confluence.

``UpmClient`` installs an add-on from its descriptor URL, follows the install task to its end,
reads and uninstalls apps, and checks Cloud's development mode, exactly as PROTOCOL.md §2 tells.
The aiohttp session is injected and owned by the caller.

Every failure leaves this module as an ``UpmError`` subclass whose ``message`` says what the host
refused, naming the host and the username, and whose ``hint`` says what to do about it. The
``explain_*`` functions hold that mapping, one situation each, so a new kind of failure is a new
small function rather than another branch in a long chain. The password never reaches a message,
a hint or a log record: the Authorization header is built once and kept in a ``Secret``, and
response bodies quoted in messages are scrubbed of it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from .credentials import Secret
from .errors import (
    AuthenticationError,
    DevModeOffError,
    HostUnreachableError,
    InstallFailedError,
    UploadsDisabledError,
    UpmError,
)

__all__ = ["PluginInfo", "UpmClient"]

logger = logging.getLogger(__name__)

REMOTE_INSTALL_TYPE: Final = "application/vnd.atl.plugins.remote.install+json"
URI_INSTALL_TYPE: Final = "application/vnd.atl.plugins.install.uri+json"
# UPM resources produce their own vendor media types; Jersey answers 406 to a bare
# "application/json", so anything else is accepted with a lower preference.
ACCEPT: Final = "application/json, */*;q=0.1"

INVALID_TOKEN_SUB_CODE: Final = "upm.error.invalid.token"
DEV_MODE_SETTING: Final = "connectDeveloperListingsEnabled"

DEFAULT_PING_AFTER_MS: Final = 100
MIN_PING_AFTER_MS: Final = 10
MAX_PING_AFTER_MS: Final = 5000
# A task that says it is done but neither fails nor names the app usually turns into a 303 on
# the next poll; after this many such answers we stop waiting for one.
MAX_UNNAMED_DONE_POLLS: Final = 3

EXCERPT_CHARS: Final = 200
# "admin" as a password would scrub the word out of "not an admin"; passwords this short are
# local SDK defaults, not secrets, and API tokens are far longer.
MIN_REDACTED_CHARS: Final = 8

REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
CALLBACK_STATUS_PATTERN: Final = re.compile(r"returned HTTP response code (\d{3})", re.IGNORECASE)
UPLOADS_DISABLED_PATTERN: Final = re.compile(
    r"upload\w*\b.*\bdisabled|disabled\b.*\bupload", re.IGNORECASE
)
DOWNLOAD_FAILED_PATTERN: Final = re.compile(
    r"download|could not (?:fetch|retrieve|read)|unable to (?:fetch|retrieve)", re.IGNORECASE
)
TASK_STATE_PATTERN: Final = re.compile(r"\.install\.(\w+)\+json$")
HTML_TITLE_PATTERN: Final = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
HTML_TAG_PATTERN: Final = re.compile(r"<[^>]+>")

CLOUD_HOST_SUFFIXES: Final = (".atlassian.net", ".jira.com", ".jira-dev.com")
LOCAL_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})

API_TOKEN_URL: Final = "https://id.atlassian.com/manage-profile/security/api-tokens"
CONNECT_END_OF_SUPPORT_NOTE: Final = (
    "Note: since 2026 Atlassian Cloud has been withdrawing descriptor-URL installs of private "
    "Connect apps (Connect end of support), so a Cloud site may refuse the install even with "
    "development mode on; a local SDK or Data Center host does not."
)


@dataclass(frozen=True)
class PluginInfo:
    """One app as UPM reports it. ``enabled`` false means installed but disabled."""

    key: str
    enabled: bool
    name: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class HostIdentity:
    """Who talks to which host: everything an error message may name (never the password)."""

    base_url: str
    username: str

    @property
    def upm_url(self) -> str:
        return f"{self.base_url}/rest/plugins/1.0/"

    @property
    def manage_apps_url(self) -> str:
        return f"{self.base_url}/plugins/servlet/upm"

    @property
    def kind(self) -> str:
        """``cloud``, ``local`` (an SDK product on this machine) or ``server`` (anything else)."""
        hostname = (URL(self.base_url).host or "").lower()
        if hostname.endswith(CLOUD_HOST_SUFFIXES):
            return "cloud"
        if hostname in LOCAL_HOSTS or hostname.endswith(".localhost"):
            return "local"
        return "server"


@dataclass(frozen=True)
class Reply:
    """A fully read HTTP response, its body already scrubbed of credentials."""

    method: str
    url: str  # without the query string: it may carry a UPM token
    status: int
    headers: CIMultiDictProxy[str]
    text: str

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def json_or_none(self) -> Any:
        try:
            return json.loads(self.text) if self.text.strip() else None
        except ValueError:
            return None

    def json(self, host: HostIdentity) -> Any:
        try:
            return json.loads(self.text)
        except ValueError as exc:
            raise explain_not_json(self, host) from exc


@dataclass(frozen=True)
class Failure:
    """What a host said when it refused an install: UPM's ``subCode`` and ``errorMessage``."""

    sub_code: str | None
    error_message: str | None
    status: int | None = None

    @property
    def described(self) -> str:
        parts = [one_line(self.error_message)] if self.error_message else []
        if self.sub_code:
            parts.append(f"(subCode {self.sub_code})")
        return " ".join(parts) or "no error message"


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
            if dev_mode_setting(reply.json(self._host)) is False:
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
        body = (await self._get_upm_root()).json(self._host)
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

    async def install(self, plugin_uri: str) -> PluginInfo:
        """Install from ``plugin_uri`` and wait for the host to finish, within install_timeout."""
        progress = InstallProgress()
        try:
            async with asyncio.timeout(self._install_timeout):
                accepted = await self._submit_install(plugin_uri)
                progress.submitted = True
                return await self._follow_install(accepted, plugin_uri, progress)
        except TimeoutError as exc:
            raise explain_install_timeout(
                self._host, plugin_uri, self._install_timeout, progress
            ) from exc

    async def _submit_install(self, plugin_uri: str) -> Reply:
        body = json.dumps({"pluginUri": plugin_uri}).encode()
        untried = [REMOTE_INSTALL_TYPE, URI_INSTALL_TYPE]
        media_types = [self._install_type] if self._install_type else untried
        token_retries = 1
        while True:
            token = await self.fetch_token()
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
        body = reply.json(self._host)
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

    def _scrub(self, text: str) -> str:
        for secret in self._secrets_to_scrub:
            text = text.replace(secret.reveal(), "***")
        return text


class InstallProgress:
    """How far an install got, so a timeout can say where it was stuck."""

    def __init__(self) -> None:
        self.submitted = False
        self.task_url: str | None = None
        self.state: str | None = None  # "downloading", "installing", ... from status.contentType


# --- reading UPM documents -------------------------------------------------------------------


def looks_like_plugin(body: object) -> bool:
    return (
        isinstance(body, dict)
        and isinstance(body.get("key"), str)
        and "pingAfter" not in body
        and not isinstance(body.get("status"), dict)
    )


def plugin_info(body: Mapping[str, Any]) -> PluginInfo:
    name = body.get("name")
    version = body.get("version")
    return PluginInfo(
        key=str(body["key"]),
        # UPM always sends "enabled"; if a host leaves it out, do not cry "disabled".
        enabled=as_bool(body.get("enabled"), default=True),
        name=name if isinstance(name, str) else None,
        version=version if isinstance(version, str) else None,
    )


def as_bool(value: object, *, default: bool) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return default


def dev_mode_setting(body: object) -> bool | None:
    """The value of ``connectDeveloperListingsEnabled``, or None when the host has no such key."""
    settings = body.get("settings") if isinstance(body, dict) else body
    if not isinstance(settings, list):
        return None
    for setting in settings:
        if isinstance(setting, dict) and setting.get("key") == DEV_MODE_SETTING:
            value = setting.get("value")
            return as_bool(value, default=True) if value is not None else None
    return None


def task_status(task: Mapping[str, Any]) -> Mapping[str, Any]:
    status = task.get("status")
    return status if isinstance(status, dict) else {}


def task_done(task: Mapping[str, Any]) -> bool:
    return as_bool(task_status(task).get("done"), default=False)


def task_state(task: Mapping[str, Any]) -> str | None:
    content_type = task_status(task).get("contentType")
    if not isinstance(content_type, str):
        return None
    match = TASK_STATE_PATTERN.search(content_type)
    return match.group(1) if match else content_type


def task_failure(task: Mapping[str, Any]) -> Failure | None:
    """The failure a finished task reports, or None when it finished well."""
    failure = error_fields(task)
    status = task_status(task)
    content_type = status.get("contentType")
    failed_type = isinstance(content_type, str) and content_type.endswith("err+json")
    status_code = status.get("statusCode")
    failed_code = isinstance(status_code, int) and status_code >= 400
    if failure.sub_code or failure.error_message or failed_type or failed_code:
        return failure
    return None


def error_fields(body: object) -> Failure:
    """``subCode``/``errorMessage`` from an error body or a task (top level or in ``status``)."""
    if not isinstance(body, dict):
        return Failure(None, None)
    places = [body, task_status(body)]
    sub_code = next((p["subCode"] for p in places if isinstance(p.get("subCode"), str)), None)
    message = next(
        (p[k] for p in places for k in ("errorMessage", "message") if isinstance(p.get(k), str)),
        None,
    )
    # A task's statusCode is 200 while it runs; only an error code says anything.
    status_code = task_status(body).get("statusCode")
    failed_code = isinstance(status_code, int) and status_code >= 400
    return Failure(sub_code, message, status_code if failed_code else None)


def installed_plugin_ref(task: Mapping[str, Any]) -> str | None:
    """Where a finished task says the app now lives, for hosts that answer 200 instead of 303."""
    status = task_status(task)
    for holder in (status.get("plugin"), task.get("plugin")):
        if isinstance(holder, dict):
            links = holder.get("links")
            link = links.get("self") if isinstance(links, dict) else None
            if isinstance(link, str) and link:
                return link
    links = task.get("links")
    if isinstance(links, dict):
        for name in ("plugin", "result", "target"):
            link = links.get(name)
            if isinstance(link, str) and link:
                return link
    return None


def ping_after_seconds(task: Mapping[str, Any]) -> float:
    """The host's requested poll interval, clamped so a bad value neither spins nor stalls."""
    value = task.get("pingAfter")
    if isinstance(value, bool) or not isinstance(value, int | float):
        value = DEFAULT_PING_AFTER_MS
    return min(max(float(value), MIN_PING_AFTER_MS), MAX_PING_AFTER_MS) / 1000


def is_invalid_token(reply: Reply) -> bool:
    return error_fields(reply.json_or_none()).sub_code == INVALID_TOKEN_SUB_CODE


def one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def excerpt(text: str) -> str:
    """A short, single-line quote of a body; an HTML page is reduced to its title or text."""
    if "<html" in text[:500].lower() or "<!doctype" in text[:500].lower():
        title = HTML_TITLE_PATTERN.search(text)
        text = title.group(1) if title else HTML_TAG_PATTERN.sub(" ", text)
    return one_line(text, EXCERPT_CHARS) if text.strip() else "(empty body)"


def host_said(reply: Reply) -> str:
    """The host's own explanation, for the end of a message: UPM's errorMessage or the body."""
    failure = error_fields(reply.json_or_none())
    if failure.error_message or failure.sub_code:
        return failure.described
    return excerpt(reply.text) if reply.text.strip() else ""


def path_of(url: str) -> str:
    return URL(url).path or "/"


# --- explaining failures ---------------------------------------------------------------------


def explain_unauthorized(reply: Reply, host: HostIdentity) -> AuthenticationError:
    said = host_said(reply)
    hints = {
        "cloud": "Atlassian Cloud needs the account's e-mail address as username and an API "
        f"token as password (create one at {API_TOKEN_URL}); the account password does not "
        "work." + ("" if "@" in host.username else f" {host.username!r} is not an e-mail address."),
        "local": "Local SDK hosts (atlas-run) use admin/admin unless you changed them; check "
        "username and password in the [[hosts]] entry.",
        "server": "Check the username and password of this Server/Data Center account. "
        "Atlassian Cloud needs the account e-mail plus an API token from id.atlassian.com "
        "(account passwords do not work); local SDK hosts use admin/admin.",
    }
    return AuthenticationError(
        f"{host.base_url} rejected the login of {host.username!r}: wrong username or "
        f"password/API token (HTTP 401{': ' + said if said else ''})",
        hint=hints[host.kind],
        status=reply.status,
    )


def explain_captcha(reply: Reply, host: HostIdentity) -> AuthenticationError | None:
    """Jira/Confluence demand a CAPTCHA after failed logins and then refuse even the right one."""
    reason = reply.header("X-Authentication-Denied-Reason") or ""
    login_reason = reply.header("X-Seraph-LoginReason") or ""
    if "captcha" not in reason.lower() and "AUTHENTICATION_DENIED" not in login_reason:
        return None
    return AuthenticationError(
        f"{host.base_url} refuses to log in {host.username!r} until a CAPTCHA is solved "
        f"(too many failed logins, HTTP {reply.status})",
        hint=f"Log in once as {host.username} in a browser at {host.base_url} and solve the "
        "CAPTCHA, after fixing the password/API token that failed.",
        status=reply.status,
    )


def explain_uploads_disabled(failure: Failure, host: HostIdentity) -> UploadsDisabledError | None:
    sub_code = (failure.sub_code or "").lower()
    by_code = "upload" in sub_code and "disabled" in sub_code
    by_message = bool(
        failure.error_message and UPLOADS_DISABLED_PATTERN.search(failure.error_message)
    )
    if not (by_code or by_message):
        return None
    return UploadsDisabledError(
        f"{host.base_url} does not allow installing apps from a URL: app uploads are disabled "
        f"({failure.described})",
        hint="Data Center disables app uploads by default. Start the product with the JVM "
        "system property -Dupm.plugin.upload.enabled=true (e.g. JVM_SUPPORT_RECOMMENDED_ARGS in "
        'setenv.sh, or atlas-run --jvmargs "-Dupm.plugin.upload.enabled=true") and restart it.',
        status=failure.status,
        sub_code=failure.sub_code,
    )


def explain_forbidden(reply: Reply, host: HostIdentity, *, doing: str) -> UpmError:
    captcha = explain_captcha(reply, host)
    if captcha is not None:
        return captcha
    failure = error_fields(reply.json_or_none())
    uploads = explain_uploads_disabled(Failure(failure.sub_code, failure.error_message, 403), host)
    if uploads is not None:
        return uploads
    said = host_said(reply)
    return AuthenticationError(
        f"{host.username!r} is not allowed to manage apps on {host.base_url} "
        f"(HTTP 403 while {doing}{': ' + said if said else ''})",
        hint="Installing apps needs an administrator: a site admin (Jira/Confluence "
        "administrator) on Cloud, a system administrator on Server/Data Center. Log in as "
        f"{host.username} at {host.manage_apps_url}: if 'Manage apps' does not open, use an "
        "admin account or have this one made an admin.",
        status=403,
        sub_code=failure.sub_code,
    )


def explain_dev_mode_off(host: HostIdentity, failure: Failure | None) -> DevModeOffError:
    why = f" ({failure.described})" if failure else ""
    return DevModeOffError(
        f"development mode is off on {host.base_url}, so it refuses to install an app from a "
        f"descriptor URL{why}",
        hint="As an admin open Jira/Confluence Settings → Apps → Manage apps "
        f"({host.manage_apps_url}), click Settings at the bottom, tick "
        f'"Enable development mode" and Apply. {CONNECT_END_OF_SUPPORT_NOTE}',
        status=failure.status if failure else None,
        sub_code=failure.sub_code if failure else None,
    )


def explain_dev_mode_refusal(
    failure: Failure, host: HostIdentity, plugin_uri: str
) -> UpmError | None:
    if not (failure.sub_code or "").endswith("not.from.marketplace"):
        return None
    return explain_dev_mode_off(host, failure)


def explain_uploads_refusal(
    failure: Failure, host: HostIdentity, plugin_uri: str
) -> UpmError | None:
    return explain_uploads_disabled(failure, host)


def explain_callback_rejected(
    failure: Failure, host: HostIdentity, plugin_uri: str
) -> UpmError | None:
    match = CALLBACK_STATUS_PATTERN.search(failure.error_message or "")
    by_code = (failure.sub_code or "").endswith("remote.host.bad.response")
    if match is None and not by_code:
        return None
    callback_status = int(match.group(1)) if match else None
    with_status = f" with HTTP {callback_status}" if callback_status else ""
    return InstallFailedError(
        f"the add-on rejected the installed callback{with_status} from {host.base_url} "
        f"(host said: {failure.described})",
        hint="The host POSTed the lifecycle.installed callback to your add-on and counts only "
        "200, 201 or 204 as success. Check your server's lifecycle.installed handler and its "
        "logs: it must verify the install's JWT (RS256 signed install, or HS256 with the "
        "previous sharedSecret on a legacy reinstall), store clientKey and sharedSecret, and "
        "answer 2xx." + callback_status_advice(callback_status),
        status=failure.status,
        sub_code=failure.sub_code,
    )


def callback_status_advice(callback_status: int | None) -> str:
    if callback_status in (401, 403):
        return (
            " A 401/403 nearly always means the JWT check failed: the audience must be your "
            "public baseUrl and the install keys must be fetched from the host's key server."
        )
    if callback_status == 404:
        return " A 404 means the lifecycle.installed path in the descriptor does not exist."
    if callback_status in (502, 503, 504):
        return " A 502/503/504 usually comes from the tunnel or proxy: is the add-on running?"
    if callback_status is not None and callback_status >= 500:
        return " A 5xx means the handler crashed: its stack trace is in your server's log."
    return ""


def explain_descriptor_unreachable(
    failure: Failure, host: HostIdentity, plugin_uri: str
) -> UpmError | None:
    sub_code = failure.sub_code or ""
    by_code = sub_code.endswith(("file.not.found", "response.exception"))
    by_message = bool(
        failure.error_message and DOWNLOAD_FAILED_PATTERN.search(failure.error_message)
    )
    if not (by_code or by_message):
        return None
    return InstallFailedError(
        f"{host.base_url} could not fetch the descriptor from {plugin_uri} ({failure.described})",
        hint="The host downloads the descriptor itself, so the URL must be reachable from the "
        "host, not just from your machine. Atlassian Cloud only fetches from ports 80, 443 or "
        "8080 on the public internet: localhost and LAN URLs need a tunnel (tunnel.provider = "
        f'"ngrok" or "ssh"). Check the tunnel is up and that {plugin_uri} opens from outside.',
        status=failure.status,
        sub_code=failure.sub_code,
    )


def explain_invalid_uri(failure: Failure, host: HostIdentity, plugin_uri: str) -> UpmError | None:
    if not (failure.sub_code or "").endswith(("invalid.relative.uri", "invalid.uri.syntax")):
        return None
    return InstallFailedError(
        f"{host.base_url} rejected the descriptor URL {plugin_uri!r}: not an absolute, "
        f"well-formed URL ({failure.described})",
        hint="The pluginUri must be an absolute http(s) URL such as "
        "https://<tunnel host>/atlassian-connect.json; check tunnel.public_url.",
        status=failure.status,
        sub_code=failure.sub_code,
    )


# Order matters: a callback rejection message mentions the add-on host, not a download.
KNOWN_INSTALL_FAILURES: Final[
    tuple[Callable[[Failure, HostIdentity, str], UpmError | None], ...]
] = (
    explain_dev_mode_refusal,
    explain_uploads_refusal,
    explain_callback_rejected,
    explain_descriptor_unreachable,
    explain_invalid_uri,
)


def explain_known_failure(failure: Failure, host: HostIdentity, plugin_uri: str) -> UpmError | None:
    for explain in KNOWN_INSTALL_FAILURES:
        error = explain(failure, host, plugin_uri)
        if error is not None:
            return error
    return None


def explain_failed_task(failure: Failure, host: HostIdentity, plugin_uri: str) -> UpmError:
    known = explain_known_failure(failure, host, plugin_uri)
    if known is not None:
        return known
    return InstallFailedError(
        f"{host.base_url} failed to install {plugin_uri}: {failure.described}",
        hint="This is the host's own explanation. Run `connect-dev validate` on the descriptor, "
        "and look for the full stack trace in the host's log (atlassian-jira.log / "
        "atlassian-confluence.log on Server and local SDK hosts).",
        status=failure.status,
        sub_code=failure.sub_code,
    )


def explain_install_rejection(reply: Reply, host: HostIdentity, plugin_uri: str) -> UpmError:
    """The POST that should start an install was refused outright."""
    fields = error_fields(reply.json_or_none())
    failure = Failure(fields.sub_code, fields.error_message, reply.status)
    known = explain_known_failure(failure, host, plugin_uri)
    if known is not None:
        return known
    if reply.status == 403 and failure.sub_code == INVALID_TOKEN_SUB_CODE:
        return UpmError(
            f"{host.base_url} refused two fresh UPM tokens in a row for {host.username!r}",
            hint="Tokens are single use and expire after about 5 minutes, and a new one was "
            "fetched for each attempt. A proxy in front of the host may be caching "
            f"GET {host.upm_url} or dropping the ?token= query parameter.",
            status=403,
            sub_code=failure.sub_code,
        )
    if reply.status == 415:
        return UpmError(
            f"{host.base_url} accepts neither {REMOTE_INSTALL_TYPE} nor {URI_INSTALL_TYPE} "
            f"for installing from a URL (HTTP 415: {host_said(reply) or 'no details'})",
            hint="This UPM is too old or too new for installs from a descriptor URL; install "
            f"the app by hand at {host.manage_apps_url} to see what it expects.",
            status=415,
            sub_code=failure.sub_code,
        )
    if reply.status == 404:
        return explain_missing_upm(reply, host)
    return explain_unexpected_reply(reply, host, doing=f"starting the install of {plugin_uri}")


def explain_task_poll_failure(reply: Reply, host: HostIdentity, plugin_uri: str) -> UpmError:
    if reply.status == 404:
        return UpmError(
            f"the install task {reply.url} of {plugin_uri} vanished from {host.base_url} "
            "(HTTP 404)",
            hint=f"The host may have restarted; check {host.manage_apps_url} and install again.",
            status=404,
        )
    return explain_unexpected_reply(reply, host, doing=f"following the install of {plugin_uri}")


def explain_unnamed_completion(reply: Reply, host: HostIdentity, plugin_uri: str) -> UpmError:
    return UpmError(
        f"{host.base_url} reports the install of {plugin_uri} done without an error, but "
        f"never says which app it installed: {excerpt(reply.text)}",
        hint=f"The app is probably installed; check {host.manage_apps_url}.",
        status=reply.status,
    )


def explain_uninstall_refused(reply: Reply, host: HostIdentity, key: str) -> UpmError:
    fields = error_fields(reply.json_or_none())
    if not (fields.sub_code or fields.error_message):
        return explain_forbidden(reply, host, doing=f"uninstalling {key}")
    return UpmError(
        f"{host.base_url} refused to uninstall {key}: {fields.described}",
        hint=f"System and required apps cannot be uninstalled; check {key} at "
        f"{host.manage_apps_url}.",
        status=reply.status,
        sub_code=fields.sub_code,
    )


def explain_missing_upm(reply: Reply, host: HostIdentity) -> UpmError:
    return UpmError(
        f"no UPM REST API at {host.upm_url} (HTTP {reply.status})",
        hint="Check the host url and its context path: Jira Cloud is the site root "
        "(https://SITE.atlassian.net), Confluence Cloud is /wiki "
        "(https://SITE.atlassian.net/wiki), local SDK hosts are http://localhost:2990/jira "
        "and http://localhost:1990/confluence.",
        status=reply.status,
    )


def explain_redirect(reply: Reply, host: HostIdentity) -> UpmError:
    location = reply.header("Location") or "(no Location)"
    return UpmError(
        f"{host.base_url} redirected {reply.method} {reply.url} to {location} "
        f"(HTTP {reply.status})",
        hint="Use the URL it redirects to as the host url (https instead of http, or the right "
        "context path). A redirect to a login page means the host or an SSO proxy does not "
        "accept Basic authentication for REST calls.",
        status=reply.status,
    )


def explain_forbidden_by_dev_mode(reply: Reply, host: HostIdentity) -> UpmError | None:
    failure = error_fields(reply.json_or_none())
    if (failure.sub_code or "").endswith("not.from.marketplace"):
        return explain_dev_mode_off(host, Failure(failure.sub_code, failure.error_message, 403))
    return None


def explain_unexpected_reply(reply: Reply, host: HostIdentity, *, doing: str) -> UpmError:
    if reply.status in REDIRECT_STATUSES:
        return explain_redirect(reply, host)
    if reply.status == 401:
        return explain_captcha(reply, host) or explain_unauthorized(reply, host)
    if reply.status == 403:
        return explain_forbidden_by_dev_mode(reply, host) or explain_forbidden(
            reply, host, doing=doing
        )
    fields = error_fields(reply.json_or_none())
    if reply.status >= 500:
        return UpmError(
            f"{host.base_url} failed with HTTP {reply.status} while {doing} "
            f"({reply.method} {path_of(reply.url)}): {excerpt(reply.text)}",
            hint="The host had an internal error; try again, and check the host's log if it "
            "keeps happening.",
            status=reply.status,
            sub_code=fields.sub_code,
        )
    return UpmError(
        f"{host.base_url} answered HTTP {reply.status} while {doing} "
        f"({reply.method} {path_of(reply.url)}): {excerpt(reply.text)}",
        hint="This is not an answer UPM gives; check that the host url points at Jira or "
        "Confluence and not at a proxy in front of it.",
        status=reply.status,
        sub_code=fields.sub_code,
    )


def explain_not_json(reply: Reply, host: HostIdentity) -> UpmError:
    content_type = reply.header("Content-Type") or "no content type"
    return UpmError(
        f"{host.base_url} answered {reply.method} {path_of(reply.url)} with HTTP {reply.status} "
        f"and {content_type} instead of JSON: {excerpt(reply.text)}",
        hint="A login or error page instead of UPM's JSON means the URL reaches a proxy, an SSO "
        "page or the wrong context path rather than the product's REST API.",
        status=reply.status,
    )


def explain_unreachable(
    exc: aiohttp.ClientError, host: HostIdentity, method: str, url: str
) -> HostUnreachableError:
    where = f"{method} {url}"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return HostUnreachableError(
            f"the TLS certificate of {host.base_url} is not trusted ({where})",
            hint="The certificate is self-signed, expired or for another name. Use the name the "
            "certificate was issued for, or add its CA to the system trust store "
            "(SSL_CERT_FILE).",
        )
    if isinstance(exc, aiohttp.ClientSSLError):
        return HostUnreachableError(
            f"TLS handshake with {host.base_url} failed ({where}): {exc}",
            hint="Check the URL's scheme: local SDK hosts speak plain http "
            "(http://localhost:2990/jira), Cloud sites only https.",
        )
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return HostUnreachableError(
            f"the host name of {host.base_url} does not resolve ({where})",
            hint="Check the spelling of the host url, and your network or VPN.",
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        return HostUnreachableError(
            f"cannot connect to {host.base_url}: {connect_failure(exc)} ({where})",
            hint="Is the product running and listening there? A local SDK host (atlas-run) "
            "takes minutes to start; Jira listens on 2990 and Confluence on 1990 by default.",
        )
    if isinstance(exc, aiohttp.InvalidURL):
        return HostUnreachableError(
            f"cannot request {exc.url}: not a valid URL (host {host.base_url})",
            hint="Check the host url in the config.",
        )
    return HostUnreachableError(
        f"the connection to {host.base_url} failed during {where}: "
        f"{type(exc).__name__}{': ' + str(exc) if str(exc) else ''}",
        hint="The host or a proxy in front of it dropped the connection; try again, and check "
        "the host is healthy.",
    )


def connect_failure(exc: aiohttp.ClientConnectorError) -> str:
    if isinstance(exc.os_error, ConnectionRefusedError):
        return "connection refused"
    return exc.strerror or "connection failed"


def explain_request_timeout(
    host: HostIdentity, method: str, url: str, seconds: float
) -> HostUnreachableError:
    return HostUnreachableError(
        f"{host.base_url} did not answer {method} {url} within {seconds:g} s",
        hint="The host is overloaded, still starting, or a firewall drops the traffic; a "
        "starting local SDK host answers after a few minutes.",
    )


def explain_install_timeout(
    host: HostIdentity, plugin_uri: str, seconds: float, progress: InstallProgress
) -> HostUnreachableError:
    if not progress.submitted:
        return HostUnreachableError(
            f"{host.base_url} did not accept the install of {plugin_uri} within {seconds:g} s",
            hint="The host answers too slowly; check it is healthy, or raise install_timeout.",
        )
    state = f" (last state: {progress.state})" if progress.state else ""
    if progress.state == "downloading":
        stuck = (
            f"It is still fetching {plugin_uri}: check the tunnel is up and serves the "
            "descriptor quickly."
        )
    else:
        stuck = (
            "The host waits for your add-on's lifecycle.installed handler: check it answers "
            "promptly (the proxy log shows the callback) and that the tunnel is up."
        )
    return HostUnreachableError(
        f"the host is still installing {plugin_uri} after {seconds:g} s{state} "
        f"({host.base_url}, task {progress.task_url or 'unknown'})",
        hint=f"{stuck} The install may still finish: check {host.manage_apps_url}. "
        "Raise install_timeout if the host is just slow.",
    )
