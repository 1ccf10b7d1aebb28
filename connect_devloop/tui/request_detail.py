"""One request in full: what was asked, what came back, the JWT verdict and why, the headers
(secrets masked); and, while the proxy's capture keeps the exchange, its bodies, the decoded
token (qsh carried next to qsh computed, the canonical request) and the keys to replay it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.binding import Binding

from ..events import RequestServed
from ..redact import mask_headers, mask_path, masked_mapping
from .detail import DetailScreen
from .exchange_view import decoded_jwt, exchange_parts
from .format import clock, latency, precise_clock, status_style, verdict_label
from .messages import ReplayRequested

__all__ = ["RequestDetail", "request_renderable"]

NO_HEADERS = "not recorded: this version of the proxy reports no headers with a request"


class RequestDetail(DetailScreen):
    """``detail``: the captured exchange (``TrafficService.detail``), or None and ``note``
    saying why not; then the card is what the event says, and nothing can be replayed."""

    BINDINGS = [
        Binding("r", "replay", "Replay (re-signed)"),
        Binding("e", "edit", "Edit & replay"),
    ]

    def __init__(
        self, request: RequestServed, detail: Mapping[str, Any] | None = None, note: str = ""
    ) -> None:
        number = getattr(request, "id", 0)
        title = f"Request #{number}" if number else "Request"
        super().__init__(title, request_renderable(request, detail, note))
        self.request = request
        self.detail = detail

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("replay", "edit"):
            return self.detail is not None  # hidden: the note on the card says why
        return True

    def action_replay(self) -> None:
        self.app.post_message(ReplayRequested(self.request.id))

    def action_edit(self) -> None:
        self.app.post_message(ReplayRequested(self.request.id, edit=True))


def request_renderable(
    request: RequestServed, detail: Mapping[str, Any] | None = None, note: str = ""
) -> RenderableType:
    status_colour = status_style(request.status)
    # The capture knows when the request began, to the millisecond; the event when it ended.
    when = precise_clock(detail["ts"]) if detail is not None else clock(request.ts)
    summary = Text.assemble(
        (request.method, "bold"),
        " ",
        mask_path(request.path),
        "\n",
        ("status ", "dim"),
        (str(request.status), status_colour),
        ("   took ", "dim"),
        latency(request.duration_ms),
        ("   at ", "dim"),
        when,
    )
    replay_of = getattr(request, "replay_of", 0)
    if replay_of:
        summary.append(f"   ↻ replay of #{replay_of}", "magenta")
    addon_error = getattr(request, "addon_error", "")
    if addon_error:
        summary.append("\n")
        summary.append(f"the add-on did not answer ({addon_error}): the proxy answered 502", "red")
    parts: list[RenderableType] = [summary, Text()]
    decoded = decoded_jwt(detail.get("jwt_detail")) if detail is not None else []
    parts.extend(_verdict(request.jwt, decoded))
    if detail is not None:
        parts.append(Text())
        parts.extend(exchange_parts(detail))
        return Group(*parts)
    parts.append(Text())
    parts.append(Text("Headers", "bold"))
    headers = getattr(request, "headers", None)
    if headers:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="cyan", no_wrap=True)
        table.add_column(overflow="fold")
        for name, value in mask_headers(headers):
            table.add_row(name, value)
        parts.append(table)
    else:
        parts.append(Text("  " + NO_HEADERS, "dim"))
    if note:
        parts.extend([Text(), Text(note, "dim")])
    return Group(*parts)


def _verdict(
    verdict: Mapping[str, Any] | None, decoded: Sequence[tuple[str, Text]] = ()
) -> list[RenderableType]:
    """The inspector's verdict and its evidence, then the token as decoded, in one grid."""
    if verdict is None and not decoded:
        none = "none: the request carried no Connect JWT"
        return [Text.assemble(("JWT  ", "bold"), (none, "dim"))]
    if verdict is None:
        label = Text("not inspected", "dim")
        verdict = {}
    else:
        verified = verdict.get("verified") is True
        label = Text(verdict_label(dict(verdict)), "green" if verified else "bold red")
    lines: list[RenderableType] = [Text.assemble(("JWT  ", "bold"), label)]
    # The sentence that explains the verdict first, then its hint, then the evidence.
    explained = {"reason": verdict.get("reason"), "hint": verdict.get("hint")}
    rest = {k: v for k, v in verdict.items() if k not in ("verified", "verdict", "reason", "hint")}
    rows = {k: v for k, v in explained.items() if v} | masked_mapping(rest)
    cells = [(key.replace("_", " "), _value(value)) for key, value in rows.items()]
    cells += decoded
    if cells:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="cyan", no_wrap=True)
        table.add_column(overflow="fold")
        for key, value in cells:
            table.add_row("  " + key, value)
        lines.append(table)
    return lines


def _value(value: Any) -> Text:
    # What a person reads, never Python's None/True/False.
    if value is None:
        return Text("—", "dim")
    if isinstance(value, bool):
        return Text("yes" if value else "no")
    if isinstance(value, Mapping):
        return Text("\n".join(f"{k}: {v}" for k, v in value.items()))
    if isinstance(value, list | tuple):
        return Text("\n".join(str(item) for item in value))
    return Text(str(value))
