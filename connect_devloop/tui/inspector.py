"""What the dashboard's traffic inspector asks of the daemon, and the plain decisions around it.

A daemon offers its capture as ``traffic`` (``Supervisor.traffic``: None until the proxy is up,
and with ``[inspector] capture = false``) and may offer ``replay`` (``ThreadedDaemon``: on the
daemon's own loop). Both are optional, so a daemon without them (a test's fake, an older
supervisor) still drives the dashboard: the card then shows what the event says.

Reading ``traffic.detail(id)`` from the dashboard's thread is safe: an exchange is no longer
written once it is reported, and the capture's lookup is a dict's.
"""

from __future__ import annotations

from typing import Any, Protocol, cast

from ..events import RequestServed
from ..traffic.replay import CannotResignError, ReplayError, ReplayOutcome
from ..traffic.service import TrafficService

__all__ = [
    "Inspectable",
    "captured_detail",
    "offers_unchanged",
    "replay_via",
    "traffic_of",
]

NOT_CAPTURING = "the traffic inspector is not running: the proxy captures nothing"


class Inspectable(Protocol):
    """The optional part of a ``Daemon`` (app.py) that the request card and replay use."""

    @property
    def traffic(self) -> TrafficService | None: ...

    async def replay(
        self, exchange_id: int, *, edited: str | None = None, unchanged: bool = False
    ) -> ReplayOutcome: ...


def traffic_of(daemon: object) -> TrafficService | None:
    traffic = getattr(daemon, "traffic", None)
    return traffic if isinstance(traffic, TrafficService) else None


async def replay_via(
    daemon: object, exchange_id: int, *, edited: str | None, unchanged: bool
) -> ReplayOutcome:
    """Replay through the daemon's own ``replay`` when it has one (it knows which loop the
    proxy runs on); else through its ``traffic``, whose loop is then this one."""
    own = getattr(daemon, "replay", None)
    if own is not None:
        return cast(ReplayOutcome, await own(exchange_id, edited=edited, unchanged=unchanged))
    traffic = traffic_of(daemon)
    if traffic is None:
        raise ReplayError(
            f"request {exchange_id} cannot be sent again: {NOT_CAPTURING}",
            hint="Set [inspector] capture = true in connect-dev.toml (the default).",
        )
    return await traffic.replay(exchange_id, edited=edited, unchanged=unchanged)


def captured_detail(
    traffic: TrafficService | None, request: RequestServed, *, capturing: bool = True
) -> tuple[dict[str, Any] | None, str]:
    """The captured exchange of ``request`` as ``traffic.view.detail`` gives it, masked; or
    None and why the card cannot show its bodies. ``capturing``: ``[inspector] capture``."""
    number = getattr(request, "id", 0)
    if not capturing:
        return None, "bodies are not shown: [inspector] capture = false in connect-dev.toml"
    if not number:
        return None, "bodies are not shown: the proxy did not capture this request"
    if traffic is None:
        return None, f"bodies are not shown: {NOT_CAPTURING}"
    try:
        detail = traffic.detail(number)
    except ReplayError:  # NotCapturedError: newer requests pushed it out
        keep = traffic.capture.keep
        return None, (
            f"bodies are no longer shown: request #{number} has left the capture, which keeps "
            f"the last {keep:,} ([inspector] keep)"
        )
    return detail, ""


def offers_unchanged(error: ReplayError, *, unchanged: bool) -> bool:
    """Whether sending the token as captured is the way out of ``error``: only when the
    replay failed because connect-dev cannot re-sign it (an RS256 install callback, a tenant
    without a stored sharedSecret), not when the proxy could not be reached."""
    return not unchanged and isinstance(error, CannotResignError)
