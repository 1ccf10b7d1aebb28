"""The requests table's filter (``/``): a few words, every one of which a row must match.

Pure, so the syntax is tested without a terminal (docs/tui.md lists it):

- a free word matches the path, the method, the JWT verdict or the tenant (case-insensitive,
  anywhere in them);
- ``path:/foo``, ``method:post``, ``jwt:expired``, ``tenant:6b1c`` match that field only;
- ``status:404``, ``status:4xx``, ``status:40x``, ``status:5`` match the status digit by digit,
  ``x`` for any digit; a bare ``404`` or ``4xx`` is a status too;
- ``-`` before a term excludes what it matches (``-path:atlassian-connect.json``);
- ``jwt:verified`` is only a verified token (not "not verified"), ``jwt:none`` a request
  without one, ``jwt:rejected`` any token that did not verify.

Quotes keep words together (``jwt:"qsh mismatch"``). What is being typed is filtered live, so
half a term must not fail: an unclosed quote reads as if it were closed, and an unknown
``name:`` is a free word.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass

from ..events import RequestServed
from ..redact import mask_path
from ..traffic.view import tenant_of, verdict_word

__all__ = ["RequestFilter"]

_STATUS = re.compile(r"[1-5][0-9xX]{0,2}")
_BARE_STATUS = re.compile(r"[1-5][0-9xX]{2}")
_FIELDS = ("path", "method", "status", "jwt", "tenant")


@dataclass(frozen=True)
class _Term:
    field: str  # one of _FIELDS, or "" for a free word
    value: str  # lower-cased
    negated: bool = False

    def matches(self, request: RequestServed) -> bool:
        return _MATCHERS[self.field](request, self.value) != self.negated


@dataclass(frozen=True)
class RequestFilter:
    """The parsed filter; an empty one matches every request."""

    text: str
    terms: tuple[_Term, ...]

    @classmethod
    def parse(cls, text: str) -> RequestFilter:
        terms = (_term(word) for word in _words(text))
        return cls(text.strip(), tuple(term for term in terms if term is not None))

    def __bool__(self) -> bool:
        return bool(self.terms)

    def matches(self, request: RequestServed) -> bool:
        return all(term.matches(request) for term in self.terms)


def _words(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:  # an unclosed quote, while it is being typed
        try:
            return shlex.split(text + '"')
        except ValueError:
            return text.split()


def _term(word: str) -> _Term | None:
    """None for a term still being typed (``status:``), which filters nothing yet."""
    negated = word.startswith("-") and len(word) > 1
    if negated:
        word = word[1:]
    name, sep, value = word.partition(":")
    name = name.lower()
    if sep and name in _FIELDS:
        if not value:
            return None
        if name == "status" and not _STATUS.fullmatch(value):
            return _Term("", word.lower(), negated)  # not a status: maybe a path's words
        return _Term(name, value.lower(), negated)
    if _BARE_STATUS.fullmatch(word):
        return _Term("status", word.lower(), negated)
    return _Term("", word.lower(), negated)


def _path(request: RequestServed, value: str) -> bool:
    # The path as the table shows it: a token in it is never matched by the filter.
    return value in mask_path(request.path).lower()


def _method(request: RequestServed, value: str) -> bool:
    return request.method.lower().startswith(value)


def _status(request: RequestServed, value: str) -> bool:
    digits = str(request.status)
    return all(want in ("x", have) for want, have in zip(value, digits, strict=False))


def _jwt(request: RequestServed, value: str) -> bool:
    verdict = request.jwt
    if value == "none":
        return verdict is None
    if value == "rejected":
        return verdict is not None and verdict.get("verified") is not True
    return _verdict(request, value)


def _verdict(request: RequestServed, value: str) -> bool:
    verdict = request.jwt
    if value == "verified":
        # Not a substring: "not verified" would match it, and means the opposite.
        return verdict is not None and verdict.get("verified") is True
    return value in verdict_word(verdict).lower()


def _tenant(request: RequestServed, value: str) -> bool:
    verdict = request.jwt
    if verdict is None:
        return False
    # The host's name (dev-jira) is easier to type than its clientKey, and names the same.
    names = (tenant_of(verdict), str(verdict.get("host") or ""))
    return any(value in name.lower() for name in names if name)


def _anything(request: RequestServed, value: str) -> bool:
    return (
        _path(request, value)
        or value in request.method.lower()
        or _verdict(request, value)
        or _tenant(request, value)
    )


_MATCHERS: dict[str, Callable[[RequestServed, str], bool]] = {
    "": _anything,
    "path": _path,
    "method": _method,
    "status": _status,
    "jwt": _jwt,
    "tenant": _tenant,
}
