"""The part of JQL a webhook's ``filter`` needs on an emulated site: clauses about one issue.

    issue_filter("project = TEST AND issuetype in (Bug, Task)").matches(issue)

Supported: the fields ``project``, ``issuetype`` (``type``), ``status``, ``priority``, ``key``
(``issuekey``, ``id``), ``assignee``, ``reporter``, ``creator``, ``labels``; the operators
``=``, ``!=``, ``in``, ``not in``, ``is`` and ``is not`` (with ``EMPTY`` or ``NULL``); ``AND``,
``OR``, ``NOT`` and parentheses. Names compare case-insensitively, as in Jira, and match a
project by key, id or name, an issue type, status or priority by name or id, a user by
accountId, display name or e-mail address.

Anything else (functions such as ``currentUser()``, ``~``, ``<``, ``>``, ``WAS``,
``CHANGED``, ``ORDER BY``, other fields, custom fields) raises ``UnsupportedJql``: the caller
decides what an unsupported filter means (webhooks.py delivers and says it did not filter).
Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["IssueFilter", "UnsupportedJql", "issue_filter"]

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<op>!=|!~|<=|>=|=|~|<|>)
      | (?P<punct>[(),])
      | (?P<word>[^\s"'(),=!~<>]+)
    )""",
    re.VERBOSE,
)
_FIELD_ALIASES = {
    "project": "project",
    "issuetype": "issuetype",
    "type": "issuetype",
    "status": "status",
    "priority": "priority",
    "key": "key",
    "issuekey": "key",
    "id": "key",
    "assignee": "assignee",
    "reporter": "reporter",
    "creator": "creator",
    "labels": "labels",
}
_EMPTY_WORDS = ("empty", "null")

Predicate = Callable[[Mapping[str, Any]], bool]


class UnsupportedJql(ValueError):
    """The filter uses JQL the emulated site does not evaluate; the message says which part."""


@dataclass(frozen=True)
class IssueFilter:
    """A parsed filter; ``matches`` takes an issue as Jira's REST API shows it
    (``{"id", "key", "fields": {"project": {...}, "issuetype": {...}, ...}}``)."""

    text: str
    _predicate: Predicate

    def matches(self, issue: Mapping[str, Any]) -> bool:
        return self._predicate(issue)


def issue_filter(text: str) -> IssueFilter:
    """Parse ``text``; raise ``UnsupportedJql`` for what is not in the subset above."""
    tokens = _tokenize(text)
    parser = _Parser(tokens)
    predicate = parser.parse_or()
    if parser.position < len(tokens):
        word = tokens[parser.position][1]
        if word.lower() == "order":
            raise UnsupportedJql("ORDER BY means nothing in a webhook filter")
        raise UnsupportedJql(f"unexpected {word!r}")
    return IssueFilter(text, predicate)


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise UnsupportedJql(f"cannot read {text[position:].strip()[:20]!r}")
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind == "string":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        tokens.append((kind, value))
        position = match.end()
    if not tokens:
        raise UnsupportedJql("the filter is empty")
    return tokens


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.position = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise UnsupportedJql("the filter ends too early")
        self.position += 1
        return token

    def keyword(self, *words: str) -> bool:
        token = self.peek()
        if token is not None and token[0] == "word" and token[1].lower() in words:
            self.position += 1
            return True
        return False

    def punct(self, mark: str) -> bool:
        if self.peek() == ("punct", mark):
            self.position += 1
            return True
        return False

    def parse_or(self) -> Predicate:
        parts = [self.parse_and()]
        while self.keyword("or"):
            parts.append(self.parse_and())
        if len(parts) == 1:
            return parts[0]
        return lambda issue: any(part(issue) for part in parts)

    def parse_and(self) -> Predicate:
        parts = [self.parse_not()]
        while self.keyword("and"):
            parts.append(self.parse_not())
        if len(parts) == 1:
            return parts[0]
        return lambda issue: all(part(issue) for part in parts)

    def parse_not(self) -> Predicate:
        if self.keyword("not"):
            inner = self.parse_not()
            return lambda issue: not inner(issue)
        if self.punct("("):
            inner = self.parse_or()
            if not self.punct(")"):
                raise UnsupportedJql("a '(' is not closed")
            return inner
        return self.parse_clause()

    def parse_clause(self) -> Predicate:
        kind, name = self.take()
        if kind != "word" and kind != "string":
            raise UnsupportedJql(f"expected a field name, not {name!r}")
        field = _FIELD_ALIASES.get(name.lower())
        if field is None:
            raise UnsupportedJql(
                f"the field {name!r} is not evaluated by the emulated site (it knows "
                f"{', '.join(sorted(set(_FIELD_ALIASES)))})"
            )
        if self.keyword("in"):
            values = self.parse_list()
            return lambda issue: _any_equal(_values_of(issue, field), values)
        if self.keyword("not"):
            if self.keyword("in"):
                values = self.parse_list()
                return lambda issue: not _any_equal(_values_of(issue, field), values)
            raise UnsupportedJql(f"'{name} not' must be followed by 'in'")
        if self.keyword("is"):
            negate = self.keyword("not")
            if not self.keyword(*_EMPTY_WORDS):
                raise UnsupportedJql("'is' compares with EMPTY or NULL only")
            if negate:
                return lambda issue: bool(_values_of(issue, field))
            return lambda issue: not _values_of(issue, field)
        operator = self.take()
        if operator[0] == "word" and operator[1].lower() in ("was", "changed"):
            raise UnsupportedJql(f"'{operator[1].upper()}' needs an issue's history")
        if operator[0] != "op" or operator[1] not in ("=", "!="):
            raise UnsupportedJql(f"the operator {operator[1]!r} is not supported (use = or !=)")
        value = self.parse_value()
        if operator[1] == "=":
            return lambda issue: _any_equal(_values_of(issue, field), [value])
        return lambda issue: not _any_equal(_values_of(issue, field), [value])

    def parse_list(self) -> list[str | None]:
        if not self.punct("("):
            return [self.parse_value()]
        values = [self.parse_value()]
        while self.punct(","):
            values.append(self.parse_value())
        if not self.punct(")"):
            raise UnsupportedJql("a list in '(' ... ')' is not closed")
        return values

    def parse_value(self) -> str | None:
        kind, value = self.take()
        if kind == "string":
            return value
        if kind != "word":
            raise UnsupportedJql(f"expected a value, not {value!r}")
        if self.peek() == ("punct", "("):
            raise UnsupportedJql(f"functions such as {value}() are not evaluated")
        if value.lower() in _EMPTY_WORDS:
            return None
        return value


def _any_equal(names: list[set[str]], wanted: list[str | None]) -> bool:
    """True when one of the issue's values answers to one of ``wanted`` (``None`` = EMPTY)."""
    for value in wanted:
        if value is None:
            if not names:
                return True
            continue
        folded = value.casefold()
        if any(folded in aliases for aliases in names):
            return True
    return False


def _values_of(issue: Mapping[str, Any], field: str) -> list[set[str]]:
    """Each value the field has on this issue, as the set of names it answers to."""
    fields = issue.get("fields")
    fields = fields if isinstance(fields, Mapping) else {}
    if field == "key":
        return [_names(issue.get("key"), issue.get("id"))]
    value = fields.get(field)
    if field == "labels":
        labels = value if isinstance(value, list) else []
        return [_names(label) for label in labels if isinstance(label, str)]
    if not isinstance(value, Mapping):
        return [] if value in (None, "") else [_names(value)]
    if field in ("assignee", "reporter", "creator"):
        return [_names(value.get("accountId"), value.get("displayName"), value.get("emailAddress"))]
    return [_names(value.get("key"), value.get("id"), value.get("name"))]


def _names(*values: object) -> set[str]:
    return {str(value).casefold() for value in values if value not in (None, "")}
