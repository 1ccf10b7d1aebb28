"""``manifest.yml`` as YAML: parsed keeping comments, key order and the line and column of every
node (ruamel.yaml's round-trip mode), written back the same way, and replaced atomically.

Paths name nodes as descriptor problems do: ``$`` for the document, ``$.app.connect.key``,
``$.remotes[0].baseUrl``, ``$.connectModules["jira:generalPages"][0].url`` (a member whose name
is not a plain identifier is quoted in brackets).
"""

from __future__ import annotations

import contextlib
import datetime
import io
import itertools
import json
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

__all__ = [
    "YamlSyntaxError",
    "dump_yaml",
    "member_path",
    "new_yaml",
    "node_positions",
    "parse_yaml",
    "to_plain",
    "write_atomically",
]

# Forge's own manifests (and FORGE.md) indent mappings by 2 and list items by 2 more:
#   remotes:
#     - key: connect
MAPPING_INDENT = 2
SEQUENCE_INDENT = 4
SEQUENCE_DASH_OFFSET = 2


class YamlSyntaxError(Exception):
    """The text is not YAML (or not one document). ``line``/``column`` are 1-based."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None):
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


def new_yaml(
    mapping: int = MAPPING_INDENT,
    sequence: int = SEQUENCE_INDENT,
    offset: int = SEQUENCE_DASH_OFFSET,
) -> YAML:
    """A round-trip YAML 1.2 reader and writer (as the ``yaml`` package Forge uses reads 1.2:
    ``yes`` and ``on`` stay strings)."""
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    # Never fold a long URL or description onto a second line.
    yaml.width = 1 << 16
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    return yaml


def parse_yaml(text: str) -> Any:
    """The round-trip tree of ``text`` (``CommentedMap``, ``CommentedSeq``, scalars), or
    ``YamlSyntaxError`` with the place of the first problem."""
    try:
        return new_yaml().load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = " ".join(part for part in (exc.context, exc.problem) if part) or str(exc)
        if mark is None:
            raise YamlSyntaxError(message) from exc
        raise YamlSyntaxError(message, mark.line + 1, mark.column + 1) from exc
    except YAMLError as exc:  # e.g. a control character the reader refuses
        raise YamlSyntaxError(str(exc).strip().splitlines()[0]) from exc
    except RecursionError as exc:
        raise YamlSyntaxError("mappings and lists are nested too deep") from exc


def dump_yaml(tree: Any, *, like: str | None = None) -> str:
    """``tree`` as YAML text; with ``like`` (the text it was read from), in that text's
    indentation."""
    mapping, sequence, offset = (
        _indentation(like)
        if like
        else (
            MAPPING_INDENT,
            SEQUENCE_INDENT,
            SEQUENCE_DASH_OFFSET,
        )
    )
    stream = io.StringIO()
    new_yaml(mapping, sequence, offset).dump(tree, stream)
    return stream.getvalue()


_COMMENT = re.compile(r"(^|\s+)#.*$")
_ITEM = re.compile(r" *- +(?=\S)")


def _indentation(text: str) -> tuple[int, int, int]:
    """The mapping indent and list layout (``sequence``: the item's content, ``offset``: its
    dash, both from the parent key) of a hand-written file, so that a rewrite does not re-indent
    every line the user wrote. ruamel.yaml writes one layout per file: this one is read from the
    first block mapping and the first block list under a key."""
    mapping: int | None = None
    layout: tuple[int, int] | None = None
    lines = [_COMMENT.sub("", line).rstrip() for line in text.splitlines()]
    lines = [line for line in lines if line.strip()]
    for parent, line in itertools.pairwise(lines):
        if not parent.endswith(":"):
            continue
        parent_indent = len(parent) - len(parent.lstrip())
        indent = len(line) - len(line.lstrip())
        item = _ITEM.match(line)
        if item is not None:
            if layout is None and indent >= parent_indent:
                layout = (item.end() - parent_indent, indent - parent_indent)
        elif mapping is None and indent > parent_indent and not parent.lstrip().startswith("-"):
            mapping = indent - parent_indent
        if mapping is not None and layout is not None:
            break
    sequence, offset = layout or (SEQUENCE_INDENT, SEQUENCE_DASH_OFFSET)
    # ruamel.yaml needs room for the dash and a space.
    return mapping or MAPPING_INDENT, max(sequence, offset + 2), offset


def to_plain(node: Any) -> Any:
    """``node`` as plain JSON-like data: dicts, lists, str, int, float, bool, None. A date is
    its ISO text, as the ``yaml`` package that Forge uses reads it."""
    if isinstance(node, dict):
        return {str(key): to_plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [to_plain(item) for item in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, str):
        return str(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, datetime.date):
        return node.isoformat()
    return str(node)


def member_path(parent: str, key: object) -> str:
    name = str(key)
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", name):
        return f"{parent}.{name}"
    return f"{parent}[{json.dumps(name)}]"


def node_positions(tree: Any) -> dict[str, tuple[int, int]]:
    """Each path in ``tree`` → its 1-based (line, column): for a member, where its key is (where
    an editor's cursor should go), for a list item, where the item starts."""
    positions: dict[str, tuple[int, int]] = {}
    if isinstance(tree, CommentedMap | CommentedSeq):
        positions["$"] = (tree.lc.line + 1, tree.lc.col + 1)
    for path, line, column in _walk(tree, "$"):
        positions.setdefault(path, (line + 1, column + 1))
    return positions


def _walk(node: Any, path: str) -> Iterator[tuple[str, int, int]]:
    # A stack, not recursion: the parser already refused what nests too deep for Python, but
    # an alias can make a node appear many times; each appearance is visited once per path.
    stack: list[tuple[Any, str]] = [(node, path)]
    while stack:
        current, where = stack.pop()
        if isinstance(current, CommentedMap):
            for key, value in current.items():
                child = member_path(where, key)
                with contextlib.suppress(KeyError, TypeError, AttributeError):
                    line, column = current.lc.key(key)
                    yield child, line, column
                stack.append((value, child))
        elif isinstance(current, CommentedSeq):
            for index, item in enumerate(current):
                child = f"{where}[{index}]"
                with contextlib.suppress(KeyError, TypeError, AttributeError, IndexError):
                    line, column = current.lc.item(index)
                    yield child, line, column
                stack.append((item, child))


def write_atomically(path: Path, text: str) -> None:
    """Replace the file at ``path`` with ``text`` in one step (a temporary file beside it, then a
    rename): an editor or ``forge deploy`` reading it meanwhile sees the old or the new file,
    never half of one. The file keeps its mode; a new one gets 0666 less the umask, as an
    editor would create it. A symbolic link is written through, not replaced."""
    target = Path(os.path.realpath(path))
    try:
        mode: int | None = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = None
    if mode is None:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    descriptor, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, mode)
        os.replace(temp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
