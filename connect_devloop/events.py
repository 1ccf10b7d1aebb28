"""The events every component reports, and the bus that carries them.

Events are the public contract of DESIGN.md: each has a fixed ``event`` name and fields that may
grow but are never renamed. The TUI, the text log and the JSON-lines log all render these same
objects; none of them may carry a secret.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = [
    "AddonExited",
    "AddonOutput",
    "AddonRestarting",
    "AddonStarted",
    "AddonStatus",
    "ConfigChanged",
    "ConfigInvalid",
    "ConfigReloaded",
    "Deregistered",
    "DeregistrationFailed",
    "DescriptorInvalid",
    "DescriptorLoaded",
    "Error",
    "Event",
    "EventBus",
    "ForgeStep",
    "HostAnswering",
    "Kept",
    "Lifecycle",
    "Ready",
    "Registered",
    "Registering",
    "RegistrationFailed",
    "RequestServed",
    "RestCall",
    "Stopped",
    "TunnelClosed",
    "TunnelOpened",
    "Warning",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Event:
    """Base of all events. ``ts`` is wall-clock seconds since the epoch."""

    name: ClassVar[str] = "event"
    ts: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        """The event as its JSON-lines object: ``ts`` and ``event`` first, then the fields."""
        data: dict[str, Any] = {"ts": round(self.ts, 3), "event": self.name}
        values = self.__dict__
        for name in _field_names(type(self)):
            data[name] = values[name]
        return data


# Event class -> its field names but ``ts``, in order: ``dataclasses.fields()`` rebuilds that
# tuple on every call, and ``to_dict`` runs for every line of the JSON log.
_FIELD_NAMES: dict[type[Event], tuple[str, ...]] = {}


def _field_names(cls: type[Event]) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = tuple(f.name for f in dataclasses.fields(cls) if f.name != "ts")
        _FIELD_NAMES[cls] = names
    return names


@dataclass(frozen=True, kw_only=True)
class DescriptorLoaded(Event):
    name: ClassVar[str] = "descriptor_loaded"
    key: str
    digest: str
    path: str = ""


@dataclass(frozen=True, kw_only=True)
class DescriptorInvalid(Event):
    """``errors`` are ``Problem.to_dict()`` objects: path, message, line, column."""

    name: ClassVar[str] = "descriptor_invalid"
    errors: list[dict[str, Any]]
    path: str = ""
    kept_digest: str = ""  # the revision still served and installed; "" when there is none


@dataclass(frozen=True, kw_only=True)
class TunnelOpened(Event):
    name: ClassVar[str] = "tunnel_opened"
    url: str
    provider: str
    # The tunnel's own traffic page on this machine (the ngrok agent's web inspector); "" when
    # the provider has none.
    inspector_url: str = ""


@dataclass(frozen=True, kw_only=True)
class TunnelClosed(Event):
    name: ClassVar[str] = "tunnel_closed"
    provider: str = ""
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class Registering(Event):
    """``reason``: startup | descriptor_changed | tunnel_changed | tunnel_recovered | manual.

    DESIGN.md also lists ``recovery``; what a crashed run left is removed, not installed, so
    that reason is carried by ``deregistered`` instead.
    """

    name: ClassVar[str] = "registering"
    host: str
    reason: str
    digest: str = ""
    registrar: str = "upm"  # the host's backend: "upm" or "forge"


@dataclass(frozen=True, kw_only=True)
class Registered(Event):
    name: ClassVar[str] = "registered"
    host: str
    key: str
    duration_ms: int
    digest: str = ""
    enabled: bool = True
    registrar: str = "upm"
    # True: the host already had this revision (kept by an earlier run), so nothing was sent.
    unchanged: bool = False


@dataclass(frozen=True, kw_only=True)
class RegistrationFailed(Event):
    name: ClassVar[str] = "registration_failed"
    host: str
    error: str
    hint: str | None = None
    registrar: str = "upm"


@dataclass(frozen=True, kw_only=True)
class Lifecycle(Event):
    name: ClassVar[str] = "lifecycle"
    host: str
    event: str
    client_key: str
    verified: bool
    # How the callback was signed: "RS256", "HS256" or "unsigned".
    signature: str = ""
    # The short verdict ("verified", "bad signature", "wrong audience", ...) and, when not
    # verified, the sentence that says exactly why (docs/security.md lists them all).
    verdict: str = ""
    reason: str = ""
    # What the add-on answered the callback (0: not known), and why it gave no answer when
    # the proxy answered for it ("connection refused", ...): verified is not accepted.
    addon_status: int = 0
    addon_error: str = ""

    def to_dict(self) -> dict[str, Any]:
        # DESIGN.md names the lifecycle kind "event", which collides with the line's own
        # "event" key that every JSON line must carry; the line keeps "event": "lifecycle" and
        # the kind goes under "lifecycle_event".
        data = super().to_dict()
        data["event"] = self.name
        data["lifecycle_event"] = self.event
        return data


@dataclass(frozen=True, kw_only=True)
class RequestServed(Event):
    name: ClassVar[str] = "request"
    method: str
    path: str
    status: int
    duration_ms: float
    jwt: dict[str, Any] | None = None  # the inspector's verdict on a Connect JWT, if any
    # Request headers with credentials masked (see redact.py); None when not recorded.
    headers: dict[str, str] | None = None
    # Why the add-on gave no answer when the proxy answered itself (502): "connection
    # refused", "no answer within 300 s", ...; "" when the add-on answered.
    addon_error: str = ""
    # The traffic inspector's number for it (``connect-dev requests``, ``replay ID``); 0 when
    # the proxy does not capture.
    id: int = 0
    replay_of: int = 0  # the id of the request this one replays; 0: not a replay

    @classmethod
    def of(
        cls,
        method: str,
        path: str,
        status: int,
        duration_ms: float,
        jwt: dict[str, Any] | None,
        headers: dict[str, str] | None,
        addon_error: str,
        id: int = 0,
        replay_of: int = 0,
    ) -> RequestServed:
        """``RequestServed(method=..., ...)`` at about a third of the cost, for the proxy (once
        per request): a frozen dataclass's ``__init__`` sets each field through
        ``object.__setattr__``; this sets them all at once. Every field is given (tested)."""
        event = _new(cls)
        _setattr(
            event,
            "__dict__",
            {
                "ts": _time(),
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": duration_ms,
                "jwt": jwt,
                "headers": headers,
                "addon_error": addon_error,
                "id": id,
                "replay_of": replay_of,
            },
        )
        return event


_new = object.__new__
_setattr = object.__setattr__
_time = time.time


@dataclass(frozen=True, kw_only=True)
class RestCall(Event):
    """A call an app made to an emulated site's REST API, with the site's verdict (read from
    its ``/_emulator/record``; real sites are never asked). ``accepted`` False: the site
    refused it; ``reason`` is short (``qsh mismatch``, ``missing scope``, ...), ``explanation``
    says why to a person, and for a JWT ``qsh_expected`` (what the site computed over
    ``canonical_request``) sits beside ``qsh_received`` (what the app sent)."""

    name: ClassVar[str] = "rest_call"
    host: str
    method: str
    path: str
    status: int
    accepted: bool
    reason: str
    qsh_expected: str | None = None
    qsh_received: str | None = None
    canonical_request: str | None = None
    app_canonical_request: str | None = None  # what the app's qsh hashes, when the site knows
    message: str | None = None  # the error the app was answered
    explanation: str | None = None
    app_key: str | None = None
    auth: str = ""  # "jwt", "session" (AP.request), "basic"
    required_scope: str | None = None


@dataclass(frozen=True, kw_only=True)
class Deregistered(Event):
    name: ClassVar[str] = "deregistered"
    host: str
    key: str = ""
    reason: str = "shutdown"
    was_installed: bool = True  # False: the host did not have it (nothing to remove)


@dataclass(frozen=True, kw_only=True)
class DeregistrationFailed(Event):
    name: ClassVar[str] = "deregistration_failed"
    host: str
    error: str
    key: str = ""
    hint: str | None = None


@dataclass(frozen=True, kw_only=True)
class Kept(Event):
    """On exit, the add-on stays installed on a host whose registrar keeps it (Forge with
    ``on_exit = "keep"``); the ledger still lists it, and ``connect-dev down`` uninstalls it.
    ``revision`` is the revision the host confirmed, "" when its last install did not finish."""

    name: ClassVar[str] = "kept"
    host: str
    key: str
    revision: str = ""


@dataclass(frozen=True, kw_only=True)
class ForgeStep(Event):
    """One step of the Forge CLI for a host: ``step`` is validate | deploy | install |
    uninstall, ``state`` started | done | failed. ``duration_ms`` is 0 when started."""

    name: ClassVar[str] = "forge_step"
    host: str
    step: str
    state: str
    duration_ms: int = 0


@dataclass(frozen=True, kw_only=True)
class Ready(Event):
    """Every host has an outcome, or has not answered within the ready bound (then it is in
    ``waiting`` and its install goes on in the background)."""

    name: ClassVar[str] = "ready"
    public_url: str = ""
    installed: int = 0  # hosts with the current revision installed
    hosts: int = 0
    waiting: list[str] = field(default_factory=list)  # hosts that have not answered yet
    # Whether the add-on server answered at [addon] url by then; None: not checked.
    addon_answering: bool | None = None


@dataclass(frozen=True, kw_only=True)
class HostAnswering(Event):
    """A host's liveness changed: ``answering`` False when it has not answered a call for
    ``seconds`` (its install goes on in the background), True when it answers again."""

    name: ClassVar[str] = "host_answering"
    host: str
    answering: bool
    seconds: float


@dataclass(frozen=True, kw_only=True)
class AddonStarted(Event):
    """``up`` started the add-on server (``[addon] command``). ``reason``: startup |
    files_changed | tunnel_changed | crashed. ``env`` names the variables connect-dev set for
    it (``CONNECT_DEV_BASE_URL``, ``AC_LOCAL_BASE_URL``, ``PORT`` and those of ``[addon]
    env``); their values are never in an event."""

    name: ClassVar[str] = "addon_started"
    pid: int
    command: str
    reason: str = "startup"
    base_url: str = ""
    port: int = 0
    env: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class AddonStatus(Event):
    """Whether the add-on server answers at ``url`` (any HTTP status counts). With a command:
    after each start, once it answers or when ``ready_timeout`` passed without an answer;
    without: on each change seen by the periodic probe (the first only when it does not
    answer). ``seconds``: how long after the start it answered (0 without a command)."""

    name: ClassVar[str] = "addon_status"
    answering: bool
    detail: str = ""
    url: str = ""
    seconds: float = 0.0
    hint: str | None = None


@dataclass(frozen=True, kw_only=True)
class AddonRestarting(Event):
    """The add-on is stopped and started again: ``reason`` files_changed (``paths``, relative
    to the config file, matched ``restart_on``) or tunnel_changed (the public URL it was given
    changed)."""

    name: ClassVar[str] = "addon_restarting"
    reason: str
    detail: str = ""
    paths: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class AddonExited(Event):
    """The add-on process ended. ``reason``: crashed (it ended by itself; it is started again
    after ``restart_in`` seconds), restart (stopped by us to restart it) or shutdown.
    ``code`` is its exit code, None when a signal ended it (``signal``, e.g. "SIGKILL");
    ``forced``: it had to be killed after ignoring SIGTERM for ``[addon] stop_timeout``;
    ``last_lines``: the last lines of its output (both streams), oldest first."""

    name: ClassVar[str] = "addon_exited"
    pid: int
    code: int | None
    signal: str | None = None
    reason: str = "crashed"
    last_lines: list[str] = field(default_factory=list)
    restart_in: float | None = None
    forced: bool = False
    ran_seconds: float = 0.0


@dataclass(frozen=True, kw_only=True)
class AddonOutput(Event):
    """A line the add-on printed: ``stream`` stdout or stderr. When it prints faster than the
    log can show (more than 50 lines in 100 ms on one stream), the rest of that window is
    dropped and one line says so: ``dropped`` lines were left out (0 on ordinary lines)."""

    name: ClassVar[str] = "addon_output"
    stream: str
    line: str
    dropped: int = 0


@dataclass(frozen=True, kw_only=True)
class ConfigInvalid(Event):
    """A save of ``connect-dev.toml`` while ``up`` runs could not be used: ``file``, ``line``
    (None when not known) and dotted ``key`` ("" when the whole file is wrong) say where. The
    running config stays as it was."""

    name: ClassVar[str] = "config_invalid"
    file: str
    message: str
    line: int | None = None
    key: str = ""
    hint: str | None = None


@dataclass(frozen=True, kw_only=True)
class ConfigChanged(Event):
    """A save of ``connect-dev.toml`` changed settings other than ``[[hosts]]``: ``applied``
    names the dotted keys now in effect, ``needs_restart`` those that take effect only when
    ``up`` is started again (``proxy.port``, ``tunnel.provider``, ``descriptor``, ``addon.*``,
    ``forge.*``), relative to the settings ``up`` started with: it is empty again once they
    are changed back."""

    name: ClassVar[str] = "config_changed"
    applied: list[str] = field(default_factory=list)
    needs_restart: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class ConfigReloaded(Event):
    """A save of ``connect-dev.toml`` was applied to the hosts: the names of the hosts
    ``added`` (now installing), ``removed`` (uninstalled first) and ``changed`` (URL,
    credentials, product, registrar, site or keys_url: installed again, after an uninstall
    from the old URL when the URL changed)."""

    name: ClassVar[str] = "config_reloaded"
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class Stopped(Event):
    name: ClassVar[str] = "stopped"


@dataclass(frozen=True, kw_only=True)
class Warning(Event):
    name: ClassVar[str] = "warning"
    message: str
    hint: str | None = None


@dataclass(frozen=True, kw_only=True)
class Error(Event):
    """Something failed that is not a host's install or uninstall: a background task of the
    daemon met an unexpected error (``task`` names it; it was restarted when it could be)."""

    name: ClassVar[str] = "error"
    message: str
    hint: str | None = None
    task: str = ""


Subscriber = Callable[[Event], None]


class EventBus:
    """Delivers each event synchronously, in order, to every subscriber.

    Subscribers must be quick and must not raise; one that raises is logged and skipped so a
    broken renderer can never stop an install or a teardown.
    """

    def __init__(self) -> None:
        # Replaced, never changed in place: ``emit`` (once per proxied request) iterates it
        # without a copy, and a subscriber that subscribes or leaves during an event does not
        # change who gets that event.
        self._subscribers: tuple[Subscriber, ...] = ()

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        self._subscribers = (*self._subscribers, subscriber)

        def unsubscribe() -> None:
            subscribers = list(self._subscribers)
            subscribers.remove(subscriber)
            self._subscribers = tuple(subscribers)

        return unsubscribe

    def emit(self, event: Event) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:
                logger.exception("event subscriber %r failed on %s", subscriber, event.name)
