"""descriptor.py: parsing, the offline checks of PROTOCOL.md §6, positions, render, digest."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from connect_devloop.descriptor import (
    Revision,
    digest_of,
    load,
    parse,
    render,
    render_bytes,
    validate,
)
from connect_devloop.errors import DescriptorError, DevloopError, Problem
from connect_devloop.files import InputFileError, NotUtf8Error

SYNTAX_HINT = "Fix the JSON syntax; the last good revision stays installed meanwhile."
FIELDS_HINT = "Fix the fields named above; the last good revision stays installed."
CONFIG_HINT = "Check `descriptor` in connect-dev.toml; it is relative to the config file."
SIGNED_INSTALL_WARNING = (
    "is not true: Atlassian Cloud requires RS256-signed install callbacks "
    '(add "apiMigrations": {"signed-install": true})'
)
JWT_NEEDS_INSTALLED = "a JWT add-on must declare it (hosts send the shared secret there)"
ALL_SCOPES = [
    "none",
    "read",
    "write",
    "delete",
    "project_admin",
    "space_admin",
    "admin",
    "act_as_user",
    "access_email_addresses",
]


def valid_document(**changes: Any) -> dict[str, Any]:
    """A descriptor that passes every check with no warning; ``changes`` override members
    (a value of ``...`` deletes the member)."""
    document: dict[str, Any] = {
        "key": "my-addon",
        "name": "My add-on",
        "description": "Does things.",
        "baseUrl": "{{localBaseUrl}}",
        "authentication": {"type": "jwt"},
        "lifecycle": {"installed": "/installed", "uninstalled": "/uninstalled"},
        "apiMigrations": {"signed-install": True},
        "scopes": ["READ", "write"],
        "modules": {},
    }
    for name, value in changes.items():
        if value is ...:
            document.pop(name, None)
        else:
            document[name] = value
    return document


def problems(document: object) -> list[tuple[str, str, str]]:
    return [(p.path, p.message, p.severity) for p in validate(document)]


def errors(document: object) -> list[tuple[str, str]]:
    return [(p.path, p.message) for p in validate(document) if p.severity == "error"]


def parse_error(raw: bytes | str, path: str = "atlassian-connect.json") -> DescriptorError:
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
    with pytest.raises(DescriptorError) as info:
        parse(raw, path=path)
    return info.value


# --- a valid descriptor -------------------------------------------------------------------------


def test_valid_descriptor_becomes_a_revision() -> None:
    raw = json.dumps(valid_document(), indent=2).encode()

    revision = parse(raw)

    assert isinstance(revision, Revision)
    assert revision.path == "atlassian-connect.json"
    assert revision.raw == raw
    assert revision.document == valid_document()
    assert revision.digest == digest_of(raw)
    assert revision.warnings == ()
    assert revision.key == "my-addon"
    assert revision.lifecycle == {"installed": "/installed", "uninstalled": "/uninstalled"}


def test_revision_lifecycle_is_a_copy_and_empty_without_lifecycle() -> None:
    revision = parse(json.dumps(valid_document()).encode())
    revision.lifecycle["installed"] = "/changed"
    assert revision.document["lifecycle"]["installed"] == "/installed"

    no_jwt = valid_document(authentication={"type": "none"}, lifecycle=...)
    assert parse(json.dumps(no_jwt).encode()).lifecycle == {}


def test_valid_document_has_no_problem_at_all() -> None:
    assert validate(valid_document()) == []


def test_parse_uses_the_given_path_in_messages() -> None:
    error = parse_error("[]", path="addon/atlassian-connect.json")
    assert error.file == "addon/atlassian-connect.json"
    assert str(error) == "addon/atlassian-connect.json:1:1: $: must be a JSON object, not an array"


# --- bytes that are not a JSON object -----------------------------------------------------------


def test_invalid_json_names_line_and_column() -> None:
    error = parse_error('{"key": "a",\n "baseUrl": }')

    assert str(error) == "atlassian-connect.json:2:13: $: invalid JSON: Expecting value"
    assert error.hint == SYNTAX_HINT
    assert error.problems == [Problem("$", "invalid JSON: Expecting value", 2, 13)]
    assert isinstance(error, DevloopError)
    assert isinstance(error.__cause__, json.JSONDecodeError)


@pytest.mark.parametrize(
    ("text", "message", "line", "column"),
    [
        # The same text on every Python (3.13 words a trailing comma so; older ones do not).
        ('{"key": "a",}', "Illegal trailing comma before end of object", 1, 12),
        ('{"key": "a", \n }', "Illegal trailing comma before end of object", 1, 12),
        ('{"scopes": ["read",\n]}', "Illegal trailing comma before end of array", 1, 19),
        ('{"key": [1, ,]}', "Expecting value", 1, 13),
        ('{\n  "key": "a"\n  "x": 1}', "Expecting ',' delimiter", 3, 3),
        ('{"key": "a"} x', "Extra data", 1, 14),
        ("{'key': 1}", "Expecting property name enclosed in double quotes", 1, 2),
    ],
)
def test_invalid_json_variants(text: str, message: str, line: int, column: int) -> None:
    error = parse_error(text)
    assert error.problems == [Problem("$", f"invalid JSON: {message}", line, column)]
    assert str(error) == f"atlassian-connect.json:{line}:{column}: $: invalid JSON: {message}"


@pytest.mark.parametrize("raw", [b"", b"   \n\t\r\n", b"\xef\xbb\xbf", b"\xef\xbb\xbf \n"])
def test_empty_file(raw: bytes) -> None:
    error = parse_error(raw)

    assert str(error) == "atlassian-connect.json: $: file is empty"
    assert error.hint == "A descriptor is a JSON object."
    assert error.problems == [Problem("$", "file is empty")]


def test_not_utf8_names_the_byte_offset() -> None:
    error = parse_error(b'{"key": "\xff"}')

    assert str(error) == "atlassian-connect.json:1:10: $: not UTF-8 text (byte 9)"
    assert error.hint == "Save it as UTF-8."
    assert error.problems == [Problem("$", "not UTF-8 text (byte 9)", 1, 10)]
    assert isinstance(error.__cause__, NotUtf8Error)
    assert isinstance(error.__cause__.__cause__, UnicodeDecodeError)


def test_utf8_bom_is_accepted_and_columns_count_after_it() -> None:
    document = valid_document()
    raw = b"\xef\xbb\xbf" + json.dumps(document).encode()
    assert parse(raw).document == document

    error = parse_error(
        b'\xef\xbb\xbf{"key": "a b", "baseUrl": "https://x", "authentication": {"type": "none"}}'
    )
    assert error.problems[0].path == "$.key"
    assert (error.problems[0].line, error.problems[0].column) == (1, 2)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("[1, 2]", "an array"),
        ('"atlassian-connect"', "a string"),
        ("42", "a number"),
        ("4.2", "a number"),
        ("null", "null"),
        ("true", "a boolean"),
    ],
)
def test_not_an_object(text: str, kind: str) -> None:
    error = parse_error(text)

    assert str(error) == f"atlassian-connect.json:1:1: $: must be a JSON object, not {kind}"
    assert error.problems == [Problem("$", f"must be a JSON object, not {kind}", 1, 1)]
    assert error.hint == 'A descriptor is a JSON object: {"key": ..., "baseUrl": ..., ...}.'


def test_not_an_object_after_blank_lines_points_at_the_value() -> None:
    error = parse_error("\n\n  [1]")
    assert (error.problems[0].line, error.problems[0].column) == (3, 3)


# --- key ----------------------------------------------------------------------------------------


def test_key_missing() -> None:
    assert errors(valid_document(key=...)) == [("$.key", "required field is missing")]


@pytest.mark.parametrize(
    ("value", "kind"), [(123, "a number"), (None, "null"), (["a"], "an array"), ({}, "an object")]
)
def test_key_not_a_string(value: object, kind: str) -> None:
    assert errors(valid_document(key=value)) == [("$.key", f"must be a string, not {kind}")]


def test_key_empty() -> None:
    assert errors(valid_document(key="")) == [("$.key", "must not be empty")]


@pytest.mark.parametrize("key", ["my addon", "my/addon", "addon!", "ключ", "a:b"])
def test_key_pattern(key: str) -> None:
    assert errors(valid_document(key=key)) == [
        ("$.key", f"{key!r} may contain only letters, digits, '-', '.' and '_'")
    ]


def test_key_allows_letters_digits_dash_dot_underscore() -> None:
    assert errors(valid_document(key="Com.Example-add_on.2")) == []


def test_key_length_without_alias_key() -> None:
    assert errors(valid_document(key="k" * 64)) == []
    assert errors(valid_document(key="k" * 65)) == [
        ("$.key", "is 65 characters long; the limit is 64")
    ]


def test_key_length_with_alias_key() -> None:
    assert errors(valid_document(key="k" * 90, aliasKey="a" * 32)) == []
    assert errors(valid_document(key="k" * 91, aliasKey="alias")) == [
        ("$.key", "is 91 characters long; the limit is 90")
    ]


def test_alias_key_length() -> None:
    assert errors(valid_document(aliasKey="a" * 33)) == [
        ("$.aliasKey", "is 33 characters long; the limit is 32")
    ]


def test_invalid_key_with_bad_pattern_and_length_reports_both() -> None:
    key = "k" * 64 + " "
    assert errors(valid_document(key=key)) == [
        ("$.key", f"{key!r} may contain only letters, digits, '-', '.' and '_'"),
        ("$.key", "is 65 characters long; the limit is 64"),
    ]


# --- baseUrl ------------------------------------------------------------------------------------


def test_base_url_missing() -> None:
    assert errors(valid_document(baseUrl=...)) == [("$.baseUrl", "required field is missing")]


def test_base_url_not_a_string() -> None:
    assert errors(valid_document(baseUrl=8000)) == [("$.baseUrl", "must be a string, not a number")]


@pytest.mark.parametrize(
    "url",
    [
        "https://addon.example.com",
        "http://localhost:3000",
        "https://addon.example.com/some/path",
        "",  # the schema's pattern allows an empty baseUrl
        "{{localBaseUrl}}",
        "{{localBaseUrl}}/app",
    ],
)
def test_base_url_accepted(url: str) -> None:
    assert errors(valid_document(baseUrl=url)) == []


@pytest.mark.parametrize(
    "url", ["ftp://addon.example.com", "addon.example.com", "https://", "//addon.example.com"]
)
def test_base_url_pattern(url: str) -> None:
    assert errors(valid_document(baseUrl=url)) == [
        ("$.baseUrl", f"{url!r} must start with https:// or http://")
    ]


def test_base_url_length() -> None:
    at_limit = "https://" + "a" * 192
    assert len(at_limit) == 200
    assert errors(valid_document(baseUrl=at_limit)) == []
    assert errors(valid_document(baseUrl=at_limit + "a")) == [
        ("$.baseUrl", "is 201 characters long; the limit is 200")
    ]


# --- authentication -----------------------------------------------------------------------------


def test_authentication_missing() -> None:
    assert errors(valid_document(authentication=...)) == [
        ("$.authentication", 'required field is missing (e.g. {"type": "jwt"})')
    ]


def test_authentication_not_an_object() -> None:
    assert errors(valid_document(authentication="jwt")) == [
        ("$.authentication", "must be an object, not a string")
    ]


@pytest.mark.parametrize("kind", ["jwt", "JWT", "none", "NONE"])
def test_authentication_types(kind: str) -> None:
    assert errors(valid_document(authentication={"type": kind})) == []


def test_authentication_type_defaults_to_jwt() -> None:
    assert problems(valid_document(authentication={})) == []
    # The default is jwt, so the JWT-only checks apply.
    assert errors(valid_document(authentication={}, lifecycle=...)) == [
        (
            "$.lifecycle",
            "a JWT add-on must declare lifecycle.installed (hosts send the shared secret there)",
        )
    ]


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("jwtt", "'jwtt' is not one of jwt, none (did you mean 'jwt'?)"),
        ("Jwt", "'Jwt' is not one of jwt, none (did you mean 'jwt'?)"),
        ("nnoe", "'nnoe' is not one of jwt, none (did you mean 'none'?)"),
        ("oauth2", "'oauth2' is not one of jwt, none"),
        (1, 'must be a string, not a number (e.g. "jwt")'),
        (["jwt"], 'must be a string, not an array (e.g. "jwt")'),
        ({"jwt": 1}, 'must be a string, not an object (e.g. "jwt")'),
        (None, 'must be a string, not null (e.g. "jwt")'),
    ],
)
def test_authentication_type_unknown(kind: object, message: str) -> None:
    assert errors(valid_document(authentication={"type": kind})) == [
        ("$.authentication.type", message)
    ]


# --- name, description --------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "limit"), [("name", 80), ("description", 1400)])
def test_string_lengths(field: str, limit: int) -> None:
    assert errors(valid_document(**{field: "x" * limit})) == []
    assert errors(valid_document(**{field: "x" * (limit + 1)})) == [
        (f"$.{field}", f"is {limit + 1} characters long; the limit is {limit}")
    ]


@pytest.mark.parametrize("field", ["name", "description"])
def test_strings_must_be_strings(field: str) -> None:
    assert errors(valid_document(**{field: {"value": "x"}})) == [
        (f"$.{field}", "must be a string, not an object")
    ]


def test_name_and_description_are_optional() -> None:
    assert errors(valid_document(name=..., description=...)) == []


# --- lifecycle ----------------------------------------------------------------------------------


def test_lifecycle_events_accepted() -> None:
    lifecycle = {
        "installed": "/installed",
        "uninstalled": "uninstalled",
        "enabled": "/lifecycle/enabled?x=1",
        "disabled": "/disabled",
    }
    assert errors(valid_document(lifecycle=lifecycle)) == []


@pytest.mark.parametrize(
    "path", ["https://addon.example.com/installed", "http://x/installed", "ws://x/installed"]
)
def test_lifecycle_paths_must_be_relative(path: str) -> None:
    assert errors(valid_document(lifecycle={"installed": path})) == [
        ("$.lifecycle.installed", f"{path!r} must be a path relative to baseUrl, like '/installed'")
    ]


def test_lifecycle_path_relative_message_names_the_event() -> None:
    lifecycle = {"installed": "/installed", "enabled": "https://x/enabled"}
    assert errors(valid_document(lifecycle=lifecycle)) == [
        (
            "$.lifecycle.enabled",
            "'https://x/enabled' must be a path relative to baseUrl, like '/enabled'",
        )
    ]


def test_lifecycle_path_not_a_string() -> None:
    assert errors(valid_document(lifecycle={"installed": ["/installed"]})) == [
        ("$.lifecycle.installed", "must be a string, not an array")
    ]


@pytest.mark.parametrize(
    ("event", "suggestion"),
    [
        ("instaled", " (did you mean 'installed'?)"),
        ("uninstall", " (did you mean 'uninstalled'?)"),
        ("enable", " (did you mean 'enabled'?)"),
        ("foo", ""),
    ],
)
def test_lifecycle_unknown_event(event: str, suggestion: str) -> None:
    lifecycle = {"installed": "/installed", event: "/x"}
    assert errors(valid_document(lifecycle=lifecycle)) == [
        (
            f"$.lifecycle.{event}",
            "is not a lifecycle event (installed, uninstalled, enabled, disabled)" + suggestion,
        )
    ]


def test_lifecycle_not_an_object() -> None:
    assert errors(valid_document(lifecycle=["/installed"])) == [
        ("$.lifecycle", "must be an object, not an array")
    ]


def test_jwt_addon_needs_lifecycle() -> None:
    assert errors(valid_document(lifecycle=...)) == [
        (
            "$.lifecycle",
            "a JWT add-on must declare lifecycle.installed (hosts send the shared secret there)",
        )
    ]


def test_jwt_addon_needs_lifecycle_installed() -> None:
    assert errors(valid_document(lifecycle={"uninstalled": "/uninstalled"})) == [
        ("$.lifecycle.installed", JWT_NEEDS_INSTALLED)
    ]


def test_jwt_addon_with_misspelt_installed_gets_both_problems() -> None:
    assert errors(valid_document(lifecycle={"instaled": "/installed"})) == [
        (
            "$.lifecycle.instaled",
            "is not a lifecycle event (installed, uninstalled, enabled, disabled) "
            "(did you mean 'installed'?)",
        ),
        ("$.lifecycle.installed", JWT_NEEDS_INSTALLED),
    ]


@pytest.mark.parametrize("kind", ["none", "NONE"])
def test_addon_without_jwt_needs_no_lifecycle(kind: str) -> None:
    assert problems(valid_document(authentication={"type": kind}, lifecycle=...)) == []
    assert problems(valid_document(authentication={"type": kind}, lifecycle={})) == []


def test_missing_authentication_counts_as_jwt_for_lifecycle() -> None:
    assert errors(valid_document(authentication=..., lifecycle=...)) == [
        ("$.authentication", 'required field is missing (e.g. {"type": "jwt"})'),
        (
            "$.lifecycle",
            "a JWT add-on must declare lifecycle.installed (hosts send the shared secret there)",
        ),
    ]


# --- scopes -------------------------------------------------------------------------------------


@pytest.mark.parametrize("scope", ALL_SCOPES + [s.upper() for s in ALL_SCOPES])
def test_scopes_in_either_case(scope: str) -> None:
    assert errors(valid_document(scopes=[scope])) == []


def test_scopes_are_optional_and_may_be_empty() -> None:
    assert errors(valid_document(scopes=...)) == []
    assert errors(valid_document(scopes=[])) == []


@pytest.mark.parametrize(
    ("scope", "message"),
    [
        ("wirte", "'wirte' is not a Connect scope (did you mean 'write'?)"),
        ("WIRTE", "'WIRTE' is not a Connect scope (did you mean 'write'?)"),
        ("project-admin", "'project-admin' is not a Connect scope (did you mean 'project_admin'?)"),
        ("bogus", "'bogus' is not a Connect scope"),
    ],
)
def test_unknown_scope(scope: str, message: str) -> None:
    assert errors(valid_document(scopes=["read", scope])) == [("$.scopes[1]", message)]


def test_scopes_not_an_array() -> None:
    assert errors(valid_document(scopes="read")) == [("$.scopes", "must be an array, not a string")]


def test_scope_not_a_string() -> None:
    assert errors(valid_document(scopes=["read", None, 3])) == [
        ("$.scopes[1]", "must be a string, not null"),
        ("$.scopes[2]", "must be a string, not a number"),
    ]


# --- modules ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "kind"), [([], "an array"), ("x", "a string"), (None, "null")])
def test_modules_must_be_an_object(value: object, kind: str) -> None:
    assert errors(valid_document(modules=value)) == [
        ("$.modules", f"must be an object, not {kind}")
    ]


def test_modules_optional() -> None:
    assert errors(valid_document(modules=...)) == []
    assert errors(valid_document(modules={"generalPages": [{"key": "p"}]})) == []


# --- apiMigrations ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "migrations",
    [..., {}, {"signed-install": False}, {"signed-install": "true"}, {"gdpr": True}],
)
def test_jwt_addon_without_signed_install_is_a_warning(migrations: object) -> None:
    assert problems(valid_document(apiMigrations=migrations)) == [
        ("$.apiMigrations.signed-install", SIGNED_INSTALL_WARNING, "warning")
    ]


def test_signed_install_not_needed_without_jwt() -> None:
    document = valid_document(authentication={"type": "none"}, apiMigrations=...)
    assert problems(document) == []


def test_api_migrations_not_an_object_is_an_error() -> None:
    assert problems(valid_document(apiMigrations=True)) == [
        ("$.apiMigrations", "must be an object, not a boolean", "error")
    ]


def test_warnings_do_not_block_and_are_located() -> None:
    text = (
        "{\n"
        '  "key": "my-addon",\n'
        '  "baseUrl": "{{localBaseUrl}}",\n'
        '  "authentication": {"type": "jwt"},\n'
        '  "lifecycle": {"installed": "/installed"},\n'
        '  "apiMigrations": {\n'
        '    "signed-install": false\n'
        "  }\n"
        "}\n"
    )
    revision = parse(text.encode())

    assert revision.key == "my-addon"
    assert revision.warnings == (
        Problem("$.apiMigrations.signed-install", SIGNED_INSTALL_WARNING, 7, 5, "warning"),
    )
    assert revision.warnings[0].format("a.json") == (
        f"a.json:7:5: $.apiMigrations.signed-install: {SIGNED_INSTALL_WARNING}"
    )


def test_missing_api_migrations_warning_points_at_the_document() -> None:
    revision = parse(json.dumps(valid_document(apiMigrations=...)).encode())
    assert [(w.path, w.line, w.column) for w in revision.warnings] == [
        ("$.apiMigrations.signed-install", 1, 1)
    ]


def test_errors_leave_warnings_out_of_the_descriptor_error() -> None:
    error = parse_error(json.dumps(valid_document(key="bad key", apiMigrations=...)))
    assert [(p.path, p.severity) for p in error.problems] == [("$.key", "error")]
    assert str(error) == (
        "atlassian-connect.json:1:2: $.key: 'bad key' may contain only letters, digits, "
        "'-', '.' and '_'"
    )
    assert error.hint == FIELDS_HINT


# --- positions ----------------------------------------------------------------------------------

POSITIONED = """\
{
  "key": "my addon",
  "description": "braces { [ : , \\" and a \\\\ in a string",
  "baseUrl": "ftp://x",
  "modules": {"generalPages": [{"key": "p", "name": {"value": "x"}}, [1, [2, {}]]]},
  "authentication": {"type": "jwtt"},
  "lifecycle": {
    "installed": "https://x/installed",
    "instaled": "/x"
  },
  "scopes": [
    "READ",
    "wirte",   3
  ],
  "apiMigrations": []
}
"""


def test_every_problem_points_at_its_member_or_element() -> None:
    error = parse_error(POSITIONED)

    assert [(p.path, p.line, p.column) for p in error.problems] == [
        ("$.key", 2, 3),
        ("$.baseUrl", 4, 3),
        ("$.authentication.type", 6, 22),
        ("$.lifecycle.installed", 8, 5),
        ("$.lifecycle.instaled", 9, 5),
        ("$.scopes[1]", 13, 5),
        ("$.scopes[2]", 13, 16),
        ("$.apiMigrations", 15, 3),
    ]
    assert str(error) == (
        "atlassian-connect.json:2:3: $.key: 'my addon' may contain only letters, digits, "
        "'-', '.' and '_' (and 7 more)"
    )
    assert error.hint == FIELDS_HINT


def test_missing_member_points_at_its_nearest_parent() -> None:
    text = (
        "{\n"
        '  "key": "my-addon",\n'
        '  "baseUrl": "https://x",\n'
        '  "authentication": {"type": "jwt"},\n'
        '  "apiMigrations": {"signed-install": true},\n'
        '    "lifecycle": {"uninstalled": "/u"}\n'
        "}"
    )
    error = parse_error(text)
    assert error.problems == [Problem("$.lifecycle.installed", JWT_NEEDS_INSTALLED, 6, 5)]


def test_missing_top_level_member_points_at_the_document() -> None:
    error = parse_error('{\n  "key": "my-addon",\n  "authentication": {"type": "none"}\n}')
    assert error.problems == [Problem("$.baseUrl", "required field is missing", 1, 1)]
    assert str(error) == "atlassian-connect.json:1:1: $.baseUrl: required field is missing"


def test_positions_count_characters_not_bytes_and_accept_crlf() -> None:
    text = (
        "{\r\n"
        '  "name": "Überprüfung ✓", "key": "a b",\r\n'
        '  "baseUrl": "https://x", "authentication": {"type": "none"}\r\n'
        "}"
    )
    error = parse_error(text)
    assert [(p.path, p.line, p.column) for p in error.problems] == [("$.key", 2, 28)]


def test_duplicate_member_points_at_the_one_json_keeps() -> None:
    text = (
        '{"key": "ok",\n "baseUrl": "https://x", "authentication": {"type": "none"},\n'
        ' "key": "not ok"}'
    )
    error = parse_error(text)
    assert [(p.path, p.line, p.column) for p in error.problems] == [("$.key", 3, 2)]


def test_unknown_lifecycle_key_that_is_not_an_identifier_points_at_itself() -> None:
    text = (
        "{\n"
        '  "key": "a", "baseUrl": "https://x", "authentication": {"type": "none"},\n'
        '  "lifecycle": {\n'
        '    "on install": "/x"\n'
        "  }\n"
        "}"
    )
    error = parse_error(text)
    assert [(p.path, p.line, p.column) for p in error.problems] == [
        ('$.lifecycle["on install"]', 4, 5)
    ]


def test_descriptor_error_message_counts_more_problems() -> None:
    error = DescriptorError("f.json", [Problem("$.a", "one", 1, 2), Problem("$.b", "two")])
    assert str(error) == "f.json:1:2: $.a: one (and 1 more)"
    assert DescriptorError("f.json", []).message == "f.json"


# --- render -------------------------------------------------------------------------------------


def rich_document() -> dict[str, Any]:
    return {
        "key": "my-addon",
        "name": "{{appKey}} in {{environment}}",
        "baseUrl": "{{localBaseUrl}}",
        "links": {
            "self": "{{localBaseUrl}}/atlassian-connect.json",
            "homepage": "{{localBaseUrl}}/?a={{localBaseUrl}}&b={{localBaseUrl}}",
        },
        "modules": {
            "generalPages": [
                {
                    "key": "{{appKey}}-page",
                    "url": "/page?env={{environment}}&env2={{environment}}",
                    "name": {"value": "{{appKey}}/{{appKey}}"},
                    "weight": 100,
                    "conditions": [["{{appKey}}", True, None, 1.5]],
                }
            ],
            "{{appKey}}": "keys are not rendered",
        },
    }


def test_render_replaces_every_token_in_nested_strings_but_not_keys() -> None:
    rendered = render(rich_document(), "https://abc.ngrok.app", environment="staging")

    assert rendered == {
        "key": "my-addon",
        "name": "my-addon in staging",
        "baseUrl": "https://abc.ngrok.app",
        "links": {
            "self": "https://abc.ngrok.app/atlassian-connect.json",
            "homepage": "https://abc.ngrok.app/?a=https://abc.ngrok.app&b=https://abc.ngrok.app",
        },
        "modules": {
            "generalPages": [
                {
                    "key": "my-addon-page",
                    "url": "/page?env=staging&env2=staging",
                    "name": {"value": "my-addon/my-addon"},
                    "weight": 100,
                    "conditions": [["my-addon", True, None, 1.5]],
                }
            ],
            "{{appKey}}": "keys are not rendered",
        },
    }


def test_render_environment_defaults_to_development() -> None:
    assert render({"key": "k", "name": "{{environment}}"}, "https://x")["name"] == "development"


@pytest.mark.parametrize(
    "base_url", ["https://addon.example.com", "http://localhost:3000", "", "{{localBaseUrl}}/x"]
)
def test_render_forces_base_url_to_the_public_url(base_url: str) -> None:
    document = {"key": "k", "baseUrl": base_url}
    assert render(document, "https://abc.ngrok.app/")["baseUrl"] == "https://abc.ngrok.app"


def test_render_strips_trailing_slashes_from_every_token_use() -> None:
    rendered = render({"key": "k", "url": "{{localBaseUrl}}/x"}, "https://abc.ngrok.app//")
    assert rendered == {
        "key": "k",
        "url": "https://abc.ngrok.app/x",
        "baseUrl": "https://abc.ngrok.app",
    }


def test_render_adds_base_url_when_missing_and_app_key_is_empty_without_key() -> None:
    assert render({"name": "[{{appKey}}]"}, "https://x") == {"name": "[]", "baseUrl": "https://x"}


def test_render_does_not_mutate_its_input() -> None:
    document = rich_document()
    before = copy.deepcopy(document)

    rendered = render(document, "https://abc.ngrok.app")
    rendered["modules"]["generalPages"][0]["conditions"][0].append("changed")
    rendered["links"]["self"] = "changed"

    assert document == before


def test_render_bytes_is_indented_utf8_json_of_render() -> None:
    document = {"key": "k", "name": "Überprüfung {{environment}}", "baseUrl": "{{localBaseUrl}}"}

    raw = render_bytes(document, "https://x/", environment="dev")

    assert raw == (
        b'{\n  "key": "k",\n  "name": "\xc3\x9cberpr\xc3\xbcfung dev",\n  "baseUrl": "https://x"\n}'
    )
    assert json.loads(raw) == render(document, "https://x/", environment="dev")


# --- digest -------------------------------------------------------------------------------------


def test_digest_is_twelve_hex_digits_of_sha256() -> None:
    raw = b'{"key": "my-addon"}'
    assert digest_of(raw) == hashlib.sha256(raw).hexdigest()[:12]
    assert re.fullmatch(r"[0-9a-f]{12}", digest_of(raw))
    assert digest_of(b"") == "e3b0c44298fc"


def test_digest_is_stable_and_follows_the_bytes() -> None:
    raw = json.dumps(valid_document()).encode()
    assert parse(raw).digest == parse(raw).digest == digest_of(raw)
    reformatted = json.dumps(valid_document(), indent=4).encode()
    assert parse(reformatted).digest != parse(raw).digest


# --- load ---------------------------------------------------------------------------------------


def test_load_reads_and_parses(tmp_path: Path) -> None:
    path = tmp_path / "atlassian-connect.json"
    raw = json.dumps(valid_document()).encode()
    path.write_bytes(raw)

    revision = load(path)

    assert revision.path == str(path)
    assert revision.raw == raw
    assert revision.key == "my-addon"


def test_load_missing_file_has_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "atlassian-connect.json"
    with pytest.raises(DescriptorError) as info:
        load(path)

    assert str(info.value) == f"{path}: $: file not found"
    assert info.value.hint == f"{tmp_path} has no .json file. {CONFIG_HINT}"
    assert info.value.file == str(path)
    assert isinstance(info.value.__cause__, InputFileError)


def test_load_misspelt_file_suggests_the_close_name(tmp_path: Path) -> None:
    (tmp_path / "atlassian-connect.json").write_text("{}")
    with pytest.raises(DescriptorError) as info:
        load(tmp_path / "atlassian-conect.json")
    assert info.value.hint == (
        f"Did you mean atlassian-connect.json? ({tmp_path / 'atlassian-connect.json'}) "
        + CONFIG_HINT
    )


def test_load_missing_file_lists_the_json_files_when_none_is_close(tmp_path: Path) -> None:
    for name in ("b.json", "a.json", "notes.txt"):
        (tmp_path / name).write_text("{}")
    with pytest.raises(DescriptorError) as info:
        load(tmp_path / "atlassian-connect.json")
    assert info.value.hint == f"The .json files in {tmp_path}: a.json, b.json. {CONFIG_HINT}"


def test_load_missing_directory_says_which_one(tmp_path: Path) -> None:
    (tmp_path / "addon").mkdir()
    with pytest.raises(DescriptorError) as info:
        load(tmp_path / "adon" / "sub" / "atlassian-connect.json")
    assert info.value.hint == (
        f"The directory {tmp_path / 'adon'} does not exist "
        f"(did you mean {tmp_path / 'addon'}?). {CONFIG_HINT}"
    )


def test_load_relative_path_names_the_absolute_path_tried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DescriptorError) as info:
        load(Path("atlassian-connect.json"))
    assert str(info.value) == (
        "atlassian-connect.json: $: file not found "
        f"(looked for {tmp_path / 'atlassian-connect.json'})"
    )


def test_load_a_directory(tmp_path: Path) -> None:
    with pytest.raises(DescriptorError) as info:
        load(tmp_path)
    assert str(info.value) == f"{tmp_path}: $: is a directory, not a regular file"
    assert info.value.hint == (
        f"Name the descriptor file itself, e.g. {tmp_path / 'atlassian-connect.json'}."
    )


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "atlassian-connect.json"
    path.write_text('{\n  "key": 1\n}')
    with pytest.raises(DescriptorError) as info:
        load(path)
    assert str(info.value).startswith(f"{path}:2:3: $.key: must be a string, not a number")


MUST_BE_UTF8 = "text; a descriptor must be UTF-8"


# --- hostile input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"[" * 5000, Problem("$", "arrays and objects are nested more than 100 deep", 1, 101)),
        (b"\x00{}", Problem("$", "contains a NUL character, so it is not JSON text", 1, 1)),
        ('{"a": 1}'.encode("utf-16"), Problem("$", f"is UTF-16 {MUST_BE_UTF8}", 1, 1)),
        ('{"a": 1}'.encode("utf-16-le"), Problem("$", f"is UTF-16 {MUST_BE_UTF8}", 1, 1)),
        ('{"a": 1}'.encode("utf-32"), Problem("$", f"is UTF-32 {MUST_BE_UTF8}", 1, 1)),
    ],
)  # fmt: skip
def test_unreadable_text_is_one_located_problem(raw: bytes, problem: Problem) -> None:
    assert parse_error(raw).problems == [problem]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("NaN", "is NaN, Infinity or beyond ±1.8e308, which JSON has no number for; write a "
         "number or null"),
        ("-Infinity", "is NaN, Infinity or beyond ±1.8e308, which JSON has no number for; "
         "write a number or null"),
        ("1e999", "is NaN, Infinity or beyond ±1.8e308, which JSON has no number for; "
         "write a number or null"),
        ("9" * 5000, "is an integer of 5,000 digits; the limit is 4,300"),
        ('"\\ud800"', "contains half of a UTF-16 surrogate pair (\\ud800-\\udfff), which is "
         "not a character; write the character itself"),
    ],
)  # fmt: skip
def test_values_json_allows_but_hosts_cannot_read(value: str, message: str) -> None:
    text = json.dumps(valid_document(vendor={"x": "PLACEHOLDER"}), indent=1)
    error = parse_error(text.replace('"PLACEHOLDER"', value))
    assert [(p.path, p.message) for p in error.problems] == [("$.vendor.x", message)]
    assert error.problems[0].line is not None


def test_surrogate_in_a_member_name() -> None:
    text = json.dumps(valid_document(vendor={"\ud800": 1}))
    assert [p.path for p in parse_error(text.encode("utf-8", "surrogatepass")).problems] == [
        '$.vendor["\\ud800"]'
    ]


def test_render_bytes_escapes_what_utf8_cannot_hold() -> None:
    rendered = render_bytes(valid_document(name="\ud800"), "https://x")
    assert json.loads(rendered)["name"] == "\ud800"


def test_duplicate_member_is_a_warning() -> None:
    text = '{"key": "a",\n"key": "my-addon", "baseUrl": "https://x", "authentication": {}}'
    revision = parse(text.replace("{}", '{"type": "none"}').encode())
    assert [(p.path, p.message, p.line) for p in revision.warnings] == [
        ("$.key", "is given twice (first on line 1); only the last one counts", 2)
    ]


def test_module_entries_must_be_modules() -> None:
    assert errors(valid_document(modules={"generalPages": "x", "postInstallPage": {}})) == [
        ("$.modules.generalPages", "must be an array of modules or a module object, not a string")
    ]


def test_enormous_values_are_shortened_in_messages() -> None:
    (message,) = [m for _, m in errors(valid_document(baseUrl="ftp://" + "x" * 1_000_000))][1:]
    assert message.endswith("... (1,000,006 characters) must start with https:// or http://")
    assert len(message) < 300


def test_too_large_bytes_are_refused() -> None:
    error = parse_error(b" " * 5_000_001)
    assert error.problems == [Problem("$", "is 5,000,001 bytes; the limit is 5,000,000 (5 MB)")]
