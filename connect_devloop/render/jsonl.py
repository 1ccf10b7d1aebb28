"""``--log-format json``: one JSON object per event per line, for scripts and CI."""

from __future__ import annotations

import json
from typing import TextIO

from ..events import Event
from .output import LineOutput

__all__ = ["JsonLinesRenderer"]

# One encoder for every line: ``json.dumps`` with any non-default option builds a new
# JSONEncoder per call, a third of the cost of a short line.
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)


class JsonLinesRenderer:
    """``buffered``: lines are written in batches, flushed at the end of the event loop's
    turn (see ``output.LineOutput``); else each line is written and flushed at once."""

    def __init__(self, stream: TextIO, *, buffered: bool = False) -> None:
        self.output = LineOutput(stream, buffered=buffered)

    def __call__(self, event: Event) -> None:
        self.output.write(_ENCODER.encode(event.to_dict()) + "\n")

    def flush(self) -> None:
        self.output.flush()
