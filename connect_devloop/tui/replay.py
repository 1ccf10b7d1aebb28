"""The outcome of a replay beside the original, and a replay that could not be sent.

The outcome is ``ReplayOutcome.to_dict()``: the two requests' summaries side by side (status,
time, JWT verdict), what was done to the token, and the difference of the response bodies. The
replay itself is a request like any other: it is in the requests table, marked ``↻ #N``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.binding import Binding

from .detail import DetailScreen
from .format import latency, status_style
from .messages import ReplayRequested

__all__ = ["ReplayFailed", "ReplayResult", "failure_renderable", "outcome_renderable"]


class ReplayResult(DetailScreen):
    def __init__(self, outcome: Mapping[str, Any]) -> None:
        original, replay = outcome["original"], outcome["replay"]
        title = f"Replay of #{original['id']} → #{replay['id']}"
        super().__init__(title, outcome_renderable(outcome))
        self.outcome = outcome


class ReplayFailed(DetailScreen):
    """Why request ``exchange_id`` was not sent; ``u`` sends it with its token as captured
    when that is the way out (``unchanged_offered``), ``edited`` as the user saved it."""

    BINDINGS = [Binding("u", "send_unchanged", "Send unchanged")]

    def __init__(
        self,
        exchange_id: int,
        message: str,
        hint: str | None,
        *,
        unchanged_offered: bool = False,
        edited: str | None = None,
    ) -> None:
        body = failure_renderable(message, hint, unchanged_offered=unchanged_offered)
        super().__init__(f"Replay of #{exchange_id} not sent", body)
        self.exchange_id = exchange_id
        self.unchanged_offered = unchanged_offered
        self.edited = edited

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "send_unchanged":
            return self.unchanged_offered
        return True

    def action_send_unchanged(self) -> None:
        self.dismiss()
        self.app.post_message(ReplayRequested(self.exchange_id, edited=self.edited, unchanged=True))


def outcome_renderable(outcome: Mapping[str, Any]) -> RenderableType:
    original, replay = outcome["original"], outcome["replay"]
    table = Table(box=None, padding=(0, 3, 0, 0), show_edge=False, header_style="bold")
    table.add_column("", style="cyan", no_wrap=True)
    table.add_column(f"original #{original['id']}", no_wrap=True)
    table.add_column(f"replay #{replay['id']}", no_wrap=True)
    table.add_row("status", _status(original["status"]), _status(replay["status"]))
    table.add_row("took", latency(original["duration_ms"]), latency(replay["duration_ms"]))
    table.add_row("JWT", _jwt(original.get("jwt", "")), _jwt(replay.get("jwt", "")))
    signing = Text.assemble(("signing  ", "bold"), outcome.get("note", ""))
    return Group(table, Text(), signing, Text(), *_diff(outcome.get("body_diff") or ""))


def failure_renderable(
    message: str, hint: str | None, *, unchanged_offered: bool = False
) -> RenderableType:
    parts: list[RenderableType] = [Text(message, "bold red")]
    if unchanged_offered:
        # The hint names the command line's --unchanged; here it is a key.
        parts += [
            Text(),
            Text.assemble(
                ("u", "bold"),
                " sends it with the token as captured (the add-on rejects it once it has expired).",
            ),
        ]
    elif hint:
        parts += [Text(), Text(f"hint: {hint}", "dim")]
    return Group(*parts)


def _status(status: int) -> Text:
    return Text(str(status), status_style(status))


def _jwt(word: str) -> Text:
    if not word:
        return Text("—", "dim")
    if word == "verified":
        return Text("✔ verified", "green")
    return Text(f"✖ {word}", "red")


def _diff(diff: str) -> list[RenderableType]:
    if not diff:
        return [Text.assemble(("Body  ", "bold"), ("the same", "dim"))]
    text = Text()
    for number, line in enumerate(diff.splitlines()):
        if number:
            text.append("\n")
        text.append(line, _diff_style(line))
    return [Text.assemble(("Body  ", "bold"), ("differs:", "yellow")), text]


def _diff_style(line: str) -> str:
    if line.startswith(("---", "+++")):
        return "bold"
    if line.startswith("@@"):
        return "cyan"
    if line.startswith("+"):
        return "green"
    return "red" if line.startswith("-") else ""
