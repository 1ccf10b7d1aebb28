"""The add-on descriptor: parse, validate, render for a public URL. Pure: no I/O but ``load``.

A ``Revision`` is one valid version of ``atlassian-connect.json`` as saved by the user, identified
by the digest of its bytes. ``render`` produces what the proxy serves to hosts: every
``{{localBaseUrl}}``, ``{{appKey}}`` and ``{{environment}}`` token replaced (all occurrences,
unlike atlassian-connect-express which replaces only the first one in each string) and ``baseUrl``
set to the public URL.

Any bytes at all give either a ``Revision`` or a ``DescriptorError`` whose problems carry a JSON
path (and a line and column where there is one): the watcher parses whatever an editor saved,
and an exception of another kind would stop it.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import DescriptorError, Problem
from .files import (
    MAX_INPUT_BYTES,
    InputFileError,
    NotUtf8Error,
    decode_utf8,
    describe_missing,
    read_input_file,
)

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
# Real descriptors nest about ten levels; the limit keeps every walker (ours, json's, a host's)
# far from Python's recursion limit.
MAX_NESTING = 100
# Python refuses to convert longer decimal integers (sys.get_int_max_str_digits()).
MAX_INTEGER_DIGITS = 4300
CONFIG_HINT = "Check `descriptor` in connect-dev.toml; it is relative to the config file."


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
        raw = read_input_file(path)
    except InputFileError as exc:
        message, hint = exc.reason, None
        if exc.missing:
            if not path.is_absolute():
                message = f"file not found (looked for {Path.cwd() / path})"
            hint = f"{describe_missing(path, suffix='.json')} {CONFIG_HINT}"
        elif exc.kind == "directory":
            hint = f"Name the descriptor file itself, e.g. {path / 'atlassian-connect.json'}."
        elif exc.kind == "too_large":
            hint = "Hosts refuse a descriptor that large; is this the right file?"
        elif exc.kind == "special":
            hint = "A descriptor must be a regular file (a symbolic link to one is fine)."
        raise DescriptorError(str(path), [Problem("$", message)], hint=hint) from exc
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
    raw = bytes(raw)
    if len(raw) > MAX_INPUT_BYTES:
        raise DescriptorError(
            path,
            [Problem("$", f"is {len(raw):,} bytes; the limit is {MAX_INPUT_BYTES:,} (5 MB)")],
            hint="Hosts refuse a descriptor that large; is this the right file?",
        )
    text = _decode(raw, path)
    if not text.strip():
        raise DescriptorError(
            path, [Problem("$", "file is empty")], hint="A descriptor is a JSON object."
        )
    nul = text.find("\x00")
    if nul >= 0:
        line, column = _line_column(text, nul)
        raise DescriptorError(
            path,
            [Problem("$", "contains a NUL character, so it is not JSON text", line, column)],
            hint="The file may be binary or in another encoding; save it as UTF-8 JSON.",
        )
    syntax_hint = "Fix the JSON syntax; the last good revision stays installed meanwhile."
    try:
        document = json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        raise DescriptorError(path, [_json_problem(text, exc)], hint=syntax_hint) from exc
    except RecursionError as exc:
        raise _too_deep(path, text) from exc
    except ValueError as exc:  # nothing known raises it (long integers are handled), but the
        # watcher must survive whatever json has in store
        raise DescriptorError(
            path, [Problem("$", f"invalid JSON: {exc}")], hint=syntax_hint
        ) from exc
    if _nesting_offset(text) is not None:
        raise _too_deep(path, text)
    positions, duplicates = _positions(text)
    problems = [*validate(document), *_check_values(document), *duplicates]
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


# UTF-32 first: its little-endian BOM starts with UTF-16's.
def _decode(raw: bytes, path: str) -> str:
    """The text of a UTF-8 file (a BOM is allowed); UTF-16 and UTF-32 are named as such."""
    try:
        return decode_utf8(raw)
    except NotUtf8Error as exc:
        if exc.encoding:
            raise DescriptorError(
                path,
                [Problem("$", f"{exc.reason}; a descriptor must be UTF-8", 1, 1)],
                hint="Save it as UTF-8 (most editors offer the encoding in Save As).",
            ) from exc
        raise DescriptorError(
            path, [Problem("$", exc.reason, exc.line, exc.column)], hint="Save it as UTF-8."
        ) from exc


class _LongInteger(int):
    """Stands for an integer too long to convert (see ``MAX_INTEGER_DIGITS``) until validation
    reports it; its value is 0 and ``digits`` is its length."""

    digits: int


def _parse_int(literal: str) -> int:
    digits = len(literal.lstrip("-"))
    if digits <= MAX_INTEGER_DIGITS:
        return int(literal)
    marker = _LongInteger(0)
    marker.digits = digits
    return marker


_BRACKETS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _nesting_offset(text: str) -> int | None:
    """Where the first array or object nested deeper than ``MAX_NESTING`` opens, if any."""
    depth = 0
    for match in _BRACKETS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_NESTING:
                return match.start()
        elif token in "]}":
            depth -= 1
    return None


def _too_deep(path: str, text: str) -> DescriptorError:
    offset = _nesting_offset(text)
    line, column = _line_column(text, offset) if offset is not None else (None, None)
    return DescriptorError(
        path,
        [Problem("$", f"arrays and objects are nested more than {MAX_NESTING} deep", line, column)],
        hint="A descriptor is a few levels deep; is this the right file?",
    )


def _line_column(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - text.rfind("\n", 0, offset)


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
    problems.extend(_check_modules(document))
    problems.extend(_check_api_migrations(document))
    return problems


def render(
    document: dict[str, Any], public_url: str, *, environment: str = "development"
) -> dict[str, Any]:
    """The descriptor as hosts must see it: tokens replaced, ``baseUrl`` = ``public_url``."""
    base_url = public_url.rstrip("/")
    key = document.get("key", "")
    values = {
        "{{localBaseUrl}}": base_url,
        "{{appKey}}": key if isinstance(key, str) else "",
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

    # substitute builds new containers all the way down, so the input is never shared.
    rendered: dict[str, Any] = substitute(document)
    rendered["baseUrl"] = base_url
    return rendered


def render_bytes(
    document: dict[str, Any], public_url: str, *, environment: str = "development"
) -> bytes:
    """``render`` serialised as the proxy serves it."""
    rendered = render(document, public_url, environment=environment)
    try:
        return json.dumps(rendered, indent=2, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate ("\\ud800") has no UTF-8 form; parse refuses it, but a document
        # from elsewhere may have one: escaped, it is still the JSON the user wrote.
        return json.dumps(rendered, indent=2).encode("ascii")


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
        yield Problem("$.key", f"{_show(key)} may contain only letters, digits, '-', '.' and '_'")
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
        yield Problem("$.baseUrl", f"{_show(base_url)} must start with https:// or http://")


def _check_authentication(document: dict[str, Any]) -> Iterator[Problem]:
    if "authentication" not in document:
        yield Problem("$.authentication", 'required field is missing (e.g. {"type": "jwt"})')
        return
    authentication = document["authentication"]
    if not isinstance(authentication, dict):
        yield Problem("$.authentication", _type_message("object", authentication))
        return
    kind = authentication.get("type", "jwt")
    if not isinstance(kind, str):
        yield Problem("$.authentication.type", _type_message("string", kind) + ' (e.g. "jwt")')
    elif kind not in AUTHENTICATION_TYPES:
        yield Problem(
            "$.authentication.type",
            f"{_show(kind)} is not one of jwt, none" + _suggest(kind, ["jwt", "none"]),
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
    uses_jwt = _uses_jwt(document)
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
            yield Problem(
                where, f"{_show(path)} must be a path relative to baseUrl, like '/{event}'"
            )
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
                f"{_show(scope)} is not a Connect scope" + _suggest(scope.lower(), sorted(SCOPES)),
            )


def _check_modules(document: dict[str, Any]) -> Iterator[Problem]:
    if "modules" not in document:
        return
    modules = document["modules"]
    if not isinstance(modules, dict):
        yield Problem("$.modules", _type_message("object", modules))
        return
    # Each module type holds a list of modules (generalPages) or a single one (postInstallPage).
    for kind, entry in modules.items():
        if not isinstance(entry, dict | list):
            yield Problem(
                _member_path("$.modules", kind),
                f"must be an array of modules or a module object, not {_json_type(entry)}",
            )


def _uses_jwt(document: dict[str, Any]) -> bool:
    authentication = document.get("authentication")
    if not isinstance(authentication, dict):
        return True
    kind = authentication.get("type", "jwt")
    return isinstance(kind, str) and kind.lower() == "jwt"


_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_values(document: object) -> Iterator[Problem]:
    """What JSON can carry but hosts cannot: NaN and Infinity, integers too long to convert,
    lone surrogates (``"\\ud800"``: no UTF-8 form). Walked with a stack, never recursion."""
    stack: list[tuple[object, str]] = [(document, "$")]
    while stack:
        container, path = stack.pop()
        items: Iterator[tuple[str, object]]
        if isinstance(container, dict):
            items = ((_member_path(path, key), value) for key, value in container.items())
            for key in container:
                if _SURROGATE.search(key):
                    yield _surrogate_problem(_member_path(path, key), "its name ")
        elif isinstance(container, list):
            items = ((f"{path}[{index}]", value) for index, value in enumerate(container))
        else:
            items = iter([(path, container)])
        for where, value in items:
            if isinstance(value, dict | list):
                stack.append((value, where))
            elif isinstance(value, _LongInteger):
                yield Problem(
                    where,
                    f"is an integer of {value.digits:,} digits; "
                    f"the limit is {MAX_INTEGER_DIGITS:,}",
                )
            elif isinstance(value, float) and not math.isfinite(value):
                yield Problem(
                    where,
                    "is NaN, Infinity or beyond ±1.8e308, which JSON has no number for; "
                    "write a number or null",
                )
            elif isinstance(value, str) and _SURROGATE.search(value):
                yield _surrogate_problem(where, "")


def _surrogate_problem(path: str, what: str) -> Problem:
    return Problem(
        path,
        f"{what}contains half of a UTF-16 surrogate pair (\\ud800-\\udfff), "
        "which is not a character; write the character itself",
    )


def _check_api_migrations(document: dict[str, Any]) -> Iterator[Problem]:
    migrations = document.get("apiMigrations")
    if migrations is not None and not isinstance(migrations, dict):
        yield Problem("$.apiMigrations", _type_message("object", migrations))
        return
    if _uses_jwt(document) and not (
        isinstance(migrations, dict) and migrations.get("signed-install") is True
    ):
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


def _show(text: str, limit: int = 200) -> str:
    """``text`` quoted for a message, shortened: a value may be megabytes long."""
    if len(text) > limit:
        return repr(text[:limit]) + f"... ({len(text):,} characters)"
    return repr(text)


def _suggest(word: str, choices: Any) -> str:
    if len(word) > 100:  # no choice is that long, and difflib would take its time
        return ""
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


def _positions(text: str) -> tuple[dict[str, tuple[int, int]], list[Problem]]:
    """Map each JSON path in ``text`` (already known to be valid JSON) to its line and column,
    and warn of each member given twice in one object (json keeps the last one silently).

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

    duplicates: list[Problem] = []
    # Each frame: [path, kind ("{" or "["), next array index, pending member key, keys seen]
    stack: list[list[Any]] = []
    expect_key = False
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token in "{[":
            path = _value_path(stack) if stack else "$"
            if stack and stack[-1][1] == "[":
                positions[path] = line_col(match.start())
            stack.append([path, token, 0, None, set()])
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
            member = _member_path(stack[-1][0], key)
            if key in stack[-1][4]:
                duplicates.append(
                    Problem(
                        member,
                        f"is given twice (first on line {positions[member][0]}); "
                        "only the last one counts",
                        severity="warning",
                    )
                )
            stack[-1][4].add(key)
            positions[member] = line_col(match.start())
        else:
            if stack and stack[-1][1] == "[":
                positions[f"{stack[-1][0]}[{stack[-1][2]}]"] = line_col(match.start())
                stack[-1][2] += 1
    return positions, duplicates


def _value_path(stack: list[list[Any]]) -> str:
    parent_path, kind, index, key, _seen = stack[-1]
    if kind == "[":
        return f"{parent_path}[{index}]"
    return _member_path(parent_path, key)


def _member_path(parent: str, key: str) -> str:
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", key):
        return f"{parent}.{key}"
    return f"{parent}[{json.dumps(key)}]"
