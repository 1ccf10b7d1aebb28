"""``Secret``: a password, API token or shared secret that never shows.

Printing, logging, ``repr`` or an f-string shows ``***``; only ``reveal()`` gives the value, at the
one place that builds a request. It lives alone, below ``config``, ``credentials`` and ``keychain``,
so each can import it without importing the others.
"""

from __future__ import annotations

__all__ = ["Secret"]


class Secret:
    """A string that shows as ``***`` everywhere except through ``reveal()``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)
