"""manifest.yml checks (connect_devloop/forge/manifest.py), against the real @forge/manifest 13.7.0.

@forge/manifest (npm, installed once per session, tests/forge_manifest/) is what `forge lint`
and `forge deploy` validate a manifest with. Differential tests, as tests/test_jwt.py does with
npm atlassian-jwt: our tables are the package's; on a corpus of broken manifests our offline
checks and its FULL validation accept and reject the same ones and blame the same field; the
module bodies we check (which only Cloud checks for connectModules, at install) are refused by
the schema it applies to the same modules under `modules:`; and `resolve_variables` substitutes
${VARIABLES} as its interpolator does. The rest runs without node.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from connect_devloop import cli
from connect_devloop.errors import Problem
from connect_devloop.forge import manifest_schema as schema
from connect_devloop.forge.manifest import (
    ManifestError,
    adoption_status,
    check_manifest,
    declared_variables,
    install_problems,
    lint_problems,
    parse_manifest,
    resolve_variables,
)
from connect_devloop.forge.manifest_yaml import parse_yaml, to_plain

from .forge_manifest.fixtures import forge_node_modules, needs_node  # noqa: F401
from .forge_manifest.npm import FORGE_MANIFEST_VERSION, run_forge_js

BASE = """\
app:
  id: ari:cloud:ecosystem::app/invalid-run-forge-register
  runtime:
    name: nodejs22.x
  connect:
    key: com.example.app
    remote: connect
remotes:
  - key: connect
    baseUrl: https://example.com
connectModules:
  jira:lifecycle:
    - key: lifecycle-events
      installed: /installed
  jira:generalPages:
    - key: hello
      url: /hello
      name:
        value: Hello
permissions:
  scopes:
    - read:connect-jira
"""


def edit(*changes: tuple[str, str], text: str = BASE) -> str:
    """``text`` with each (old, new) replaced once; old must be there."""
    for old, new in changes:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def problems_of(text: str, env: dict[str, str] | None = None) -> list[Problem]:
    """Our lint problems (errors and warnings), or the parse problem."""
    try:
        manifest = parse_manifest(text)
    except ManifestError as exc:
        return list(exc.problems)
    return lint_problems(manifest, env=env)


def errors_of(problems: list[Problem]) -> list[Problem]:
    return [problem for problem in problems if problem.severity == "error"]


# --- pure: positions, messages ------------------------------------------------------------------


def test_the_base_manifest_is_clean() -> None:
    assert check_manifest(BASE) == []


def test_each_problem_names_the_line_and_column_of_its_field() -> None:
    text = edit(
        ("key: com.example.app", "key: com example"),
        ("jira:generalPages:", "jira:generalPage:"),
        ("read:connect-jira", "read:connect-jiraa"),
    )
    lines = [problem.format("manifest.yml") for problem in check_manifest(text)]
    assert lines == [
        "manifest.yml:6:5: $.app.connect.key: 'com example' may contain only letters, digits, "
        "'-', '.' and '_'",
        'manifest.yml:15:3: $.connectModules["jira:generalPage"]: invalid value '
        "'jira:generalPage' in connectModules (a <product>:<module type> as in the descriptor, "
        "e.g. jira:generalPages) (did you mean 'jira:generalPages'?)",
        "manifest.yml:22:7: $.permissions.scopes[0]: 'read:connect-jiraa' is not a Connect scope "
        "(did you mean 'read:connect-jira'?)",
    ]


def test_module_bodies_are_checked_as_cloud_does_at_install() -> None:
    text = edit(
        ("    - key: hello\n      url: /hello\n", "    - key: hel lo\n"),
        (
            "permissions:",
            "  jira:webhooks:\n    key: w\n    event: jira:issue_created\n    url: /w\n"
            "permissions:",
        ),
    )
    manifest = parse_manifest(text)
    assert lint_problems(manifest) == []  # forge lint does not look into them
    lines = [problem.format() for problem in install_problems(manifest)]
    note = "(Cloud refuses the install; forge lint does not check module bodies)"
    assert lines == [
        f'16:7: $.connectModules["jira:generalPages"][0].url: required field is missing {note}',
        f"16:7: $.connectModules[\"jira:generalPages\"][0].key: 'hel lo' may contain only "
        f"letters, digits, '-' and '_' {note}",
        '19:3: $.connectModules["jira:webhooks"]: must be a list of modules, not a mapping '
        f"(one module is a list of one; {note[1:-1]})",
    ]


def test_a_manifest_that_is_not_yaml_gives_one_problem_with_its_place() -> None:
    assert [p.format("m.yml") for p in check_manifest("app:\n  id: [1, 2\n")] == [
        "m.yml:3:1: $: invalid YAML: while parsing a flow sequence expected ',' or ']', "
        "but got '<stream end>'"
    ]
    assert [p.format() for p in check_manifest("- a\n")] == [
        "1:1: $: must be a YAML mapping (app: ...), not a list"
    ]
    assert [p.format() for p in check_manifest("app:\n  id: a\n  id: b\n")] == [
        '3:3: $: invalid YAML: while constructing a mapping found duplicate key "id" '
        'with value "b" (original value: "a")'
    ]


def test_only_an_unreadable_file_raises(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as caught:
        check_manifest(tmp_path / "manifest.yml")
    assert caught.value.problems[0].message == "file not found"
    (tmp_path / "manifest.yml").write_text("app: [\n")
    assert [p.path for p in check_manifest(tmp_path / "manifest.yml")] == ["$"]


def test_variables_are_resolved_from_defaults_or_left_for_deploy() -> None:
    text = edit(
        ("key: com.example.app", "key: ${CONNECT_DEV_APP_KEY}"),
        ("baseUrl: https://example.com", "baseUrl: ${CONNECT_DEV_BASE_URL}"),
        (
            "connectModules:",
            "environment:\n  variables:\n    - CONNECT_DEV_BASE_URL\n"
            "    - key: CONNECT_DEV_APP_KEY\n      default: bad key\nconnectModules:",
        ),
    )
    assert declared_variables(parse_manifest(text).document) == {
        "CONNECT_DEV_BASE_URL": None,
        "CONNECT_DEV_APP_KEY": "bad key",
    }
    # The default is what forge deploy would use: checked. The base URL waits for deploy.
    assert [p.path for p in problems_of(text)] == ["$.app.connect.key"]
    assert [(p.path, p.message) for p in problems_of(text, env={})] == [
        (
            "$.remotes[0].baseUrl",
            "could not find environment variable 'CONNECT_DEV_BASE_URL' (declared under "
            "environment.variables without a default, and not set)",
        ),
        ("$.app.connect.key", "'bad key' may contain only letters, digits, '-', '.' and '_'"),
    ]
    env = {"CONNECT_DEV_BASE_URL": "https://x.ngrok-free.app", "CONNECT_DEV_APP_KEY": "k"}
    assert problems_of(text, env=env) == []


def test_resolve_variables_keeps_comments_and_layout() -> None:
    text = (
        "app:\n    connect:\n        key: ${K}   # the key\n"
        "environment:\n    variables:\n    -   K\n"
    )
    # A value as long as its ${K} keeps even the comment's column.
    assert resolve_variables(text, {"K": "a.bc"}) == text.replace("${K}", "a.bc")
    assert resolve_variables("app: {}\n", {}) == "app: {}\n"  # nothing declared: as it was
    with pytest.raises(ManifestError) as caught:
        resolve_variables(text, {}, file="m.yml")
    assert str(caught.value) == (
        "m.yml:3:9: $.app.connect.key: could not find environment variable 'K' (declared under "
        "environment.variables without a default, and not set)"
    )


def converted_like() -> str:
    return edit(
        ("key: com.example.app", "key: ${CONNECT_DEV_APP_KEY}"),
        ("url: /hello", "url: /hello?issue={issue.key}"),
        (
            "connectModules:",
            "environment:\n  variables:\n    - key: CONNECT_DEV_APP_KEY\n"
            "      default: com.example.app\nconnectModules:",
        ),
    )


def test_adoption_status_of_a_converted_manifest() -> None:
    status = adoption_status(parse_manifest(converted_like()))
    assert [p.format() for p in status.findings] == [
        "15:1: $.connectModules: [E001] 2 Connect module type(s) left: jira:lifecycle (1), "
        "jira:generalPages (1); migrate them to Forge modules (modules:) in time",
        "5:3: $.app.connect: [E002] Connect fields besides key: remote (needed while "
        "connectModules remain)",
        "25:3: $.permissions.scopes: [E004] Connect scopes: read:connect-jira (Forge scopes such "
        "as read:jira-work replace them)",
        "2:3: $.app.id: [W002] app.id is the placeholder: run `forge register`",
        "15:1: $.connectModules: [W003] 1 module(s) use Connect context parameters such as "
        "{issue.key}: check that Forge modules get them",
    ]
    assert {p.severity for p in status.findings} == {"info"}
    assert status.summary.startswith("not started")
    assert not status.fully_adopted


def test_adoption_status_states() -> None:
    adopted = "app:\n  id: ari:cloud:ecosystem::app/1\n  connect:\n    key: k\nmodules: {}\n"
    status = adoption_status(parse_manifest(adopted))
    assert (status.findings, status.fully_adopted) == ((), True)
    assert status.summary.startswith("fully adopted")
    too_far = "app:\n  id: ari:cloud:ecosystem::app/1\nconnectModules: {}\n"
    status = adoption_status(parse_manifest(too_far))
    assert [p.message[:6] for p in status.findings] == ["[E003]", "[W001]"]
    assert status.summary.startswith("gone too far")
    partly = BASE + "modules:\n  jira:issuePanel:\n    - key: p\n"
    assert adoption_status(parse_manifest(partly)).summary.startswith("partly adopted")


def test_validate_prints_manifest_problems_and_adoption_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "manifest.yml"
    path.write_text(converted_like())
    assert cli.main(["validate", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"info: {path}:15:1: $.connectModules: [E001] ")
    assert out[-2] == (
        f"info: {path}: adoption status: not started: a Connect app registered on Forge, "
        "served by its Connect remote"
    )
    assert out[-1] == f"{path}: ok: Connect app com.example.app, 2 Connect modules"

    path.write_text(edit(("remote: connect", "remote: nope")))
    assert cli.main(["validate", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0] == (
        f"{path}:7:5: $.app.connect.remote: 'nope' names no remote (remotes: connect)"
    )
    assert captured.err == f"{path}: 1 error\n"


def test_validate_checks_the_manifest_beside_the_descriptor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from .conftest import descriptor_text

    (tmp_path / "atlassian-connect.json").write_text(descriptor_text())
    (tmp_path / "manifest.yml").write_text(edit(("nodejs22.x", "nodejs18.x")))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["validate"]) == 1
    captured = capsys.readouterr()
    out = captured.out.splitlines()
    assert out[0].startswith("atlassian-connect.json: ok: test-addon (digest ")
    assert out[1] == (
        "manifest.yml:4:5: $.app.runtime.name: 'nodejs18.x' is not one of nodejs20.x, "
        "nodejs22.x, nodejs24.x"
    )
    assert captured.err == "manifest.yml: 1 error\n"


# --- the real @forge/manifest -------------------------------------------------------------------


@pytest.fixture(scope="module")
def facts(forge_node_modules: Path) -> dict[str, Any]:  # noqa: F811
    facts: dict[str, Any] = run_forge_js(forge_node_modules, "facts")
    return facts


@needs_node
def test_our_tables_are_the_installed_packages(facts: dict[str, Any]) -> None:
    assert facts["version"] == FORGE_MANIFEST_VERSION == schema.FORGE_MANIFEST_VERSION
    connect = [name for name in facts["supportedModules"] if name.startswith("connect-")]
    ours = [
        f"connect-{product}:{kind}"
        for product, kinds in schema.CONNECT_MODULES.items()
        for kind in kinds
    ]
    assert sorted(ours) == sorted(connect)
    assert len(connect) == 83  # 61 Jira, 22 Confluence in 13.7.0
    required = {
        f"{product}:{kind}": sorted(fields)
        for product, kinds in schema.CONNECT_MODULES.items()
        for kind, fields in kinds.items()
    }
    assert required == {name: sorted(fields) for name, fields in facts["requiredFields"].items()}
    assert sorted(set().union(*schema.CONNECT_SCOPES.values())) == sorted(facts["connectScopes"])
    assert list(schema.TOP_LEVEL_KEYS) == facts["topLevelKeys"]
    assert list(schema.APP_KEYS) == facts["appKeys"]
    assert list(schema.REQUIRED_APP_KEYS) == facts["requiredAppKeys"]
    assert schema.APP_ID_PATTERN.pattern == facts["appIdPattern"]
    assert list(schema.RUNTIMES) == facts["runtimes"]
    assert list(schema.REMOTE_KEYS) == facts["remoteKeys"]
    assert [*schema.REGIONS, "default"] == facts["regions"]
    key = facts["connect"]["properties"]["key"]
    assert f"^{schema.CONNECT_KEY_PATTERN.pattern}$" == key["pattern"]
    assert (key["minLength"], key["maxLength"]) == (1, schema.CONNECT_KEY_MAX_LENGTH)
    assert list(facts["connect"]["properties"]) == list(schema.APP_CONNECT_KEYS)
    assert facts["connect"]["properties"]["authentication"]["enum"] == ["jwt"]
    remote = facts["remoteKey"]
    assert f"^{schema.REMOTE_KEY_PATTERN.pattern}$" == remote["pattern"]
    assert remote["maxLength"] == schema.REMOTE_KEY_MAX_LENGTH
    assert facts["connect"]["properties"]["remote"]["pattern"] == remote["pattern"]
    assert f"^{schema.MODULE_KEY_PATTERN.pattern}$" == facts["moduleKeyPattern"]
    assert f"^{schema.VARIABLE_PATTERN.pattern}$" == facts["variablePattern"]


@dataclass(frozen=True)
class Case:
    """A manifest, the environment `forge deploy` would run with, and the fields both sides
    must blame (empty: both accept it)."""

    name: str
    text: str
    blame: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)


VARIABLES = "environment:\n  variables:\n    - B\n    - key: K\n      default: com.example.app\n"
MODULES_FORM = """\
modules:
  connect-jira:generalPages:
    - key: hello
      url: /hello
      name:
        value: Hello
"""

CORPUS = [
    Case("valid", BASE),
    Case("deprecated app.name", edit(("app:\n", "app:\n  name: Old\n")), ()),
    Case("90-character key", edit(("com.example.app", "k" * 90))),
    Case("91-character key", edit(("com.example.app", "k" * 91)), ("$.app.connect.key",)),
    Case("key pattern", edit(("com.example.app", "com example")), ("$.app.connect.key",)),
    Case("empty key", edit(("com.example.app", '""')), ("$.app.connect.key",)),
    Case("no key", edit(("    key: com.example.app\n", "")), ("$.app.connect.key",)),
    Case(
        "unknown module type",
        edit(("jira:generalPages:", "jira:notARealModule:")),
        ('$.connectModules["jira:notARealModule"]',),
    ),
    Case(
        "singular Confluence name",
        edit(("permissions:", "  confluence:staticContentMacro:\n    - key: m\npermissions:")),
        ('$.connectModules["confluence:staticContentMacro"]',),
    ),
    Case(
        "Forge-style prefix",
        edit(("jira:generalPages:", "connect-jira:generalPages:")),
        ('$.connectModules["connect-jira:generalPages"]',),
    ),
    Case(
        "every Confluence module type",
        edit(
            (
                "permissions:",
                "".join(
                    f"  confluence:{kind}:\n    - key: c{index}\n"
                    for index, kind in enumerate(schema.CONNECT_MODULES["confluence"])
                )
                + "permissions:",
            ),
            ("jira:lifecycle:", "jira:webhooks:"),
        ),
    ),
    Case(
        "two lifecycle entries",
        edit(
            ("installed: /installed\n", "installed: /installed\n    - key: l2\n      enabled: /e\n")
        ),
        ('$.connectModules["jira:lifecycle"]',),
    ),
    Case(
        "remote names nothing", edit(("remote: connect", "remote: nope")), ("$.app.connect.remote",)
    ),
    Case("no remote", edit(("    remote: connect\n", "")), ("$.app.connect.remote",)),
    Case(
        "no app.connect",
        edit(("  connect:\n    key: com.example.app\n    remote: connect\n", "")),
        ("$.app.connect.remote",),
    ),
    Case(
        "configurable remote",
        edit(
            (
                "baseUrl: https://example.com\n",
                "baseUrl: https://example.com\n    configurable:\n      name: X\n"
                "      description: Y\n",
            )
        ),
        ("$.app.connect.remote",),
    ),
    Case(
        "23-character remote key",
        edit(("remote: connect", "remote: " + "r" * 23), ("- key: connect", "- key: " + "r" * 23)),
    ),
    Case(
        "24-character remote key",
        edit(("remote: connect", "remote: " + "r" * 24), ("- key: connect", "- key: " + "r" * 24)),
        ("$.app.connect.remote", "$.remotes.key"),
    ),
    Case(
        "remote key pattern",
        edit(("remote: connect", "remote: con.nect"), ("- key: connect", "- key: con.nect")),
        ("$.app.connect.remote", "$.remotes.key"),
    ),
    Case(
        "authentication not jwt",
        edit(("    remote: connect\n", "    remote: connect\n    authentication: oauth\n")),
        ("$.app.connect.authentication",),
    ),
    Case(
        "authentication without connectModules",
        edit(
            ("    remote: connect\n", "    remote: connect\n    authentication: jwt\n"),
            (BASE[BASE.index("connectModules:") : BASE.index("permissions:")], MODULES_FORM),
        ),
        ("$.app.connect.authentication",),
    ),
    Case(
        "authentication jwt",
        edit(("    remote: connect\n", "    remote: connect\n    authentication: jwt\n")),
    ),
    Case(
        "unknown app.connect field",
        edit(("    remote: connect\n", "    remote: connect\n    extra: 1\n")),
        ("$.app.connect.extra",),
    ),
    Case("unknown app field", edit(("app:\n", "app:\n  foo: 1\n")), ("$.app.foo",)),
    Case(
        "no app.id",
        edit(("  id: ari:cloud:ecosystem::app/invalid-run-forge-register\n", "")),
        ("$.app.id",),
    ),
    Case(
        "bad app.id",
        edit(("ari:cloud:ecosystem::app/invalid-run-forge-register", "nope")),
        ("$.app.id",),
    ),
    Case("no runtime", edit(("  runtime:\n    name: nodejs22.x\n", "")), ("$.app.runtime",)),
    Case("old runtime", edit(("nodejs22.x", "nodejs18.x")), ("$.app.runtime.name",)),
    Case("unknown section", edit(("permissions:", "foo: 1\npermissions:")), ("$.foo",)),
    Case("no app", BASE[BASE.index("remotes:") :], ("$.app",)),
    Case(
        "neither modules nor connectModules",
        edit((BASE[BASE.index("connectModules:") : BASE.index("permissions:")], "")),
        ("$",),
    ),
    Case(
        "connectModules a list",
        edit(
            (
                BASE[BASE.index("connectModules:") : BASE.index("permissions:")],
                "connectModules: []\n",
            )
        ),
        ("$.connectModules",),
    ),
    Case(
        "empty connectModules",
        edit(
            (
                BASE[BASE.index("connectModules:") : BASE.index("permissions:")],
                "connectModules: {}\n",
            )
        ),
    ),
    Case(
        "regions",
        edit(
            (
                "baseUrl: https://example.com",
                "baseUrl: {default: https://a.example, EU: https://eu.example}",
            )
        ),
    ),
    Case(
        "regions without default",
        edit(("baseUrl: https://example.com", "baseUrl: {EU: https://eu.example}")),
        ("$.remotes.baseUrl",),
    ),
    Case(
        "unknown region",
        edit(
            ("baseUrl: https://example.com", "baseUrl: {default: https://a.example, XX: https://x}")
        ),
        ("$.remotes.baseUrl",),
    ),
    Case(
        "baseUrl a number",
        edit(("baseUrl: https://example.com", "baseUrl: 5")),
        ("$.remotes.baseUrl",),
    ),
    Case(
        "unknown remote field",
        edit(("baseUrl: https://example.com\n", "baseUrl: https://example.com\n    foo: 1\n")),
        ("$.remotes.foo",),
    ),
    Case(
        "remote without key",
        edit(("connectModules:", "  - baseUrl: https://b.example\nconnectModules:")),
        ("$.remotes.key",),
    ),
    Case(
        "bad variable name",
        edit(("connectModules:", "environment:\n  variables:\n    - 1BAD\nconnectModules:")),
        ("$.environment.variables",),
    ),
    Case(
        "variable object without default",
        edit(("connectModules:", "environment:\n  variables:\n    - key: X\nconnectModules:")),
        ("$.environment.variables",),
    ),
    Case(
        "unknown environment field",
        edit(("connectModules:", "environment:\n  foo: []\nconnectModules:")),
        ("$.environment.foo",),
    ),
    Case(
        "bad Connect scope",
        edit(("read:connect-jira", "read:connect-jiraa")),
        ("$.permissions.scopes",),
    ),
    Case(
        "Jira-only scope for Confluence",
        edit(("read:connect-jira", "project-admin:connect-confluence")),
        ("$.permissions.scopes",),
    ),
    Case(
        "every Connect scope",
        edit(
            (
                "    - read:connect-jira\n",
                "".join(
                    f"    - {s}\n" for s in sorted(set().union(*schema.CONNECT_SCOPES.values()))
                ),
            )
        ),
    ),
    Case("scopes as a mapping", edit(("    - read:connect-jira\n", "    read:connect-jira: {}\n"))),
    Case(
        "duplicate module key",
        edit(("- key: hello", "- key: lifecycle-events")),
        ("$.connectModules",),
    ),
    Case(
        "single module object",  # forge lint accepts it; Cloud does not (install_problems)
        edit(
            (
                "    - key: hello\n      url: /hello\n      name:\n        value: Hello\n",
                "    key: hello\n    url: /hello\n",
            )
        ),
    ),
    Case("module without its fields", edit(("      url: /hello\n", ""))),
    Case("not YAML", "app:\n  id: [1, 2\n", ("$",)),
    Case("duplicate YAML key", edit(("  runtime:", "  id: again\n  runtime:")), ("$",)),
    Case("not a mapping", "- a\n", ("$",)),
    Case(
        "variable missing",
        edit(
            ("baseUrl: https://example.com", "baseUrl: ${B}"),
            ("key: com.example.app", "key: ${K}"),
            ("connectModules:", VARIABLES + "connectModules:"),
        ),
        ("variable B",),
    ),
    Case(
        "variables set",
        edit(
            ("baseUrl: https://example.com", "baseUrl: ${B}"),
            ("key: com.example.app", "key: ${K}"),
            ("connectModules:", VARIABLES + "connectModules:"),
        ),
        env={"B": "https://x.ngrok-free.app"},
    ),
    Case(
        "variable set to a bad key",
        edit(
            ("baseUrl: https://example.com", "baseUrl: ${B}"),
            ("key: com.example.app", "key: ${K}"),
            ("connectModules:", VARIABLES + "connectModules:"),
        ),
        ("$.app.connect.key",),
        env={"B": "https://x.ngrok-free.app", "K": "bad key"},
    ),
    Case(
        "undeclared variable", edit(("key: com.example.app", "key: ${K}")), ("$.app.connect.key",)
    ),
]


def normalised(path: str) -> str:
    return re.sub(r"\[\d+\]", "", path)


def our_blame(problem: Problem) -> str:
    missing = re.match(r"could not find environment variable '(\w+)'", problem.message)
    return f"variable {missing.group(1)}" if missing else normalised(problem.path)


FORGE_MESSAGES: list[tuple[str, str]] = [
    (r"failed to parse content - could not find environment variable '(\w+)'", "variable {0}"),
    (r"failed to parse content", "$"),
    (r"^invalid value '(.+)' in connectModules$", '$.connectModules["{0}"]'),
    (r"^'(.+)' should contain only one element$", '$.connectModules["{0}"]'),
    (r"^missing app\.connect\.remote", "$.app.connect.remote"),
    (r"^no remote found with key", "$.app.connect.remote"),
    (r"^Connect remotes cannot be configurable", "$.app.connect.remote"),
    (r"^Missing connectModules", "$.app.connect.authentication"),
    (r"^found duplicate module key", "$.connectModules"),
    (r"^Invalid 'scopes' permission", "$.permissions.scopes"),
    (r"^document required properties are 'modules' or 'connectModules'", "$"),
    (r"^document must be object", "$"),
    (r"^document should NOT have additional property '(.+)'$", "$.{0}"),
    (r"^document must have required property '(.+)'$", "$.{0}"),
]


def forge_blame(message: str) -> str:
    """The field an error of @forge/manifest is about, as our paths name it."""
    for pattern, blame in FORGE_MESSAGES:
        match = re.search(pattern, message)
        if match:
            return blame.format(*match.groups())
    # A schema error: "app connect property key 'x' must match ...", "app must have required
    # property 'id'", "app property connect should NOT have additional property 'extra'".
    words: list[str] = []
    for word in message.split(" "):
        if word.startswith("'") or word in ("must", "should", "allowed", "required"):
            break
        if word != "property":
            words.append(word)
    extra = re.search(r"(?:required|additional) property '(.+?)'", message)
    return "$." + ".".join(words + ([extra.group(1)] if extra else []))


def forge_verdicts(node_modules: Path, cases: list[Case], directory: Path) -> dict[str, Any]:
    """@forge/manifest's FULL validation of each case, one node process per environment."""
    verdicts: dict[str, Any] = {}
    groups: dict[str, list[tuple[Case, Path]]] = {}
    for index, case in enumerate(cases):
        path = directory / f"case-{index}" / "manifest.yml"
        path.parent.mkdir()
        path.write_text(case.text)
        groups.setdefault(json.dumps(case.env, sort_keys=True), []).append((case, path))
    for env, members in groups.items():
        results = run_forge_js(
            node_modules, "validate", *(str(path) for _, path in members), env=json.loads(env)
        )
        for (case, _), result in zip(members, results, strict=True):
            verdicts[case.name] = result
    return verdicts


@pytest.fixture(scope="module")
def lint_verdicts(
    forge_node_modules: Path,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    return forge_verdicts(forge_node_modules, CORPUS, tmp_path_factory.mktemp("lint"))


def agree(case: Case, verdict: dict[str, Any], ours: list[Problem]) -> None:
    theirs = [error for error in verdict["errors"] if error["level"] == "error"]
    detail = f"ours: {[p.format() for p in ours]}\ntheirs: {theirs}"
    assert verdict["success"] == (not ours) == (not case.blame), detail
    for blamed in ({our_blame(p) for p in ours}, {forge_blame(e["message"]) for e in theirs}):
        assert all(any(b.startswith(prefix) for prefix in case.blame) for b in blamed), detail
        assert all(any(b.startswith(prefix) for b in blamed) for prefix in case.blame), detail


@needs_node
@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
def test_lint_agrees_with_forge_manifest(case: Case, lint_verdicts: dict[str, Any]) -> None:
    agree(case, lint_verdicts[case.name], errors_of(problems_of(case.text, env=case.env)))


BODY_HEAD = """\
app:
  id: ari:cloud:ecosystem::app/invalid-run-forge-register
  runtime:
    name: nodejs22.x
  connect:
    key: com.example.app
    remote: connect
remotes:
  - key: connect
    baseUrl: https://example.com
"""

# (name, module type, body as YAML under the type's key, fields blamed)
BODIES = [
    (
        "complete page",
        "jira:generalPages",
        "\n    - key: p\n      name: {value: P}\n      url: /p",
        (),
    ),
    ("page without name and url", "jira:generalPages", "\n    - key: p", (".name", ".url")),
    ("page without key", "jira:generalPages", "\n    - name: {value: P}\n      url: /p", (".key",)),
    (
        "key pattern",
        "jira:generalPages",
        "\n    - key: p q\n      name: {value: P}\n      url: /p",
        (".key",),
    ),
    (
        "extra field",
        "jira:generalPages",
        "\n    - key: p\n      name: {value: P}\n      url: /p\n      foo: 1",
        (),
    ),
    (
        "object, not list",
        "jira:generalPages",
        "\n    key: p\n    name: {value: P}\n    url: /p",
        ("",),
    ),
    ("empty list", "jira:generalPages", " []", ("",)),
    ("webhook without event", "jira:webhooks", "\n    - key: w\n      url: /w", (".event",)),
    ("lifecycle with its key only", "jira:lifecycle", "\n    - key: l", ()),
    (
        "dashboard item without thumbnail",
        "jira:jiraDashboardItems",
        "\n    - key: d\n      name: {value: D}\n      description: {value: D}\n      url: /d",
        (".thumbnailUrl",),
    ),
    (
        "macro without url",
        "confluence:staticContentMacros",
        "\n    - key: m\n      name: {value: M}",
        (".url",),
    ),
    (
        "blueprint",
        "confluence:blueprints",
        "\n    - key: b\n      name: {value: B}\n      template: {url: /t}",
        (),
    ),
]


@pytest.fixture(scope="module")
def body_verdicts(
    forge_node_modules: Path,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    cases = [
        Case(name, f"{BODY_HEAD}modules:\n  connect-{kind}:{body}\n")
        for name, kind, body, _ in BODIES
    ]
    return forge_verdicts(forge_node_modules, cases, tmp_path_factory.mktemp("bodies"))


@needs_node
@pytest.mark.parametrize(("name", "kind", "body", "fields"), BODIES, ids=[b[0] for b in BODIES])
def test_module_bodies_agree_with_the_schema_forge_applies_under_modules(
    name: str, kind: str, body: str, fields: tuple[str, ...], body_verdicts: dict[str, Any]
) -> None:
    """Cloud checks connectModules bodies only at install; @forge/manifest checks the same
    modules offline when they are written under `modules: connect-<product>:<type>`."""
    manifest = parse_manifest(f"{BODY_HEAD}connectModules:\n  {kind}:{body}\n")
    assert errors_of(lint_problems(manifest)) == []
    ours = install_problems(manifest)
    verdict = body_verdicts[name]
    blame = tuple(f'$.connectModules["{kind}"]{suffix}' for suffix in fields)
    theirs = [
        Problem(forge_body_blame(error["message"]), error["message"]) for error in verdict["errors"]
    ]
    assert verdict["success"] == (not ours) == (not blame), (ours, theirs)
    for blamed in ({normalised(p.path) for p in ours}, {p.path for p in theirs}):
        assert blamed == set(blame), (ours, theirs)


def forge_body_blame(message: str) -> str:
    """ "connect-jira:generalPages must have required property 'name'" →
    $.connectModules["jira:generalPages"].name"""
    match = re.match(r"connect-(\S+) (?:property (\S+) )?(?:'.*' )?", message)
    assert match, message
    required = re.search(r"required property '(.+?)'", message)
    field_name = required.group(1) if required else match.group(2)
    return f'$.connectModules["{match.group(1)}"]' + (f".{field_name}" if field_name else "")


INTERPOLATION = """\
app:
  id: ari:cloud:ecosystem::app/invalid-run-forge-register
  connect:
    key: ${KEY}
    remote: connect
remotes:
  - key: connect
    baseUrl: ${BASE}
environment:
  variables:
    - BASE
    - key: KEY
      default: com.example.default
    - key: EMPTY_DEFAULT
      default: ""
    - OTHER
connectModules:
  jira:generalPages:
    - key: hello
      url: ${BASE}/hello?a=${KEY}&b=${NOT_DECLARED}&c=$${BASE}&d=${BASE}}
      name:
        value: ${OTHER}
      ${BASE}: the key stays
      list: ["${BASE}", "${EMPTY_DEFAULT}x", 1, true, null]
"""

INTERPOLATIONS = [
    ("all set", {"BASE": "https://a.example", "KEY": "k", "OTHER": "o"}),
    ("defaults", {"BASE": "https://a.example", "OTHER": "o"}),
    ("empty values", {"BASE": "", "KEY": "", "OTHER": ""}),
    ("not scanned again", {"BASE": "${OTHER}", "OTHER": "o", "KEY": "123"}),
    ("one missing", {"BASE": "https://a.example"}),
]


@needs_node
@pytest.mark.parametrize(("name", "env"), INTERPOLATIONS, ids=[i[0] for i in INTERPOLATIONS])
def test_resolve_variables_agrees_with_the_real_interpolator(
    name: str,
    env: dict[str, str],
    forge_node_modules: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    path = tmp_path / "manifest.yml"
    path.write_text(INTERPOLATION)
    theirs = run_forge_js(forge_node_modules, "interpolate", str(path), env=env)
    try:
        ours: dict[str, Any] = {
            "manifest": to_plain(parse_yaml(resolve_variables(INTERPOLATION, env)))
        }
    except ManifestError as exc:
        ours = {"error": str(exc)}
    if "error" in theirs:
        assert "error" in ours
        variable = re.search(r"could not find environment variable '\w+'", theirs["error"])
        assert variable is not None
        assert variable.group(0) in ours["error"]
    else:
        assert ours == theirs
