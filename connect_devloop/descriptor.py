"""The add-on descriptor: parse, validate, render for a public URL. Pure: no I/O but ``load``.

A ``Revision`` is one valid version of ``atlassian-connect.json`` as saved by the user, identified
by the digest of its bytes. ``render`` produces what the proxy serves to hosts: every
``{{localBaseUrl}}``, ``{{appKey}}`` and ``{{environment}}`` token replaced (all occurrences,
unlike atlassian-connect-express which replaces only the first one in each string) and ``baseUrl``
set to the public URL.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import DescriptorError, Problem

__all__ = [
    "Revision",
    "digest_of",
    "load",
    "parse",
    "render",
    "render_bytes",
    "validate",
]

KEY_PATTERN = re.compile(r"^[a-zA-Z0-9\-._]+$")
BASE_URL_PATTERN = re.compile(r"^((https|http)://.+|)$")
AUTHENTICATION_TYPES = {"jwt", "JWT", "none", "NONE"}
SCOPES = {
    "none",
    "read",
    "write",
    "delete",
    "project_admin",
    "space_admin",
    "admin",
    "act_as_user",
    "access_email_addresses",
}
LIFECYCLE_EVENTS = ("installed", "uninstalled", "enabled", "disabled")
TOKENS = ("{{localBaseUrl}}", "{{appKey}}", "{{environment}}")


@dataclass(frozen=True)
class Revision:
    """One saved, valid version of the descriptor."""

    path: str
    raw: bytes
    document: dict[str, Any]
    digest: str
    warnings: tuple[Problem, ...] = ()

    @property
    def key(self) -> str:
        return str(self.document["key"])

    @property
    def lifecycle(self) -> dict[str, str]:
        lifecycle = self.document.get("lifecycle")
        return dict(lifecycle) if isinstance(lifecycle, dict) else {}


def digest_of(raw: bytes) -> str:
    """Short content digest (12 hex digits of SHA-256), like a git short hash."""
    return hashlib.sha256(raw).hexdigest()[:12]


def load(path: Path) -> Revision:
    """Read and parse ``path``; raise ``DescriptorError`` naming the file, line and column."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise DescriptorError(
            str(path),
            [Problem("$", "file not found")],
            hint="Check `descriptor` in connect-dev.toml; it is relative to the config file.",
        ) from exc
    except OSError as exc:
        raise DescriptorError(str(path), [Problem("$", f"cannot read: {exc.strerror}")]) from exc
    return parse(raw, path=str(path))


def _json_problem(text: str, error: json.JSONDecodeError) -> Problem:
    """The JSON syntax error, said the same on every Python. A trailing comma is the classic
    slip in a hand-edited descriptor; Python 3.13 names it at the comma, while 3.11 and 3.12
    say "Expecting property name" (or "value") at the bracket after it: say what 3.13 says."""
    position = error.pos
    closing = text[position : position + 1]
    before = text[:position].rstrip()
    if closing in ("}", "]") and before.endswith(","):
        position = len(before) - 1
        kind = "object" if closing == "}" else "array"
        message = f"Illegal trailing comma before end of {kind}"
    else:
        message = error.msg
    line = text.count("\n", 0, position) + 1
    column = position - text.rfind("\n", 0, position)
    return Problem("$", f"invalid JSON: {message}", line, column)


def parse(raw: bytes, *, path: str = "atlassian-connect.json") -> Revision:
    """Parse and validate descriptor bytes into a ``Revision``, or raise ``DescriptorError``."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DescriptorError(
            path, [Problem("$", f"not UTF-8 text (byte {exc.start})")], hint="Save it as UTF-8."
        ) from exc
    if not text.strip():
        raise DescriptorError(
            path, [Problem("$", "file is empty")], hint="A descriptor is a JSON object."
        )
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DescriptorError(
            path,
            [_json_problem(text, exc)],
            hint="Fix the JSON syntax; the last good revision stays installed meanwhile.",
        ) from exc
    problems = validate(document)
    positions = _positions(text)
    located = [_locate(problem, positions) for problem in problems]
    errors = [p for p in located if p.severity == "error"]
    warnings = tuple(p for p in located if p.severity != "error")
    if errors:
        hint = (
            'A descriptor is a JSON object: {"key": ..., "baseUrl": ..., ...}.'
            if errors[0].path == "$"
            else "Fix the fields named above; the last good revision stays installed."
        )
        raise DescriptorError(path, errors, hint=hint)
    assert isinstance(document, dict)
    return Revision(path=path, raw=raw, document=document, digest=digest_of(raw), warnings=warnings)


def validate(document: object) -> list[Problem]:
    """The offline checks of PROTOCOL.md §6, errors and warnings (see ``Problem.severity``)."""
    if not isinstance(document, dict):
        return [Problem("$", f"must be a JSON object, not {_json_type(document)}")]
    problems: list[Problem] = []
    problems.extend(_check_key(document))
    problems.extend(_check_base_url(document))
    problems.extend(_check_authentication(document))
    problems.extend(_check_strings(document))
    problems.extend(_check_lifecycle(document))
    problems.extend(_check_scopes(document))
    if "modules" in document and not isinstance(document["modules"], dict):
        problems.append(Problem("$.modules", _type_message("object", document["modules"])))
    problems.extend(_check_api_migrations(document))
    return problems


def render(
    document: dict[str, Any], public_url: str, *, environment: str = "development"
) -> dict[str, Any]:
    """The descriptor as hosts must see it: tokens replaced, ``baseUrl`` = ``public_url``."""
    base_url = public_url.rstrip("/")
    values = {
        "{{localBaseUrl}}": base_url,
        "{{appKey}}": str(document.get("key", "")),
        "{{environment}}": environment,
    }

    def substitute(value: Any) -> Any:
        if isinstance(value, str):
            for token, replacement in values.items():
                value = value.replace(token, replacement)
            return value
        if isinstance(value, dict):
            return {key: substitute(item) for key, item in value.items()}
        if isinstance(value, list):
            return [substitute(item) for item in value]
        return value

    rendered: dict[str, Any] = substitute(copy.deepcopy(document))
    rendered["baseUrl"] = base_url
    return rendered


def render_bytes(
    document: dict[str, Any], public_url: str, *, environment: str = "development"
) -> bytes:
    """``render`` serialised as the proxy serves it."""
    rendered = render(document, public_url, environment=environment)
    return json.dumps(rendered, indent=2, ensure_ascii=False).encode("utf-8")


# --- checks -------------------------------------------------------------------------------------


def _check_key(document: dict[str, Any]) -> Iterator[Problem]:
    if "key" not in document:
        yield Problem("$.key", "required field is missing")
        return
    key = document["key"]
    if not isinstance(key, str):
        yield Problem("$.key", _type_message("string", key))
        return
    if not key:
        yield Problem("$.key", "must not be empty")
        return
    if not KEY_PATTERN.match(key):
        yield Problem("$.key", f"{key!r} may contain only letters, digits, '-', '.' and '_'")
    alias = document.get("aliasKey")
    limit = 90 if isinstance(alias, str) else 64
    if len(key) > limit:
        yield Problem("$.key", f"is {len(key)} characters long; the limit is {limit}")
    if isinstance(alias, str) and len(alias) > 32:
        yield Problem("$.aliasKey", f"is {len(alias)} characters long; the limit is 32")


def _check_base_url(document: dict[str, Any]) -> Iterator[Problem]:
    if "baseUrl" not in document:
        yield Problem("$.baseUrl", "required field is missing")
        return
    base_url = document["baseUrl"]
    if not isinstance(base_url, str):
        yield Problem("$.baseUrl", _type_message("string", base_url))
        return
    if len(base_url) > 200:
        yield Problem("$.baseUrl", f"is {len(base_url)} characters long; the limit is 200")
    # `{{localBaseUrl}}` is replaced by the public URL before any host sees it.
    if "{{" not in base_url and not BASE_URL_PATTERN.match(base_url):
        yield Problem("$.baseUrl", f"{base_url!r} must start with https:// or http://")


def _check_authentication(document: dict[str, Any]) -> Iterator[Problem]:
    if "authentication" not in document:
        yield Problem("$.authentication", 'required field is missing (e.g. {"type": "jwt"})')
        return
    authentication = document["authentication"]
    if not isinstance(authentication, dict):
        yield Problem("$.authentication", _type_message("object", authentication))
        return
    kind = authentication.get("type", "jwt")
    if kind not in AUTHENTICATION_TYPES:
        yield Problem(
            "$.authentication.type",
            f"{kind!r} is not one of jwt, none" + _suggest(str(kind), ["jwt", "none"]),
        )


def _check_strings(document: dict[str, Any]) -> Iterator[Problem]:
    for field_name, limit in (("name", 80), ("description", 1400)):
        if field_name not in document:
            continue
        value = document[field_name]
        if not isinstance(value, str):
            yield Problem(f"$.{field_name}", _type_message("string", value))
        elif len(value) > limit:
            yield Problem(
                f"$.{field_name}", f"is {len(value)} characters long; the limit is {limit}"
            )


def _check_lifecycle(document: dict[str, Any]) -> Iterator[Problem]:
    lifecycle = document.get("lifecycle")
    authentication = document.get("authentication")
    uses_jwt = not isinstance(authentication, dict) or (
        str(authentication.get("type", "jwt")).lower() == "jwt"
    )
    if lifecycle is None:
        if uses_jwt:
            yield Problem(
                "$.lifecycle",
                "a JWT add-on must declare lifecycle.installed "
                "(hosts send the shared secret there)",
            )
        return
    if not isinstance(lifecycle, dict):
        yield Problem("$.lifecycle", _type_message("object", lifecycle))
        return
    for event, path in lifecycle.items():
        where = _member_path("$.lifecycle", event)
        if event not in LIFECYCLE_EVENTS:
            yield Problem(
                where,
                "is not a lifecycle event (installed, uninstalled, enabled, disabled)"
                + _suggest(event, LIFECYCLE_EVENTS),
            )
            continue
        if not isinstance(path, str):
            yield Problem(where, _type_message("string", path))
        elif re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", path):
            yield Problem(where, f"{path!r} must be a path relative to baseUrl, like '/{event}'")
    if uses_jwt and "installed" not in lifecycle:
        yield Problem(
            "$.lifecycle.installed",
            "a JWT add-on must declare it (hosts send the shared secret there)",
        )


def _check_scopes(document: dict[str, Any]) -> Iterator[Problem]:
    if "scopes" not in document:
        return
    scopes = document["scopes"]
    if not isinstance(scopes, list):
        yield Problem("$.scopes", _type_message("array", scopes))
        return
    for index, scope in enumerate(scopes):
        if not isinstance(scope, str):
            yield Problem(f"$.scopes[{index}]", _type_message("string", scope))
        elif scope.lower() not in SCOPES:
            yield Problem(
                f"$.scopes[{index}]",
                f"{scope!r} is not a Connect scope" + _suggest(scope.lower(), sorted(SCOPES)),
            )


def _check_api_migrations(document: dict[str, Any]) -> Iterator[Problem]:
    migrations = document.get("apiMigrations")
    if migrations is not None and not isinstance(migrations, dict):
        yield Problem("$.apiMigrations", _type_message("object", migrations))
        return
    authentication = document.get("authentication")
    uses_jwt = not isinstance(authentication, dict) or (
        str(authentication.get("type", "jwt")).lower() == "jwt"
    )
    if uses_jwt and not (isinstance(migrations, dict) and migrations.get("signed-install") is True):
        yield Problem(
            "$.apiMigrations.signed-install",
            "is not true: Atlassian Cloud requires RS256-signed install callbacks "
            '(add "apiMigrations": {"signed-install": true})',
            severity="warning",
        )


# --- helpers ------------------------------------------------------------------------------------


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _type_message(expected: str, value: object) -> str:
    article = "an" if expected[0] in "aeiou" else "a"
    return f"must be {article} {expected}, not {_json_type(value)}"


def _suggest(word: str, choices: Any) -> str:
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _locate(problem: Problem, positions: dict[str, tuple[int, int]]) -> Problem:
    """Attach the line/column of the nearest existing JSON path to a problem."""
    path = problem.path
    while path:
        if path in positions:
            line, column = positions[path]
            return dataclasses.replace(problem, line=line, column=column)
        path = _parent(path)
    return problem


def _parent(path: str) -> str:
    if path == "$":
        return ""
    cut = max(path.rfind("."), path.rfind("["))
    return path[:cut] if cut > 0 else "$"


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]:,]|[^\s{}\[\]:,"]+')


def _positions(text: str) -> dict[str, tuple[int, int]]:
    """Map each JSON path in ``text`` (already known to be valid JSON) to its line and column.

    For a member the position is that of its key, where an editor's cursor should go.
    """
    line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def line_col(offset: int) -> tuple[int, int]:
        low, high = 0, len(line_starts) - 1
        while low < high:
            middle = (low + high + 1) // 2
            if line_starts[middle] <= offset:
                low = middle
            else:
                high = middle - 1
        return low + 1, offset - line_starts[low] + 1

    first = re.search(r"\S", text)
    positions: dict[str, tuple[int, int]] = {"$": line_col(first.start()) if first else (1, 1)}

    # Each frame: [path, kind ("{" or "["), next array index, pending member key]
    stack: list[list[Any]] = []
    expect_key = False
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token in "{[":
            path = _value_path(stack) if stack else "$"
            if stack and stack[-1][1] == "[":
                positions[path] = line_col(match.start())
            stack.append([path, token, 0, None])
            expect_key = token == "{"
        elif token in "}]":
            stack.pop()
            if stack and stack[-1][1] == "[":
                stack[-1][2] += 1
        elif token == ",":
            expect_key = bool(stack) and stack[-1][1] == "{"
        elif token == ":":
            expect_key = False
        elif stack and stack[-1][1] == "{" and expect_key:
            key = json.loads(token)
            stack[-1][3] = key
            positions[_member_path(stack[-1][0], key)] = line_col(match.start())
        else:
            if stack and stack[-1][1] == "[":
                positions[f"{stack[-1][0]}[{stack[-1][2]}]"] = line_col(match.start())
                stack[-1][2] += 1
    return positions


def _value_path(stack: list[list[Any]]) -> str:
    parent_path, kind, index, key = stack[-1]
    if kind == "[":
        return f"{parent_path}[{index}]"
    return _member_path(parent_path, key)


def _member_path(parent: str, key: str) -> str:
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", key):
        return f"{parent}.{key}"
    return f"{parent}[{json.dumps(key)}]"
