"""A captured exchange on the request card: the decoded JWT, then the request and the response
with their headers and bodies.

Renders ``traffic.view.detail`` (already masked and decoded: JSON pretty-printed, form fields
one a line, HTML and binary summarised), so the card says what ``connect-dev requests`` and the
HAR export say. Pure functions of that dict, tested without a terminal.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import RenderableType
from rich.highlighter import JSONHighlighter
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from .format import status_style

__all__ = ["body_renderable", "decoded_jwt", "exchange_parts"]

_JSON = JSONHighlighter()  # regular expressions over the text: cheap, unlike a lexer
_INDENT = (0, 0, 0, 2)


def exchange_parts(detail: Mapping[str, Any]) -> list[RenderableType]:
    """The request and the response as captured, each with its headers and body."""
    request, response = detail["request"], detail["response"]
    asked = Text.assemble(("Request", "bold"), ("  ", ""), (request["http_version"], "dim"))
    answered = Text.assemble(
        ("Response", "bold"),
        "  ",
        (f"{response['status']} {response['reason']}".strip(), status_style(response["status"])),
    )
    if response.get("local"):
        answered.append("  answered by the proxy, not the add-on", "dim")
    parts: list[RenderableType] = [asked, _headers(request["headers"])]
    parts += body_renderable(request["body"])
    parts += [Text(), answered, _headers(response["headers"])]
    parts += body_renderable(response["body"])
    return parts


def body_renderable(body: Mapping[str, Any]) -> list[RenderableType]:
    """``Body`` with its type and size, then the body as ``view.body_of`` shows it."""
    kind, shown = body["kind"], body["shown"]
    if kind == "empty":
        return [Text.assemble(("  Body  ", "bold"), ("empty", "dim"))]
    about = [body.get("content_type") or "no Content-Type", f"{body['size']:,} bytes"]
    lines: list[RenderableType] = [Text.assemble(("  Body  ", "bold"), (" · ".join(about), "dim"))]
    if body.get("note"):
        style = "yellow" if body.get("truncated") else "dim"
        lines.append(Padding(Text(body["note"], style), _INDENT))
    if kind == "json":
        shown_text = _JSON(Text(shown))
    elif kind == "form":
        shown_text = _form(shown)
    elif kind in ("html", "binary"):
        shown_text = Text(shown, "italic")  # a summary: the page or the bytes are in the HAR
    else:
        shown_text = Text(shown)
    lines.append(Padding(shown_text, (0, 0, 0, 4)))
    return lines


def decoded_jwt(jwt_detail: Mapping[str, Any] | None) -> list[tuple[str, Text]]:
    """The token as decoded (not verified: the verdict beside it did that), as rows of the
    card's JWT grid: where it was, the qsh it carries next to the one computed for this
    request, its lifetime, header and claims."""
    if jwt_detail is None:
        return []
    rows: list[tuple[str, Text]] = [("carried in", Text(jwt_detail["carried_in"]))]
    if "error" in jwt_detail:
        rows.append(("decoded", Text(jwt_detail["error"], "red")))
        return rows
    match = jwt_detail.get("qsh_match", "")
    mark = (
        Text("✔ match", "green")
        if match == "match"
        else Text("✖ mismatch", "bold red")
        if match == "mismatch"
        else Text(match, "dim")
    )
    carried = jwt_detail.get("qsh_carried")
    rows.append(("qsh carried", Text.assemble(str(carried) if carried else "—", "  ", mark)))
    rows.append(("qsh computed", Text(str(jwt_detail.get("qsh_computed", "")))))
    rows.append(("canonical", Text(str(jwt_detail.get("canonical_request", "")))))
    if "expires" in jwt_detail:
        expires = Text(jwt_detail["expires"])
        if jwt_detail.get("expired"):
            expires.append("  expired", "red")
        if "lifetime_s" in jwt_detail:
            expires.append(f"  lifetime {jwt_detail['lifetime_s']} s", "dim")
        rows.append(("expires", expires))
    rows.append(("header", _JSON(Text(json.dumps(jwt_detail.get("header", {}))))))
    claims = json.dumps(jwt_detail.get("claims", {}), indent=2, ensure_ascii=False)
    rows.append(("claims", _JSON(Text(claims))))
    return rows


def _headers(headers: Sequence[Sequence[str]]) -> RenderableType:
    if not headers:
        return Text("  no headers", "dim")
    return _grid([(name, Text(value)) for name, value in headers])


def _form(shown: str) -> Text:
    text = Text()
    for number, line in enumerate(shown.splitlines()):
        name, _, value = line.partition(" = ")
        if number:
            text.append("\n")
        text.append(name, "cyan")
        text.append(" = ", "dim")
        text.append(value)
    return text


def _grid(rows: Sequence[tuple[str, Text]]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="cyan", no_wrap=True)
    table.add_column(overflow="fold")
    for name, value in rows:
        table.add_row("  " + name, value)
    return table
