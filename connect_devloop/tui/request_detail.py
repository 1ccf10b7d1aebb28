"""One request in full: what was asked, what came back, the JWT verdict and why, the headers
(secrets masked)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..events import RequestServed
from ..redact import mask_headers, mask_path, masked_mapping
from .detail import DetailScreen
from .format import clock, latency, verdict_label

__all__ = ["RequestDetail", "request_renderable"]

NO_HEADERS = "not recorded: this version of the proxy reports no headers with a request"


class RequestDetail(DetailScreen):
    def __init__(self, request: RequestServed) -> None:
        super().__init__("Request", request_renderable(request))
        self.request = request


def request_renderable(request: RequestServed) -> RenderableType:
    status_style = _status_style(request.status)
    summary = Text.assemble(
        (request.method, "bold"),
        " ",
        mask_path(request.path),
        "\n",
        ("status ", "dim"),
        (str(request.status), status_style),
        ("   took ", "dim"),
        latency(request.duration_ms),
        ("   at ", "dim"),
        clock(request.ts),
    )
    addon_error = getattr(request, "addon_error", "")
    if addon_error:
        summary.append("\n")
        summary.append(f"the add-on did not answer ({addon_error}): the proxy answered 502", "red")
    parts: list[RenderableType] = [summary, Text()]
    parts.extend(_verdict(request.jwt))
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
    return Group(*parts)


def _verdict(verdict: Mapping[str, Any] | None) -> list[RenderableType]:
    if verdict is None:
        none = "none: the request carried no Connect JWT"
        return [Text.assemble(("JWT  ", "bold"), (none, "dim"))]
    verified = verdict.get("verified") is True
    label = Text(verdict_label(dict(verdict)), "green" if verified else "bold red")
    lines: list[RenderableType] = [Text.assemble(("JWT  ", "bold"), label)]
    # The sentence that explains the verdict first, then its hint, then the evidence.
    explained = {"reason": verdict.get("reason"), "hint": verdict.get("hint")}
    rest = {k: v for k, v in verdict.items() if k not in ("verified", "verdict", "reason", "hint")}
    rows = {k: v for k, v in explained.items() if v} | masked_mapping(rest)
    if rows:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="cyan", no_wrap=True)
        table.add_column(overflow="fold")
        for key, value in rows.items():
            table.add_row("  " + key.replace("_", " "), _value(value))
        lines.append(table)
    return lines


def _status_style(status: int) -> str:
    if status >= 500:
        return "bold red"
    return "yellow" if status >= 400 else "green"


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
