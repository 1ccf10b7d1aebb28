"""What a running ``up`` offers about its traffic: to the dashboard (same process) and to
``connect-dev requests`` / ``replay`` (over the control socket, ``control.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..proxy.capture import Capture, Exchange
from .har import to_har
from .replay import ReplayOutcome, Signer, editable_text, not_captured, replay
from .view import ViewContext, detail, summary

__all__ = ["TrafficService"]


class TrafficService:
    """The capture of one ``up`` run, with the context its views and replays need.

    ``proxy_url`` and ``context`` are read when used: the public URL changes when the tunnel
    is reopened. Runs on the daemon's loop (``replay``); the rest only reads.
    """

    def __init__(
        self,
        capture: Capture,
        *,
        proxy_url: Callable[[], str],
        context: Callable[[], ViewContext],
        signer: Signer,
        inspector_url: Callable[[], str] = lambda: "",
    ) -> None:
        self.capture = capture
        self._proxy_url = proxy_url
        self._context = context
        self._signer = signer
        self._inspector_url = inspector_url

    @property
    def context(self) -> ViewContext:
        return self._context()

    @property
    def inspector_url(self) -> str:
        """The ngrok agent's own inspector, when ngrok is the tunnel ("" otherwise)."""
        return self._inspector_url()

    def exchange(self, exchange_id: int) -> Exchange | None:
        return self.capture.get(exchange_id)

    def summaries(self, after: int = 0) -> list[dict[str, Any]]:
        return [summary(e) for e in self.capture.all() if e.id > after]

    def detail(self, exchange_id: int, *, include_secrets: bool = False) -> dict[str, Any]:
        exchange = self._get(exchange_id)
        return detail(exchange, self.context, include_secrets=include_secrets)

    def har(self, *, include_secrets: bool = False) -> dict[str, Any]:
        return to_har(self.capture.all(), self.context, include_secrets=include_secrets)

    def editable(self, exchange_id: int) -> str:
        return editable_text(self._get(exchange_id))

    async def replay(
        self, exchange_id: int, *, edited: str | None = None, unchanged: bool = False
    ) -> ReplayOutcome:
        return await replay(
            self.capture,
            self._proxy_url(),
            exchange_id,
            signer=self._signer,
            context=self.context,
            edited=edited,
            unchanged=unchanged,
        )

    def _get(self, exchange_id: int) -> Exchange:
        exchange = self.capture.get(exchange_id)
        if exchange is None:
            raise not_captured(self.capture, exchange_id)
        return exchange
