"""`connect-dev forge convert` (connect_devloop/forge/convert.py, commands/forge.py).

The converter's manifests for a corpus of descriptors (Jira and Confluence, every module type
the installed @forge/manifest accepts, every lifecycle hook, webhooks, every scope,
regionBaseUrls) pass the package's FULL validation, as `forge deploy` runs it; the rest runs
without node: what is written, what is kept of an existing manifest, what is dropped and why,
and the command's output and errors.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from connect_devloop import cli
from connect_devloop.descriptor import parse as parse_descriptor
from connect_devloop.forge import manifest_schema as schema
from connect_devloop.forge.convert import (
    Dropped,
    guess_product,
    render_connect_parts,
    update_manifest,
)
from connect_devloop.forge.manifest import ManifestError, check_manifest, parse_manifest

from .conftest import SAMPLE_DESCRIPTOR
from .forge_manifest.fixtures import forge_node_modules, needs_node  # noqa: F401
from .forge_manifest.npm import run_forge_js

SAMPLE_MANIFEST = """\
# Forge manifest of a Connect app. `connect-dev forge convert` writes its Connect parts from
# atlassian-connect.json: app.connect, the Connect remote, the CONNECT_DEV_* variables,
# connectModules and the :connect- scopes. Anything else here is yours and stays as you write it.
# `forge deploy` fills ${CONNECT_DEV_BASE_URL} and ${CONNECT_DEV_APP_KEY} from its environment
# (`connect-dev up` sets them), else from the defaults under environment.variables.
app:
  id: ari:cloud:ecosystem::app/invalid-run-forge-register
  runtime:
    name: nodejs22.x
  connect:
    key: ${CONNECT_DEV_APP_KEY}
    remote: connect
remotes:
  - key: connect
    baseUrl: ${CONNECT_DEV_BASE_URL}
environment:
  variables:
    - CONNECT_DEV_BASE_URL
    - key: CONNECT_DEV_APP_KEY
      default: test-addon
connectModules:
  jira:lifecycle:
    - key: lifecycle-events
      installed: /installed
      uninstalled: /uninstalled
  jira:generalPages:
    - key: hello
      name:
        value: Hello
      url: /hello
permissions:
  scopes:
    - read:connect-jira
"""


def descriptor(**changes: Any) -> dict[str, Any]:
    document = {**SAMPLE_DESCRIPTOR, **changes}
    return {key: value for key, value in document.items() if value is not None}


def test_the_sample_descriptor_becomes_this_manifest() -> None:
    conversion = update_manifest(None, SAMPLE_DESCRIPTOR, "jira")
    assert conversion.text == SAMPLE_MANIFEST
    assert (conversion.created, conversion.changed, conversion.problems) == (True, True, ())
    assert conversion.parts.dropped == (
        Dropped(
            "$.name",
            "Forge keeps the app's name at registration (`forge register NAME`, the developer "
            "console); the manifest has no field for it (app.name is deprecated)",
        ),
        Dropped(
            "$.apiMigrations",
            "the manifest has no field for Connect API migrations (signed-install, "
            "context-qsh, ...): Cloud signs a Forge-registered Connect app's lifecycle "
            "callbacks with RS256 as it does with signed-install",
        ),
    )


def test_every_lifecycle_hook_goes_into_the_one_lifecycle_entry() -> None:
    hooks = {"installed": "/i", "uninstalled": "/u", "enabled": "/e", "disabled": "/d"}
    parts = render_connect_parts(descriptor(lifecycle=hooks), "confluence")
    assert parts.modules["confluence:lifecycle"] == [{"key": "lifecycle-events", **hooks}]


def test_webhooks_get_keys_from_their_event_that_stay_when_others_are_added() -> None:
    webhooks = [
        {"event": "jira:issue_created", "url": "/created"},
        {"event": "jira:issue_updated", "url": "/updated"},
    ]
    first = render_connect_parts(descriptor(modules={"webhooks": webhooks}), "jira")
    webhooks.insert(0, {"event": "jira:issue_created", "url": "/created-too"})
    webhooks.append({"event": "x", "url": "/x", "key": "mine"})
    second = render_connect_parts(descriptor(modules={"webhooks": webhooks}), "jira")
    assert [w["key"] for w in first.modules["jira:webhooks"]] == [
        "webhook-jira-issue-created",
        "webhook-jira-issue-updated",
    ]
    assert [(w["key"], w["url"]) for w in second.modules["jira:webhooks"]] == [
        ("webhook-jira-issue-created", "/created-too"),
        ("webhook-jira-issue-created-2", "/created"),
        ("webhook-jira-issue-updated", "/updated"),
        ("mine", "/x"),
    ]


def test_generated_keys_never_collide_with_the_descriptors() -> None:
    modules = {"generalPages": [{"key": "lifecycle-events", "name": {"value": "L"}, "url": "/"}]}
    parts = render_connect_parts(descriptor(modules=modules), "jira")
    assert parts.modules["jira:lifecycle"][0]["key"] == "lifecycle-events-2"


DESCRIPTOR_SCOPES = [
    "READ",
    "WRITE",
    "DELETE",
    "PROJECT_ADMIN",
    "SPACE_ADMIN",
    "ADMIN",
    "ACT_AS_USER",
    "ACCESS_EMAIL_ADDRESSES",
    "NONE",
]


@pytest.mark.parametrize("product", schema.PRODUCTS)
def test_every_descriptor_scope_is_mapped_or_dropped_with_why(product: str) -> None:
    parts = render_connect_parts(descriptor(scopes=[*DESCRIPTOR_SCOPES, "read"]), product)
    assert sorted(parts.scopes) == sorted(schema.CONNECT_SCOPES[product])
    other_admin = "SPACE_ADMIN" if product == "jira" else "PROJECT_ADMIN"
    assert [d for d in parts.dropped if d.path.startswith("$.scopes")] == [
        Dropped(
            f"$.scopes[{DESCRIPTOR_SCOPES.index(other_admin)}]",
            f"{other_admin} has no Connect scope for {product} in Forge",
        ),
        Dropped("$.scopes[8]", "NONE grants nothing"),
    ]


def test_what_cannot_be_carried_is_listed_with_why() -> None:
    document = descriptor(
        description="An app",
        vendor={"name": "Me"},
        links={"self": "x"},
        apiVersion=2,
        aliasKey="alias",
        somethingNew=1,
        authentication={"type": "none"},
        lifecycle=None,
    )
    paths = [d.path for d in render_connect_parts(document, "jira").dropped]
    assert paths == [
        "$.name",
        "$.apiMigrations",
        "$.description",
        "$.vendor",
        "$.links",
        "$.apiVersion",
        "$.aliasKey",
        "$.somethingNew",
        "$.authentication.type",
    ]


def test_modules_of_the_other_product_or_none_are_dropped_with_a_hint() -> None:
    modules = {
        "staticContentMacros": [{"key": "m", "name": {"value": "M"}, "url": "/m"}],
        "generalPage": [{"key": "g"}],
    }
    parts = render_connect_parts(descriptor(modules=modules), "jira")
    assert [(d.path, d.reason) for d in parts.dropped if d.path.startswith("$.modules")] == [
        (
            "$.modules.staticContentMacros",
            "a Confluence module; this manifest is for jira (--product confluence converts for "
            "Confluence)",
        ),
        (
            "$.modules.generalPage",
            "@forge/manifest 13.7.0 accepts no connectModules 'jira:generalPage' "
            "(did you mean 'generalPages'?)",
        ),
    ]


def test_the_product_is_guessed_from_confluence_only_modules() -> None:
    assert guess_product(SAMPLE_DESCRIPTOR) == ("jira", "no Confluence-only module or scope")
    macros = descriptor(modules={"dynamicContentMacros": [], "generalPages": []})
    assert guess_product(macros) == ("confluence", "Confluence modules (dynamicContentMacros)")
    assert guess_product(descriptor(scopes=["space_admin"])) == (
        "confluence",
        "the SPACE_ADMIN scope",
    )


def test_descriptor_tokens_become_the_manifest_variables() -> None:
    page = {
        "key": "p",
        "name": {"value": "{{appKey}}"},
        "url": "/p",
        "icon": {"url": "{{localBaseUrl}}/i.png"},
    }
    parts = render_connect_parts(descriptor(modules={"generalPages": page}), "jira")
    assert parts.modules["jira:generalPages"] == [
        {
            "key": "p",
            "name": {"value": "${CONNECT_DEV_APP_KEY}"},
            "url": "/p",
            "icon": {"url": "${CONNECT_DEV_BASE_URL}/i.png"},
        }
    ]


def test_a_real_base_url_is_the_default_and_regions_are_carried() -> None:
    regions = {"EU": "https://eu.example.com", "XX": "https://x.example.com"}
    parts = render_connect_parts(
        descriptor(baseUrl="https://app.example.com/", regionBaseUrls=regions), "jira"
    )
    assert parts.variables == (
        ("CONNECT_DEV_BASE_URL", "https://app.example.com"),
        ("CONNECT_DEV_APP_KEY", "test-addon"),
    )
    assert parts.base_url == {"default": "${CONNECT_DEV_BASE_URL}", "EU": "https://eu.example.com"}
    assert parts.dropped[-1] == Dropped(
        "$.regionBaseUrls.XX",
        "a remote's baseUrl knows the regions EU, US, AU, DE, SG, CA, IN, KR, JP, GB, CH",
    )


EXISTING = """\
# Our app: hand-written parts stay.
app:
    id: ari:cloud:ecosystem::app/0b1c  # from forge register
    runtime:
        name: nodejs20.x
    connect:
        key: old
        remote: backend
        authentication: jwt
remotes:
-   key: other  # a Forge remote
    baseUrl: https://other.example.com
-   key: backend
    baseUrl: https://old.example.com
    operations: [fetch]
environment:
    variables:
    - MY_VAR
    - CONNECT_DEV_APP_KEY
connectModules:
    jira:oldPages:
    -   key: old
permissions:
    scopes:
    - storage:app
    - read:connect-jira
    - delete:connect-jira
    - read:jira-work
"""


def test_an_existing_manifest_keeps_everything_but_the_connect_parts() -> None:
    conversion = update_manifest(EXISTING, descriptor(scopes=["read", "write"]), "jira")
    assert conversion.text == (
        """\
# Our app: hand-written parts stay.
app:
    id: ari:cloud:ecosystem::app/0b1c  # from forge register
    runtime:
        name: nodejs20.x
    connect:
        key: ${CONNECT_DEV_APP_KEY}
        remote: backend
        authentication: jwt
remotes:
-   key: other  # a Forge remote
    baseUrl: https://other.example.com
-   key: backend
    baseUrl: ${CONNECT_DEV_BASE_URL}
    operations: [fetch]
environment:
    variables:
    -   MY_VAR
    -   key: CONNECT_DEV_APP_KEY
        default: test-addon
    -   CONNECT_DEV_BASE_URL
connectModules:
    jira:lifecycle:
    -   key: lifecycle-events
        installed: /installed
        uninstalled: /uninstalled
    jira:generalPages:
    -   key: hello
        name:
            value: Hello
        url: /hello
permissions:
    scopes:
    -   storage:app
    -   read:connect-jira
    -   write:connect-jira
    -   read:jira-work
"""
    )
    assert conversion.remote_key == "backend"
    again = update_manifest(conversion.text, descriptor(scopes=["read", "write"]), "jira")
    assert (again.changed, again.text) == (False, conversion.text)


def test_a_section_of_another_shape_is_refused_with_its_place() -> None:
    with pytest.raises(ManifestError) as caught:
        update_manifest("app:\n  id: x\nremotes: nope\n", SAMPLE_DESCRIPTOR, "jira")
    assert str(caught.value) == (
        "manifest.yml:3:1: $.remotes: must be a list for connect-dev to write into it"
    )
    with pytest.raises(ManifestError, match=r"manifest.yml:2:1: \$: invalid YAML"):
        update_manifest("app: [1,\n", SAMPLE_DESCRIPTOR, "jira")


# --- the command --------------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "atlassian-connect.json").write_text(json.dumps(SAMPLE_DESCRIPTOR, indent=2))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_convert_writes_the_manifest_and_says_what_it_left_out(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["forge", "convert"]) == 0
    assert (project / "manifest.yml").read_text() == SAMPLE_MANIFEST
    assert capsys.readouterr().out.splitlines() == [
        "wrote manifest.yml: jira (guessed from no Confluence-only module or scope)",
        "  connectModules: 2 modules of 2 types",
        "  scopes: read:connect-jira",
        "  ${CONNECT_DEV_BASE_URL}: baseUrl of remote connect (no default: set it for "
        "`forge deploy`)",
        "  ${CONNECT_DEV_APP_KEY}: app.connect.key (default test-addon)",
        "not carried:",
        "  $.name: Forge keeps the app's name at registration (`forge register NAME`, the "
        "developer console); the manifest has no field for it (app.name is deprecated)",
        "  $.apiMigrations: the manifest has no field for Connect API migrations "
        "(signed-install, context-qsh, ...): Cloud signs a Forge-registered Connect app's "
        "lifecycle callbacks with RS256 as it does with signed-install",
    ]
    assert cli.main(["forge", "convert", "--product", "jira"]) == 0
    assert capsys.readouterr().out.startswith("up to date: manifest.yml: jira (--product)\n")


def test_convert_json_is_one_object(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["forge", "convert", "-o", "forge/manifest.yml", "--json"]) == 1
    assert capsys.readouterr().err.startswith("connect-dev: error: ")
    assert not (project / "forge").exists()  # no directory is made on the way
    (project / "forge").mkdir()
    assert cli.main(["forge", "convert", "-o", "forge/manifest.yml", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result == {
        "path": "forge/manifest.yml",
        "product": "jira",
        "product_reason": "no Confluence-only module or scope",
        "created": True,
        "changed": True,
        "remote": "connect",
        "modules": 2,
        "module_types": ["jira:generalPages", "jira:lifecycle"],
        "scopes": ["read:connect-jira"],
        "variables": {"CONNECT_DEV_BASE_URL": None, "CONNECT_DEV_APP_KEY": "test-addon"},
        "dropped": [
            {"path": "$.name", "reason": result["dropped"][0]["reason"]},
            {"path": "$.apiMigrations", "reason": result["dropped"][1]["reason"]},
        ],
        "problems": [],
    }


def test_convert_refuses_a_descriptor_that_does_not_validate(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "atlassian-connect.json").write_text(
        json.dumps({**SAMPLE_DESCRIPTOR, "key": "bad key", "scopes": ["wirte"]}, indent=2)
    )
    assert cli.main(["forge", "convert"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "atlassian-connect.json:2:3: $.key: 'bad key' may contain only letters, digits, '-', "
        "'.' and '_'",
        "atlassian-connect.json:16:5: $.scopes[0]: 'wirte' is not a Connect scope (did you mean "
        "'write'?)",
        "connect-dev: error: atlassian-connect.json: 2 errors; manifest.yml was not written",
        "  hint: Fix the descriptor (`connect-dev validate` shows the same), then convert again.",
    ]
    assert not (project / "manifest.yml").exists()


def test_convert_errors_name_the_file_and_give_a_hint(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["forge", "convert", "missing.json"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("connect-dev: error: missing.json: $: file not found")
    assert "  hint: " in err
    (project / "manifest.yml").write_text("app:\n  id: [\n")
    assert cli.main(["forge", "convert"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("connect-dev: error: manifest.yml:3:1: $: invalid YAML: ")
    assert cli.main(["forge"]) == 2


def test_the_manifest_is_replaced_atomically_keeping_its_mode(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = project / "manifest.yml"
    manifest.write_text("app:\n  id: ari:cloud:ecosystem::app/1\n")
    manifest.chmod(0o640)
    inode = manifest.stat().st_ino
    assert cli.main(["forge", "convert"]) == 0
    assert stat.S_IMODE(manifest.stat().st_mode) == 0o640
    assert manifest.stat().st_ino != inode  # a new file renamed over the old one
    assert "id: ari:cloud:ecosystem::app/1\n" in manifest.read_text()
    assert [p.name for p in project.iterdir() if p.name.startswith(".")] == []

    real = project / "real.yml"
    manifest.rename(real)
    manifest.symlink_to(real.name)
    real.write_text(real.read_text().replace("test-addon", "old"))
    assert cli.main(["forge", "convert"]) == 0
    assert manifest.is_symlink()
    assert "default: test-addon" in real.read_text()

    new = project / "new.yml"
    umask = os.umask(0o027)
    try:
        assert cli.main(["forge", "convert", "-o", str(new)]) == 0
    finally:
        os.umask(umask)
    assert stat.S_IMODE(new.stat().st_mode) == 0o640
    capsys.readouterr()


def test_convert_reports_problems_left_in_the_manifest(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    modules = {"generalPages": [{"key": "p", "name": {"value": "P"}}]}
    (project / "atlassian-connect.json").write_text(json.dumps(descriptor(modules=modules)))
    assert cli.main(["forge", "convert"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == (
        'manifest.yml:27:7: $.connectModules["jira:generalPages"][0].url: required field is '
        "missing (Cloud refuses the install; forge lint does not check module bodies)"
    )


# --- the real @forge/manifest -------------------------------------------------------------------


def required_value(field_name: str) -> Any:
    if field_name.lower().endswith("url") or field_name in ("triggered", "webhook", "callback"):
        return f"/{field_name.lower()}"
    return {"value": field_name}


def full_descriptor(facts: dict[str, Any], product: str, base_url: str) -> dict[str, Any]:
    """Every module type @forge/manifest accepts for ``product``, with the fields each requires,
    every lifecycle hook, webhooks, every scope, regions, translations, an app migration."""
    prefix = f"connect-{product}:"
    kinds = [name[len(prefix) :] for name in facts["supportedModules"] if name.startswith(prefix)]
    modules: dict[str, Any] = {}
    for kind in kinds:
        if kind in ("lifecycle", "translations", "cloudAppMigration", "webhooks"):
            continue
        body = {name: required_value(name) for name in facts["requiredFields"][f"{product}:{kind}"]}
        body["key"] = f"{kind.lower()}-1"
        # Single modules (postInstallPage, configurePage...) come as one object.
        modules[kind] = body if kind.endswith(("Page", "Provider")) else [body]
    modules["webhooks"] = [
        {"event": f"{product}:thing_created", "url": "/created"},
        {"event": f"{product}:thing_created", "url": "/created-again", "excludeBody": True},
        {"event": "connect_addon_enabled", "url": "/enabled"},
    ]
    scopes = [
        s
        for s in DESCRIPTOR_SCOPES
        if s != ("SPACE_ADMIN" if product == "jira" else "PROJECT_ADMIN")
    ]
    return {
        "key": f"com.example.{product}-app",
        "name": "Everything",
        "description": "Every module type",
        "vendor": {"name": "Example", "url": "https://example.com"},
        "baseUrl": base_url,
        "authentication": {"type": "jwt"},
        "apiVersion": 1,
        "apiMigrations": {"signed-install": True, "context-qsh": True},
        "enableLicensing": True,
        "lifecycle": {
            "installed": "/installed",
            "uninstalled": "/uninstalled",
            "enabled": "/enabled",
            "disabled": "/disabled",
        },
        "scopes": scopes,
        "regionBaseUrls": {"EU": "https://eu.example.com", "US": "https://us.example.com"},
        "translations": {"paths": {"en-US": "/i18n/en-US.json"}},
        "cloudAppMigration": {"migrationWebhookPath": "/migration"},
        "modules": modules,
    }


REGISTERED = """\
# registered with `forge register`
app:
  id: ari:cloud:ecosystem::app/0b1c2d3e-0000-4000-8000-000000000000
  runtime:
    name: nodejs24.x
remotes:
  - key: other  # a remote of our own
    baseUrl: https://other.example.com
permissions:
  scopes:
    - storage:app
"""


@needs_node
def test_converted_manifests_pass_forge_manifest_full_validation(
    forge_node_modules: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    facts = run_forge_js(forge_node_modules, "facts")
    env = {"CONNECT_DEV_BASE_URL": "https://abc.ngrok-free.app"}
    cases: list[tuple[str, str, dict[str, str]]] = []
    for product in schema.PRODUCTS:
        for base_url, existing, case_env in (
            ("https://app.example.com", None, {}),  # the default is used
            ("{{localBaseUrl}}", None, env),  # no default: deploy sets it
            ("https://app.example.com", REGISTERED, {}),
        ):
            document = full_descriptor(facts, product, base_url)
            parse_descriptor(json.dumps(document).encode())  # a valid descriptor
            conversion = update_manifest(existing, document, product)
            assert conversion.problems == ()
            assert check_manifest(conversion.text, env=case_env) == []
            accepted = sorted(
                name.removeprefix("connect-")
                for name in facts["supportedModules"]
                if name.startswith(f"connect-{product}:")
            )
            assert sorted(conversion.parts.modules) == accepted
            assert sorted(conversion.parts.scopes) == sorted(
                s for s in facts["connectScopes"] if s.endswith(f":connect-{product}")
            )
            dropped = {d.path for d in conversion.parts.dropped}
            assert dropped == {
                "$.name",
                "$.description",
                "$.vendor",
                "$.apiVersion",
                "$.apiMigrations",
                "$.scopes[7]",
            }
            cases.append((f"{product} {base_url} {bool(existing)}", conversion.text, case_env))
    for run_env in ({}, env):  # one node process per environment
        runs = [(name, text) for name, text, case_env in cases if case_env == run_env]
        paths = []
        for name, text in runs:
            path = tmp_path / name.replace(" ", "-").replace("/", "") / "manifest.yml"
            path.parent.mkdir()
            path.write_text(text)
            paths.append(str(path))
        verdicts = run_forge_js(forge_node_modules, "validate", *paths, env=run_env)
        for (name, _), verdict in zip(runs, verdicts, strict=True):
            errors = [e for e in verdict["errors"] if e["level"] == "error"]
            assert verdict["success"], (name, errors)
    document = parse_manifest(cases[-1][1]).document
    assert document["app"]["id"].endswith("0b1c2d3e-0000-4000-8000-000000000000")
    assert document["remotes"][0] == {"key": "other", "baseUrl": "https://other.example.com"}
    assert document["permissions"]["scopes"][0] == "storage:app"


def test_convert_and_validate_use_the_manifest_the_config_names(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "connect-dev.toml").write_text(
        'descriptor = "atlassian-connect.json"\n\n[forge]\nmanifest = "forge/manifest.yml"\n'
    )
    (project / "forge").mkdir()
    manifest = project / "forge" / "manifest.yml"
    assert cli.main(["forge", "convert"]) == 0
    assert manifest.read_text() == SAMPLE_MANIFEST
    assert capsys.readouterr().out.startswith(f"wrote {manifest}: jira")
    assert cli.main(["validate"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"{manifest}: ok: Connect app test-addon, 2 Connect modules"
    )
    manifest.unlink()  # a Forge project needs it: its absence is an error
    assert cli.main(["validate"]) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines()[-1] == f"{manifest}: $: file not found"
    assert captured.err.startswith(f"{manifest}: 1 error\n  hint: ")


def test_an_environment_token_is_left_as_written_and_said_so() -> None:
    page = {"key": "p", "name": {"value": "P"}, "url": "/p?env={{environment}}"}
    parts = render_connect_parts(descriptor(modules={"generalPages": [page]}), "jira")
    assert parts.modules["jira:generalPages"][0]["url"] == "/p?env={{environment}}"
    assert parts.dropped[-1].reason.startswith("{{environment}} (atlassian-connect-express's")
