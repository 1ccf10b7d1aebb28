"""What happened on an emulated site, kept so tests and users can assert on it exactly.

Every entry is a plain dataclass of JSON values; ``HostRecord.to_dict()`` is what the control API
serves. ``at`` is wall-clock time (``time.time()``) so records from two processes line up.
Shared secrets are kept here on purpose: the record is the emulator's test oracle (the add-on under
test received the same secret), and it never goes to a log.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CallbackRecord",
    "FailedInstall",
    "HostRecord",
    "InstallPost",
    "InstallRecord",
    "RestCall",
    "SentRequest",
    "UninstallRecord",
    "UpmCall",
    "WebhookDelivery",
]


def _now() -> float:
    return time.time()


@dataclass
class UpmCall:
    """One request under ``/rest/plugins``, whatever its outcome."""

    method: str
    path: str
    status: int
    user: str | None
    at: float = field(default_factory=_now)


@dataclass
class InstallPost:
    """One install ``POST``. ``outcome`` is ``"accepted"`` (202) or ``"rejected"``; ``reason``
    is the ``subCode`` (or a short text) of a rejection."""

    plugin_uri: str | None
    content_type: str
    status: int
    outcome: str
    reason: str | None = None
    task_id: str | None = None
    at: float = field(default_factory=_now)


@dataclass
class InstallRecord:
    """A completed install. ``signed`` is how the ``installed`` callback was signed:
    ``"RS256"``, ``"HS256"`` or ``"unsigned"``; ``callback_status`` is ``None`` when the
    descriptor declares no ``installed`` callback."""

    key: str
    plugin_uri: str
    descriptor: dict[str, Any]
    descriptor_text: str
    client_key: str
    shared_secret: str | None
    signed: str
    callback_status: int | None
    task_id: str
    replaced: bool
    at: float = field(default_factory=_now)


@dataclass
class FailedInstall:
    plugin_uri: str
    task_id: str
    sub_code: str | None
    error_message: str
    key: str | None = None
    at: float = field(default_factory=_now)


@dataclass
class UninstallRecord:
    key: str
    callback_status: int | None
    signed: str
    at: float = field(default_factory=_now)


@dataclass
class CallbackRecord:
    """One lifecycle callback the site sent. ``status`` is ``None`` when no answer came;
    ``error`` then says why."""

    event: str
    key: str
    url: str
    status: int | None
    signed: str
    error: str | None = None
    at: float = field(default_factory=_now)


@dataclass
class SentRequest:
    """A signed request the site sent to an add-on as an ``iframe`` or a ``webhook`` would."""

    key: str
    method: str
    url: str
    style: str
    status: int | None
    error: str | None = None
    at: float = field(default_factory=_now)


@dataclass
class WebhookDelivery:
    """One webhook the site POSTed to an add-on (webhooks.py). ``status`` is ``None`` when no
    answer came (``error`` says why); ``answer`` is the start of the add-on's answer;
    ``trigger`` is ``"change"`` (the product changed) or ``"fire"`` (fired on demand);
    ``filter`` says how a declared ``filter`` was applied (``""`` when there is none)."""

    event: str
    key: str
    url: str
    status: int | None
    duration_ms: float
    answer: str
    signed: str
    body_excluded: bool
    identifier: str
    trigger: str
    filter: str = ""
    error: str | None = None
    at: float = field(default_factory=_now)


@dataclass
class RestCall:
    """One call to the site's REST API (rest.py) and the site's verdict on it (rest_auth.py's
    ``Verdict.to_dict()``: ``accepted``, ``reason``, ``message``, ``explanation``, and for a JWT
    the claims, the canonical request and qsh the site computed beside the app's qsh).
    ``query`` is as received with the ``jwt`` parameter's value left out; ``user`` is the
    accountId the call acted as."""

    method: str
    path: str
    query: str
    status: int
    auth: str
    app_key: str | None
    user: str | None
    verdict: dict[str, Any]
    at: float = field(default_factory=_now)


_LIST_FOR: dict[type, str] = {
    UpmCall: "upm_calls",
    InstallPost: "install_posts",
    InstallRecord: "installs",
    FailedInstall: "failed_installs",
    UninstallRecord: "uninstalls",
    CallbackRecord: "callbacks",
    SentRequest: "requests_sent",
    WebhookDelivery: "webhooks",
    RestCall: "rest_calls",
}


@dataclass
class HostRecord:
    """Everything that happened on one site, in order, plus what is installed now."""

    upm_calls: list[UpmCall] = field(default_factory=list)
    install_posts: list[InstallPost] = field(default_factory=list)
    installs: list[InstallRecord] = field(default_factory=list)
    failed_installs: list[FailedInstall] = field(default_factory=list)
    uninstalls: list[UninstallRecord] = field(default_factory=list)
    callbacks: list[CallbackRecord] = field(default_factory=list)
    requests_sent: list[SentRequest] = field(default_factory=list)
    webhooks: list[WebhookDelivery] = field(default_factory=list)
    rest_calls: list[RestCall] = field(default_factory=list)
    # key -> {key, name, version, enabled, plugin_uri, descriptor, installed_at}
    plugins: dict[str, dict[str, Any]] = field(default_factory=dict)
    _changed: asyncio.Event = field(
        default_factory=asyncio.Event, init=False, repr=False, compare=False
    )

    def add(self, entry: object) -> None:
        """Append an entry to the list for its type and wake every ``wait_until``."""
        getattr(self, _LIST_FOR[type(entry)]).append(entry)
        self.notify()

    def set_plugin(self, key: str, plugin: dict[str, Any]) -> None:
        self.plugins[key] = plugin
        self.notify()

    def remove_plugin(self, key: str) -> None:
        self.plugins.pop(key, None)
        self.notify()

    def clear(self) -> None:
        for name in _LIST_FOR.values():
            getattr(self, name).clear()
        self.plugins.clear()
        self.notify()

    def notify(self) -> None:
        # A fresh Event per change: every waiter wakes once, re-checks its predicate, and then
        # waits on the new Event, so no change between a check and a wait is ever missed.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_until(
        self,
        predicate: Callable[[HostRecord], bool],
        timeout: float,  # noqa: ASYNC109 - one call states the bound, for tests' readability
    ) -> None:
        """Return as soon as ``predicate(self)`` is true; ``TimeoutError`` after ``timeout`` s."""
        async with asyncio.timeout(timeout):
            while not predicate(self):
                await self._changed.wait()

    def to_dict(self) -> dict[str, Any]:
        lists = {
            name: [dataclasses.asdict(entry) for entry in getattr(self, name)]
            for name in _LIST_FOR.values()
        }
        return {**lists, "plugins": {key: dict(plugin) for key, plugin in self.plugins.items()}}
