"""Renderers of the event stream for a log: plain text lines or JSON lines."""

from .jsonl import JsonLinesRenderer
from .output import LineOutput, flush_all
from .text import TextRenderer, format_event

__all__ = ["JsonLinesRenderer", "LineOutput", "TextRenderer", "flush_all", "format_event"]
