"""Renderers of the event stream for a log: plain text lines or JSON lines."""

from .jsonl import JsonLinesRenderer
from .text import TextRenderer, format_event

__all__ = ["JsonLinesRenderer", "TextRenderer", "format_event"]
