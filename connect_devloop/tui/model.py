"""What the dashboard knows beyond ``State``, reduced from the same events, purely.

``State`` (``connect_devloop.state``) is shared by every renderer. Two things only the dashboard
shows are derived here: each host's tenant (from ``lifecycle`` events, when the proxy reports
them) and the teardown progress after the user quits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..events import Deregistered, DeregistrationFailed, Event, Kept, Lifecycle
from ..state import State

__all__ = [
    "Teardown",
    "TeardownStep",
    "Tenant",
    "teardown_steps",
    "track_teardown",
    "track_tenants",
]


@dataclass(frozen=True)
class Tenant:
    """The last lifecycle callback a host sent for the add-on."""

    client_key: str
    event: str  # installed | uninstalled | enabled | disabled
    verified: bool
    reason: str = ""  # why it was not verified
    addon_status: int = 0  # what the add-on answered the callback (0: not known)
    addon_error: str = ""  # why it did not answer, when it did not

    @property
    def accepted(self) -> bool:
        """The add-on took the callback (2xx), or what it answered is not known."""
        return not self.addon_error and (self.addon_status == 0 or 200 <= self.addon_status < 300)

    @property
    def active(self) -> bool:
        """The host has the add-on for this tenant: not uninstalled, and an `installed` the
        add-on did not accept installed nothing."""
        return self.event != "uninstalled" and self.accepted


def track_tenants(tenants: Mapping[str, Tenant], event: Event) -> Mapping[str, Tenant]:
    if isinstance(event, Lifecycle):
        tenant = Tenant(
            event.client_key,
            event.event,
            event.verified,
            event.reason,
            event.addon_status,
            event.addon_error,
        )
        return {**tenants, event.host: tenant}
    return tenants


class Teardown:
    UNINSTALLING = "uninstalling"
    UNINSTALLED = "uninstalled"
    KEPT = "kept"  # left installed on purpose (Forge's on_exit = "keep")
    FAILED = "failed"
    NOTHING = "nothing"


@dataclass(frozen=True)
class TeardownStep:
    host: str
    step: str  # a Teardown value
    detail: str = ""  # the key uninstalled or kept, or the error


def track_teardown(
    outcomes: Mapping[str, TeardownStep], event: Event
) -> Mapping[str, TeardownStep]:
    """Fold one event seen after quitting into each host's outcome; a failure sticks."""
    match event:
        case Deregistered(host=host, key=key):
            if host in outcomes and outcomes[host].step == Teardown.FAILED:
                return outcomes
            return {**outcomes, host: TeardownStep(host, Teardown.UNINSTALLED, key)}
        case DeregistrationFailed(host=host, error=error):
            return {**outcomes, host: TeardownStep(host, Teardown.FAILED, error)}
        case Kept(host=host, key=key):
            if host in outcomes and outcomes[host].step == Teardown.FAILED:
                return outcomes
            return {**outcomes, host: TeardownStep(host, Teardown.KEPT, key)}
    return outcomes


def teardown_steps(state: State, outcomes: Mapping[str, TeardownStep]) -> list[TeardownStep]:
    """Every host's progress since quitting. A host with nothing in the ledger sends no event
    during teardown, so it is "uninstalling" until ``stopped`` says the teardown is over."""
    steps = [
        outcomes.get(name)
        or TeardownStep(name, Teardown.NOTHING if state.stopped else Teardown.UNINSTALLING)
        for name in state.hosts
    ]
    return steps + [step for name, step in outcomes.items() if name not in state.hosts]
