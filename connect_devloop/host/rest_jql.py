"""A small subset of JQL for the emulated Jira's search: enough for what apps usually ask.

Clauses ``field operator value`` joined with ``AND``, ``OR``, ``NOT`` and parentheses, then an
optional ``ORDER BY field [ASC|DESC], ...``. Fields: ``project``, ``key`` (``issuekey``), ``id``,
``summary``, ``description``, ``text``, ``status``, ``issuetype`` (``type``), ``labels``,
``assignee``, ``reporter``, ``created``, ``updated``. Operators: ``=``, ``!=``, ``IN``,
``NOT IN``, ``~``, ``!~``, ``IS [NOT] EMPTY``, and ``<``, ``<=``, ``>``, ``>=`` for ``key``,
``id``, ``created`` and ``updated`` (dates as ``2024-01-31``, ``"2024/01/31 10:00"`` or
relative ``-1d``, ``-2w``, ``-3h``, ``-15m``; ``now()``). ``currentUser()`` names the caller.
``~`` matches a case-insensitive substring (Jira matches words).

Mistakes get Jira's messages (``Field 'x' does not exist or you do not have permission to view
it.``, ``The value 'X' does not exist for the field 'project'.``, ``Error in the JQL Query: ...``);
what Jira knows but this subset does not gets a message that says so.

Without ``ORDER BY`` results come newest key first (the emulator's choice). ``ORDER BY created``
and ``updated`` sort newest first unless ``ASC`` is given, other fields A to Z, as Jira's
default sort orders do.
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from .product import Issue, Product

__all__ = ["JqlError", "JqlQuery", "parse_jql"]

Predicate = Callable[["Issue"], bool]

OPERATORS: Final = ("=", "!=", "<", ">", "<=", ">=", "~", "!~", "IN", "NOT IN", "IS", "IS NOT")
FIELD_ALIASES: Final = {"issuekey": "key", "type": "issuetype"}
KNOWN_FIELDS: Final = frozenset(
    {
        "project",
        "key",
        "id",
        "summary",
        "description",
        "text",
        "status",
        "issuetype",
        "labels",
        "assignee",
        "reporter",
        "created",
        "updated",
    }
)
# Fields real Jira has that this subset does not search on.
OTHER_JIRA_FIELDS: Final = frozenset(
    {
        "priority",
        "resolution",
        "resolved",
        "due",
        "duedate",
        "component",
        "fixversion",
        "affectedversion",
        "sprint",
        "parent",
        "creator",
        "watcher",
        "comment",
        "environment",
        "statuscategory",
        "category",
        "filter",
        "attachments",
        "worklogdate",
    }
)
SORT_FIELDS: Final = frozenset(
    {"key", "id", "created", "updated", "summary", "status", "issuetype", "project", "priority"}
)
DESCENDING_BY_DEFAULT: Final = frozenset({"created", "updated"})
RELATIVE_UNITS_S: Final = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

_TOKEN = re.compile(
    r"""(?P<space>\s+)
      | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<open_string>["'])
      | (?P<op>!=|!~|>=|<=|=|~|>|<)
      | (?P<punct>[(),]|!(?![=~]))
      | (?P<word>[^\s=!~<>(),"']+)""",
    re.VERBOSE,
)


class JqlError(Exception):
    """A query Jira would refuse (or this subset cannot answer); ``message`` is Jira's."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class _Token:
    kind: str  # "string", "op", "punct", "word", "end"
    text: str
    at: int  # 1-based character position

    @property
    def keyword(self) -> str:
        return self.text.upper() if self.kind == "word" else ""


@dataclass
class JqlQuery:
    """A parsed query: ``matches`` an issue, ``sort`` a list of them."""

    predicate: Predicate
    order: list[tuple[str, bool]]  # (field, descending)

    def matches(self, issue: Issue) -> bool:
        return self.predicate(issue)

    def sort(self, issues: list[Issue]) -> list[Issue]:
        ordered = sorted(issues, key=_sort_key("key"), reverse=True)
        for field_name, descending in reversed(self.order):
            ordered.sort(key=_sort_key(field_name), reverse=descending)
        return ordered


def parse_jql(text: str, product: Product, current_account_id: str | None) -> JqlQuery:
    """Parse ``text``; raise ``JqlError`` with Jira's message when it is wrong."""
    return _Parser(_tokens(text), product, current_account_id).query()


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        assert match is not None  # every character starts some token
        kind = match.lastgroup or "word"
        if kind == "open_string":
            raise JqlError(
                f"Error in the JQL Query: The quoted string '{text[position + 1 :]}' has not "
                f"been completed. (line 1, character {position + 1})"
            )
        if kind == "string":
            body = match.group()[1:-1]
            tokens.append(_Token("string", re.sub(r"\\(.)", r"\1", body), position + 1))
        elif kind != "space":
            tokens.append(_Token(kind, match.group(), position + 1))
        position = match.end()
    tokens.append(_Token("end", "", len(text) + 1))
    return tokens


class _Parser:
    def __init__(self, tokens: list[_Token], product: Product, current: str | None) -> None:
        self.tokens = tokens
        self.index = 0
        self.product = product
        self.current = current

    @property
    def token(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def expected(self, what: str) -> JqlError:
        got = self.token.text or "EOF"
        return JqlError(
            f"Error in the JQL Query: Expecting {what} but got '{got}'. "
            f"(line 1, character {self.token.at})"
        )

    def query(self) -> JqlQuery:
        predicate: Predicate = lambda issue: True  # noqa: E731 - the empty query's
        if self.token.kind != "end" and self.token.keyword != "ORDER":
            predicate = self.or_expression()
        order: list[tuple[str, bool]] = []
        if self.token.keyword == "ORDER":
            self.advance()
            if self.token.keyword != "BY":
                raise self.expected("'BY'")
            self.advance()
            order.append(self.sort_clause())
            while self.token.kind == "punct" and self.token.text == ",":
                self.advance()
                order.append(self.sort_clause())
        if self.token.kind != "end":
            raise self.expected("either 'OR' or 'AND'")
        return JqlQuery(predicate, order)

    def sort_clause(self) -> tuple[str, bool]:
        if self.token.kind not in ("word", "string"):
            raise self.expected("a field name")
        name = self.advance().text
        field_name = FIELD_ALIASES.get(name.lower(), name.lower())
        if field_name not in SORT_FIELDS:
            if field_name in KNOWN_FIELDS or field_name in OTHER_JIRA_FIELDS:
                raise JqlError(f"Not able to sort using field '{name}'.")
            raise JqlError(
                f"Field '{name}' does not exist or you do not have permission to view it."
            )
        descending = field_name in DESCENDING_BY_DEFAULT
        if self.token.keyword in ("ASC", "DESC"):
            descending = self.advance().keyword == "DESC"
        return field_name, descending

    def or_expression(self) -> Predicate:
        parts = [self.and_expression()]
        while self.token.keyword == "OR" or self.token.text == "||":
            self.advance()
            parts.append(self.and_expression())
        if len(parts) == 1:
            return parts[0]
        return lambda issue: any(part(issue) for part in parts)

    def and_expression(self) -> Predicate:
        parts = [self.not_expression()]
        while self.token.keyword == "AND" or self.token.text == "&&":
            self.advance()
            parts.append(self.not_expression())
        if len(parts) == 1:
            return parts[0]
        return lambda issue: all(part(issue) for part in parts)

    def not_expression(self) -> Predicate:
        if self.token.keyword == "NOT" or self.token.text == "!":
            self.advance()
            inner = self.not_expression()
            return lambda issue: not inner(issue)
        if self.token.kind == "punct" and self.token.text == "(":
            self.advance()
            inner = self.or_expression()
            if not (self.token.kind == "punct" and self.token.text == ")"):
                raise self.expected("')'")
            self.advance()
            return inner
        return self.clause()

    def clause(self) -> Predicate:
        if self.token.kind not in ("word", "string"):
            raise self.expected("a field name")
        name = self.advance().text
        field_name = FIELD_ALIASES.get(name.lower(), name.lower())
        if field_name not in KNOWN_FIELDS:
            if field_name in OTHER_JIRA_FIELDS:
                raise JqlError(
                    f"The emulated site's JQL cannot search on '{name}' (it knows: "
                    f"{', '.join(sorted(KNOWN_FIELDS))})."
                )
            raise JqlError(
                f"Field '{name}' does not exist or you do not have permission to view it."
            )
        operator = self.operator()
        if operator in ("IS", "IS NOT"):
            if self.token.keyword not in ("EMPTY", "NULL"):
                raise self.expected("'EMPTY' or 'NULL'")
            self.advance()
            empty = _field_is_empty(field_name, name)
            return empty if operator == "IS" else (lambda issue: not empty(issue))
        if operator in ("IN", "NOT IN"):
            values = self.value_list()
            test = _equality(self.product, field_name, name, values, self.current)
            return test if operator == "IN" else (lambda issue: not test(issue))
        value = self.value()
        if operator in ("=", "!="):
            test = _equality(self.product, field_name, name, [value], self.current)
            return test if operator == "=" else (lambda issue: not test(issue))
        if operator in ("~", "!~"):
            contains = _text_match(field_name, name, operator, value)
            return contains if operator == "~" else (lambda issue: not contains(issue))
        return _comparison(self.product, field_name, name, operator, value)

    def operator(self) -> str:
        token = self.token
        if token.kind == "op":
            self.advance()
            return token.text
        if token.keyword == "IN":
            self.advance()
            return "IN"
        if token.keyword == "IS":
            self.advance()
            if self.token.keyword == "NOT":
                self.advance()
                return "IS NOT"
            return "IS"
        if token.keyword == "NOT" and self.tokens[self.index + 1].keyword == "IN":
            self.index += 2
            return "NOT IN"
        valid = ", ".join(f"'{op}'" for op in OPERATORS[:-1])
        raise self.expected(f"operator. The valid operators are {valid} and 'IS NOT'")

    def value_list(self) -> list[str]:
        if not (self.token.kind == "punct" and self.token.text == "("):
            raise self.expected("'('")
        self.advance()
        values = [self.value()]
        while self.token.kind == "punct" and self.token.text == ",":
            self.advance()
            values.append(self.value())
        if not (self.token.kind == "punct" and self.token.text == ")"):
            raise self.expected("')'")
        self.advance()
        return values

    def value(self) -> str:
        token = self.token
        if token.kind == "string":
            self.advance()
            return token.text
        if token.kind == "word" and token.keyword not in ("AND", "OR", "ORDER", "NOT"):
            self.advance()
            # A function call: `currentUser()`, `now()`.
            if self.token.kind == "punct" and self.token.text == "(":
                closing = self.tokens[self.index + 1]
                if closing.kind == "punct" and closing.text == ")":
                    self.index += 2
                    return token.text + "()"
            return token.text
        raise self.expected("either a value, 'EMPTY' or a function")


# --- clauses ----------------------------------------------------------------------------------


def _equality(
    product: Product, field_name: str, name: str, values: list[str], current: str | None
) -> Predicate:
    if field_name in ("summary", "description", "text"):
        raise JqlError(f"The operator '=' is not supported by the '{name}' field.")
    if field_name == "project":
        keys = set()
        for value in values:
            project = product.project(value) or next(
                (p for p in product.projects.values() if p.name.lower() == value.lower()), None
            )
            if project is None:
                raise JqlError(f"The value '{value}' does not exist for the field '{name}'.")
            keys.add(project.key)
        return lambda issue: issue.project_key in keys
    if field_name in ("key", "id"):
        ids = set()
        for value in values:
            found = product.issue(value)
            if found is None and field_name == "key" and not value.isdigit():
                raise JqlError(
                    f"An issue with key '{value.upper()}' does not exist for field '{name}'."
                )
            if found is not None:
                ids.add(found.id)
        return lambda issue: issue.id in ids
    if field_name == "status":
        names = {_named(product.statuses, value, name).name for value in values}
        return lambda issue: issue.status in names
    if field_name == "issuetype":
        names = {_named(product.issue_types, value, name).name for value in values}
        return lambda issue: issue.issue_type in names
    if field_name == "labels":
        labels = set(values)
        return lambda issue: bool(labels & set(issue.labels))
    if field_name in ("assignee", "reporter"):
        accounts = {_account(product, value, name, current) for value in values}
        attribute = "assignee_account_id" if field_name == "assignee" else "reporter_account_id"
        return lambda issue: getattr(issue, attribute) in accounts
    # created, updated
    moments = {_moment(value, name) for value in values}
    return lambda issue: _timestamp_of(issue, field_name) in moments


def _named(items: Mapping[str, Any], value: str, name: str) -> Any:
    item = items.get(value.lower()) or next(
        (entry for entry in items.values() if getattr(entry, "id", None) == value), None
    )
    if item is None:
        raise JqlError(f"The value '{value}' does not exist for the field '{name}'.")
    return item


def _account(product: Product, value: str, name: str, current: str | None) -> str | None:
    if value.lower() == "currentuser()":
        return current
    user = (
        product.user(value)
        or product.user_by_name(value)
        or next(
            (u for u in product.users.values() if u.display_name.lower() == value.lower()), None
        )
    )
    if user is None:
        raise JqlError(f"The value '{value}' does not exist for the field '{name}'.")
    return user.account_id


def _text_match(field_name: str, name: str, operator: str, value: str) -> Predicate:
    if field_name not in ("summary", "description", "text"):
        raise JqlError(f"The operator '{operator}' is not supported by the '{name}' field.")
    needle = value.lower().strip("*")

    def texts(issue: Issue) -> list[str]:
        if field_name == "summary":
            return [issue.summary]
        if field_name == "description":
            return [issue.description or ""]
        return [issue.summary, issue.description or "", *(c.body for c in issue.comments)]

    return lambda issue: any(needle in text.lower() for text in texts(issue))


def _comparison(
    product: Product, field_name: str, name: str, operator: str, value: str
) -> Predicate:
    compare: Callable[[float, float], bool] = {
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }[operator]
    if field_name in ("key", "id"):
        issue = product.issue(value)
        if issue is None:
            raise JqlError(
                f"An issue with key '{value.upper()}' does not exist for field '{name}'."
            )
        project, number = issue.project_key, issue.number
        return lambda other: other.project_key == project and compare(other.number, number)
    if field_name in ("created", "updated"):
        moment = _moment(value, name)
        return lambda issue: compare(_timestamp_of(issue, field_name), moment)
    raise JqlError(f"The operator '{operator}' is not supported by the '{name}' field.")


def _field_is_empty(field_name: str, name: str) -> Predicate:
    if field_name == "assignee":
        return lambda issue: issue.assignee_account_id is None
    if field_name == "labels":
        return lambda issue: not issue.labels
    if field_name == "description":
        return lambda issue: not issue.description
    raise JqlError(f"The operator 'IS' is not supported by the '{name}' field.")


def _moment(value: str, name: str) -> float:
    """A JQL date as milliseconds since the epoch (UTC)."""
    text = value.strip()
    if text.lower() == "now()":
        return time.time() * 1000
    relative = re.fullmatch(r"([-+]?)(\d+)([mhdw])", text)
    if relative:
        sign = -1 if relative.group(1) == "-" else 1
        offset = sign * int(relative.group(2)) * RELATIVE_UNITS_S[relative.group(3)]
        return (time.time() + offset) * 1000
    for layout in ("%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M", "%Y-%m-%d", "%Y/%m/%d"):
        try:
            return calendar.timegm(time.strptime(text, layout)) * 1000.0
        except ValueError:
            continue
    raise JqlError(
        f"Date value '{value}' for field '{name}' is invalid. Valid formats include: "
        "'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format "
        "e.g. '-5d', '4w 2d'."
    )


def _timestamp_of(issue: Issue, field_name: str) -> float:
    return float(issue.created_ms if field_name == "created" else issue.updated_ms)


def _sort_key(field_name: str) -> Callable[[Issue], tuple[object, ...]]:
    def key(issue: Issue) -> tuple[object, ...]:
        if field_name in ("key", "id"):
            return (issue.project_key, issue.number)
        if field_name in ("created", "updated"):
            return (_timestamp_of(issue, field_name), issue.number)
        if field_name == "summary":
            return (issue.summary.lower(),)
        if field_name == "status":
            return (issue.status,)
        if field_name == "issuetype":
            return (issue.issue_type,)
        if field_name == "project":
            return (issue.project_key,)
        return ()  # priority: every emulated issue is Medium

    return key
