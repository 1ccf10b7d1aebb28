"""What UPM answers, read without side effects: the reply, the host it came from, and the pure
helpers that pick task state, failures and apps out of UPM's JSON documents (PROTOCOL.md §2).

Nothing here does I/O or builds errors, so ``explain`` and ``client`` can both build on it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from multidict import CIMultiDictProxy
from yarl import URL

__all__ = [
    "DEV_MODE_SETTING",
    "INVALID_TOKEN_SUB_CODE",
    "REDIRECT_STATUSES",
    "REMOTE_INSTALL_TYPE",
    "URI_INSTALL_TYPE",
    "Failure",
    "HostIdentity",
    "InstallProgress",
    "PluginInfo",
    "Reply",
    "as_bool",
    "dev_mode_setting",
    "error_fields",
    "excerpt",
    "host_said",
    "installed_plugin_ref",
    "is_invalid_token",
    "looks_like_plugin",
    "one_line",
    "path_of",
    "ping_after_seconds",
    "plugin_info",
    "task_done",
    "task_failure",
    "task_state",
    "task_status",
]

REMOTE_INSTALL_TYPE: Final = "application/vnd.atl.plugins.remote.install+json"
URI_INSTALL_TYPE: Final = "application/vnd.atl.plugins.install.uri+json"

INVALID_TOKEN_SUB_CODE: Final = "upm.error.invalid.token"
DEV_MODE_SETTING: Final = "connectDeveloperListingsEnabled"

DEFAULT_PING_AFTER_MS: Final = 100
MIN_PING_AFTER_MS: Final = 10
MAX_PING_AFTER_MS: Final = 5000

EXCERPT_CHARS: Final = 200

REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
TASK_STATE_PATTERN: Final = re.compile(r"\.install\.(\w+)\+json$")
HTML_TITLE_PATTERN: Final = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
HTML_TAG_PATTERN: Final = re.compile(r"<[^>]+>")

CLOUD_HOST_SUFFIXES: Final = (".atlassian.net", ".jira.com", ".jira-dev.com")
LOCAL_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})


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


class InstallProgress:
    """How far an install got, so a timeout can say where it was stuck."""

    def __init__(self) -> None:
        self.submitted = False
        self.task_url: str | None = None
        self.state: str | None = None  # "downloading", "installing", ... from status.contentType


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
