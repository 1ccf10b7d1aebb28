"""What the dev loop looks like right now, built only from events by a pure reducer.

``reduce(state, event)`` never mutates and never does I/O, so every view (TUI, text log,
supervisor's readiness check) sees the same truth and tests can replay event lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from .events import (
    AddonExited,
    AddonRestarting,
    AddonStarted,
    AddonStatus,
    ConfigChanged,
    ConfigReloaded,
    Deregistered,
    DeregistrationFailed,
    DescriptorInvalid,
    DescriptorLoaded,
    Event,
    ForgeStep,
    Ready,
    Registered,
    Registering,
    RegistrationFailed,
    RequestServed,
    Stopped,
    TunnelClosed,
    TunnelOpened,
)

__all__ = ["AddonState", "HostState", "HostStatus", "State", "reduce"]

MAX_RECENT_REQUESTS = 200


class HostState:
    PENDING = "pending"
    INSTALLING = "installing"
    INSTALLED = "installed"
    FAILED = "failed"
    UNINSTALLED = "uninstalled"
    UNINSTALL_FAILED = "uninstall_failed"

    # A host "has an outcome" once its latest install attempt ended, either way.
    OUTCOMES = frozenset({INSTALLED, FAILED, UNINSTALLED, UNINSTALL_FAILED})


@dataclass(frozen=True)
class HostStatus:
    name: str
    state: str = HostState.PENDING
    reason: str = ""
    key: str = ""
    digest: str = ""
    duration_ms: int | None = None
    enabled: bool | None = None
    error: str = ""
    hint: str | None = None
    registrar: str = "upm"  # "upm" or "forge", from the host's registering events
    # The Forge CLI step running for the host ("" when none) and when it started (the
    # event's wall-clock ``ts``): the dashboard shows how long it has been running.
    step: str = ""
    step_started: float | None = None


@dataclass(frozen=True)
class AddonState:
    """The add-on server: the process ``up`` runs (``command`` not ""), or only its URL."""

    command: str = ""  # as started; "" while none was started
    pid: int | None = None  # while it runs
    running: bool = False
    # Whether it answers at [addon] url: None until known (and while it restarts).
    answering: bool | None = None
    detail: str = ""  # why it does not answer, or how soon it did
    restarts: int = 0  # starts after the first
    last_exit: AddonExited | None = None
    restarting: str = ""  # why a restart is under way ("" when none)


@dataclass(frozen=True)
class State:
    key: str = ""
    digest: str = ""
    descriptor_valid: bool | None = None
    descriptor_errors: tuple[dict[str, Any], ...] = ()
    tunnel_provider: str = ""
    tunnel_url: str = ""
    tunnel_inspector_url: str = ""  # the ngrok agent's web inspector; "" for other providers
    tunnel_open: bool = False
    tunnel_closed_reason: str = ""  # why the tunnel last closed ("" while it is open)
    tunnel_reopened: int = 0  # times the tunnel opened again after the first time
    hosts: dict[str, HostStatus] = field(default_factory=dict)
    recent_requests: tuple[RequestServed, ...] = ()
    request_count: int = 0
    request_errors: int = 0  # requests answered with a 5xx (the add-on or the proxy failed)
    jwt_rejected: int = 0  # requests whose Connect JWT the inspector did not verify
    ready: bool = False
    stopped: bool = False
    addon: AddonState = field(default_factory=AddonState)
    # Keys of connect-dev.toml saved while `up` runs that take effect only after a restart
    # (``config_changed``'s ``needs_restart``); () when nothing waits for one.
    restart_needed: tuple[str, ...] = ()

    @classmethod
    def initial(cls, host_names: list[str] | tuple[str, ...]) -> State:
        return cls(hosts={name: HostStatus(name=name) for name in host_names})

    def all_hosts_settled(self) -> bool:
        return all(status.state in HostState.OUTCOMES for status in self.hosts.values())


def _host(snapshot: State, name: str, /, **changes: Any) -> State:
    # Positional-only: "state" is also a HostStatus field passed through **changes.
    current = snapshot.hosts.get(name, HostStatus(name=name))
    return replace(snapshot, hosts={**snapshot.hosts, name: replace(current, **changes)})


def _is_other_key(snapshot: State, name: str, key: str) -> bool:
    """True when ``key`` is not the key the host has installed now (a renamed add-on's old
    key being cleaned up), so the host's own state must not change."""
    current = snapshot.hosts.get(name)
    return bool(key and current is not None and current.key and current.key != key)


def _request_served(state: State, event: RequestServed) -> State:
    """``reduce`` for a ``request`` event: the one event that comes thousands of times a second
    (a page load is dozens of requests), and every view reduces each one. A copy of the state
    with four fields changed, without ``dataclasses.replace`` (which costs five times as
    much: it re-reads and re-validates every field). Still a new object: the old one is
    untouched."""
    updated = object.__new__(State)
    fields = updated.__dict__  # a frozen dataclass forbids setattr, not its own __dict__
    fields.update(state.__dict__)
    fields["recent_requests"] = (*state.recent_requests[-(MAX_RECENT_REQUESTS - 1) :], event)
    fields["request_count"] = state.request_count + 1
    if event.status >= 500:
        fields["request_errors"] = state.request_errors + 1
    if event.jwt is not None and event.jwt.get("verified") is False:
        fields["jwt_rejected"] = state.jwt_rejected + 1
    return updated


def reduce(state: State, event: Event) -> State:
    if isinstance(event, RequestServed):
        return _request_served(state, event)
    match event:
        case DescriptorLoaded(key=key, digest=digest):
            return replace(
                state, key=key, digest=digest, descriptor_valid=True, descriptor_errors=()
            )
        case DescriptorInvalid(errors=errors):
            return replace(state, descriptor_valid=False, descriptor_errors=tuple(errors))
        case TunnelOpened(url=url, provider=provider, inspector_url=inspector_url):
            return replace(
                state,
                tunnel_url=url,
                tunnel_inspector_url=inspector_url,
                tunnel_provider=provider,
                tunnel_open=True,
                tunnel_closed_reason="",
                tunnel_reopened=state.tunnel_reopened + (1 if state.tunnel_url else 0),
            )
        case TunnelClosed(reason=reason):
            return replace(state, tunnel_open=False, tunnel_closed_reason=reason or "closed")
        case Registering(host=host, reason=reason, registrar=registrar):
            return _host(
                state,
                host,
                state=HostState.INSTALLING,
                reason=reason,
                error="",
                hint=None,
                registrar=registrar,
                step="",
                step_started=None,
            )
        case Registered(
            host=host,
            key=key,
            digest=digest,
            duration_ms=ms,
            enabled=enabled,
            registrar=registrar,
        ):
            return _host(
                state,
                host,
                state=HostState.INSTALLED,
                key=key,
                digest=digest,
                duration_ms=ms,
                enabled=enabled,
                error="",
                hint=None,
                registrar=registrar,
                step="",
                step_started=None,
            )
        case RegistrationFailed(host=host, error=error, hint=hint, registrar=registrar):
            return _host(
                state,
                host,
                state=HostState.FAILED,
                error=error,
                hint=hint,
                registrar=registrar,
                step="",
                step_started=None,
            )
        case ForgeStep(host=host, step=step, state=step_state, ts=ts):
            if step_state == "started":
                return _host(state, host, registrar="forge", step=step, step_started=ts)
            current = state.hosts.get(host)
            if current is not None and current.step == step:
                return _host(state, host, step="", step_started=None)
            return state
        case Deregistered(host=host, key=key):
            if _is_other_key(state, host, key):
                return state  # an old key removed after a rename; the current one stays
            return _host(
                state,
                host,
                state=HostState.UNINSTALLED,
                enabled=None,
                error="",
                hint=None,
                step="",
                step_started=None,
            )
        case DeregistrationFailed(host=host, key=key, error=error, hint=hint):
            if _is_other_key(state, host, key):
                return _host(state, host, error=error, hint=hint)
            return _host(
                state,
                host,
                state=HostState.UNINSTALL_FAILED,
                error=error,
                hint=hint,
                step="",
                step_started=None,
            )
        case Ready(addon_answering=answering):
            if answering is None or state.addon.answering is not None:
                return replace(state, ready=True)
            return replace(state, ready=True, addon=replace(state.addon, answering=answering))
        case AddonStarted(pid=pid, command=command):
            addon = state.addon
            return replace(
                state,
                addon=replace(
                    addon,
                    command=command,
                    pid=pid,
                    running=True,
                    answering=None,
                    detail="",
                    restarting="",
                    restarts=addon.restarts + (1 if addon.command else 0),
                ),
            )
        case AddonStatus(answering=answering, detail=detail):
            return replace(state, addon=replace(state.addon, answering=answering, detail=detail))
        case AddonRestarting(detail=detail, reason=reason):
            return replace(state, addon=replace(state.addon, restarting=detail or reason))
        case AddonExited():
            return replace(
                state,
                addon=replace(
                    state.addon, pid=None, running=False, answering=None, last_exit=event
                ),
            )
        case ConfigChanged(needs_restart=needs_restart):
            return replace(state, restart_needed=tuple(needs_restart))
        case ConfigReloaded(added=added, removed=removed):
            hosts = {name: status for name, status in state.hosts.items() if name not in removed}
            for name in added:
                hosts.setdefault(name, HostStatus(name=name))
            return replace(state, hosts=hosts)
        case Stopped():
            return replace(state, stopped=True)
    return state
