"""``--log-format json``: one JSON object per event per line, for scripts and CI."""

from __future__ import annotations

import json
from typing import TextIO

from ..events import Event

__all__ = ["JsonLinesRenderer"]


class JsonLinesRenderer:
    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def __call__(self, event: Event) -> None:
        self._stream.write(json.dumps(event.to_dict(), ensure_ascii=False, default=str) + "\n")
        self._stream.flush()
