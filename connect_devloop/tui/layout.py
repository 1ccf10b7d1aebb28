"""How the panels fit a terminal of any size: pure functions of widths, tested without one.

A table's columns are sized to their content; when the panel is too narrow for all of them, the
least useful go first (``Column.keep``: lower goes sooner), and one column (``Column.fill``)
takes what is left, down to its ``minimum``. Paths are shortened in the middle, so the file name
stays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rich.cells import cell_len

__all__ = ["CELL_PADDING", "ESSENTIAL", "Column", "elide_middle", "fit_columns"]

CELL_PADDING = 2  # a DataTable cell has one column of padding each side
ESSENTIAL = 100  # a column kept at least this much is never dropped: the table is cut instead


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    keep: int  # priority: when space runs out, the lowest is dropped first
    maximum: int | None = None  # content wider than this is cut (a tenant's first digits do)
    fill: bool = False  # takes the width the others leave
    minimum: int = 0  # for the fill column: below this it is dropped like the others


def fit_columns(
    columns: Sequence[Column], content: Mapping[str, int], available: int
) -> tuple[tuple[str, int], ...]:
    """(key, width) of the columns shown in ``available`` cells, in their order. ``content``:
    the widest cell of each column (its label counts too)."""
    natural = {
        column.key: _capped(max(content.get(column.key, 0), cell_len(column.label)), column)
        for column in columns
    }
    shown = list(columns)
    while shown:
        needed = sum(
            (max(column.minimum, cell_len(column.label)) if column.fill else natural[column.key])
            + CELL_PADDING
            for column in shown
        )
        droppable = [column for column in shown if column.keep < ESSENTIAL]
        if needed <= available or not droppable:
            break
        shown.remove(min(droppable, key=lambda column: column.keep))
    rest = available - sum(
        natural[column.key] + CELL_PADDING for column in shown if not column.fill
    )
    return tuple(
        (
            column.key,
            max(rest - CELL_PADDING, column.minimum, cell_len(column.label))
            if column.fill
            else natural[column.key],
        )
        for column in shown
    )


def _capped(width: int, column: Column) -> int:
    return width if column.maximum is None else min(width, column.maximum)


def elide_middle(path: str, width: int) -> str:
    """``path`` in ``width`` cells: its start and its end with ``…`` between them; the file
    name is kept whole even when it alone is wider."""
    if cell_len(path) <= width:
        return path
    head, sep, name = path.rpartition("/")
    if not sep:
        return path
    room = width - cell_len(name) - 2  # the ellipsis and the slash before the name
    if room < 0:
        return name
    left = (room + 1) // 2
    right = room - left
    return head[:left] + "…" + head[len(head) - right :] + "/" + name
