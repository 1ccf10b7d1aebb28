"""How the dashboard words and shortens things: pure functions of events and state.

Kept apart from the widgets so the exact texts are tested without a terminal, and so every panel
says the same thing the same way (a reason is "saved" in the hosts table and in the detail view).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from ..config import is_loopback_url
from ..state import HostState, HostStatus

__all__ = [
    "SPINNER",
    "clock",
    "duration",
    "elapsed",
    "host_state_label",
    "latency",
    "precise_clock",
    "reason_label",
    "short_url",
    "status_style",
    "truncate",
    "verdict_label",
]

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

_REASONS = {
    "startup": "startup",
    "descriptor_changed": "saved",
    "tunnel_changed": "tunnel URL",
    "manual": "manual",
    "recovery": "recovery",
    "shutdown": "shutdown",
    "key_changed": "key change",
}


def clock(ts: float) -> str:
    """Local wall-clock time of an event, to the second: the panels are narrower than a log."""
    return time.strftime("%H:%M:%S", time.localtime(ts))


def precise_clock(ts: float) -> str:
    """``clock`` to the millisecond: when a captured request began."""
    return f"{clock(ts)}.{int(ts % 1 * 1000):03d}"


def duration(ms: float | None) -> str:
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms:.0f} ms"
    return f"{ms / 1000:.1f} s"


def elapsed(seconds: float) -> str:
    """How long a step has been running, in whole seconds: ``12 s``, then ``1:05``."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole} s"
    return f"{whole // 60}:{whole % 60:02d}"


def latency(ms: float) -> str:
    """A request's latency: a tenth of a millisecond matters below 100 ms, not above."""
    if ms < 100:
        return f"{ms:.1f} ms"
    return duration(ms)


def reason_label(reason: str) -> str:
    return _REASONS.get(reason, reason.replace("_", " "))


def truncate(text: str, width: int) -> str:
    """``text`` cut to ``width`` cells with an ellipsis; the start is what identifies it."""
    if width <= 0:
        return ""
    return text if len(text) <= width else text[: width - 1] + "…"


def short_url(url: str) -> str:
    """A host URL without its scheme when it says nothing (``https``, or a host on loopback);
    plain ``http`` to another machine keeps it, because that is worth noticing."""
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback_url(url)):
        return url.split("://", 1)[1].rstrip("/")
    return url.rstrip("/")


def host_state_label(status: HostStatus, frame: int = 0, now: float | None = None) -> str:
    """The state cell: a symbol a glance can read, then the word. While a Forge CLI step runs,
    the step and, given ``now`` (wall-clock seconds), how long it has been running."""
    spinner = SPINNER[frame % len(SPINNER)]
    if status.step:
        started = status.step_started
        running = f" {elapsed(now - started)}" if now is not None and started is not None else ""
        return f"{spinner} {status.step}{running}"
    match status.state:
        case HostState.INSTALLING:
            again = status.reason not in ("startup", "recovery")
            return f"{spinner} {'re-installing' if again else 'installing'}"
        case HostState.INSTALLED:
            return "✔ installed" if status.enabled is not False else "⚠ disabled"
        case HostState.FAILED:
            return "✖ failed"
        case HostState.UNINSTALLED:
            return "○ uninstalled"
        case HostState.UNINSTALL_FAILED:
            return "✖ uninstall failed"
    return "· pending"


def verdict_label(verdict: dict[str, Any] | None) -> str:
    """The JWT cell of a request: empty when the request carried no Connect JWT."""
    if verdict is None:
        return ""
    if verdict.get("verified") is True:
        return "✔ verified"
    label = verdict.get("verdict") or verdict.get("reason") or "not verified"
    return f"✖ {label}"


def status_style(status: int) -> str:
    """The colour of a status where it is read in full (the request card, a replay's outcome):
    red for the server's failures, yellow for the client's, green otherwise."""
    if status >= 500:
        return "bold red"
    return "yellow" if status >= 400 else "green"
