"""``manifest.yml`` of a Connect app on Forge: read with the line and column of every node, checked
offline, and its adoption status. Pure: no I/O but ``load_manifest`` and ``check_manifest`` of a
path.

Three kinds of findings, all ``Problem``s as descriptor.py gives them (so ``connect-dev validate``
prints both alike):

- ``lint_problems``: what ``@forge/manifest`` 13.7.0's FULL validation (``forge lint``, ``forge
  deploy``) reports about the Connect parts, checked the same way: the sections and fields the
  schema allows, ``app.id`` and ``app.runtime``, ``app.connect`` (key pattern and length, a
  remote that names one of ``remotes``, ``authentication``), remote keys (pattern, 23
  characters) and ``baseUrl`` (a string or a map of regions with a ``default``),
  ``environment.variables``, the ``connectModules`` keys (``<product>:<module type>``, the
  plural names), one ``<product>:lifecycle`` entry, module keys unique in the manifest, and the
  Connect scopes. Forge-native modules and scopes are left to ``forge lint``.
- ``install_problems``: what only Cloud checks, at install
  (``CONNECT_PLUGIN_FAILED_DESCRIPTOR_VALIDATION``): each Connect module a list of modules with
  the fields its type requires and a key of letters, digits, ``-`` and ``_`` (the schema Forge
  applies to the same modules under ``modules:``; manifest_schema.py).
- ``adoption_status``: ``connect-to-forge adoption-status``'s findings E001-E004 and W001-W003,
  as information (severity ``info``).

``${NAME}`` values: ``forge deploy`` replaces ``${NAME}`` in every string value whose ``NAME`` is
declared under ``environment.variables`` (a name, or ``{key, default}``) with the variable from
its own environment, else the default, and fails when there is neither
(``out/interpolator/environment-variable-interpolator.js``). ``resolve_variables`` does the same
to a manifest's text. The checks take an ``env``: given, they resolve as ``forge deploy`` would
with that environment; ``None`` (``connect-dev validate``, the registrar before it sets the
variables), they use the defaults and skip the format checks of values still waiting for a
variable. ``connect-dev forge convert`` declares two: ``CONNECT_DEV_BASE_URL`` (the Connect
remote's ``baseUrl``) and ``CONNECT_DEV_APP_KEY`` (``app.connect.key``).

Public API: ``load_manifest``, ``parse_manifest``, ``check_manifest``, ``lint_problems``,
``install_problems``, ``adoption_status``, ``declared_variables``, ``resolve_variables``,
``resolved_document``.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard, TypeVar

from ..errors import DevloopError, Problem
from ..files import InputFileError, NotUtf8Error, decode_utf8, describe_missing, read_input_file
from . import manifest_schema as schema
from .manifest_yaml import (
    YamlSyntaxError,
    dump_yaml,
    member_path,
    node_positions,
    parse_yaml,
    to_plain,
)

__all__ = [
    "APP_KEY_VARIABLE",
    "BASE_URL_VARIABLE",
    "PLACEHOLDER_APP_ID",
    "AdoptionStatus",
    "Manifest",
    "ManifestError",
    "adoption_status",
    "check_manifest",
    "declared_variables",
    "install_problems",
    "lint_problems",
    "load_manifest",
    "parse_manifest",
    "resolve_variables",
    "resolved_document",
]

BASE_URL_VARIABLE = "CONNECT_DEV_BASE_URL"
APP_KEY_VARIABLE = "CONNECT_DEV_APP_KEY"
# What `connect-to-forge convert` writes until `forge register` replaces it; the schema requires
# an app.id, and adoption-status's W002 recognises this one.
PLACEHOLDER_APP_ID = "ari:cloud:ecosystem::app/invalid-run-forge-register"
MANIFEST_HINT = "Fix the manifest; `connect-dev forge convert` rewrites its Connect parts."
INSTALL_NOTE = "Cloud refuses the install; forge lint does not check module bodies"
_VARIABLE_REFERENCE = re.compile(r"\$\{([a-zA-Z_][a-zA-Z0-9_]*)\}")
# adoption-status's W003: a Connect context parameter such as {issue.key} or {page.id}.
_CONTEXT_TOKEN = re.compile(r"\{[a-zA-Z]+\.[a-zA-Z]+\}")


_T = TypeVar("_T")


class ManifestError(DevloopError):
    """The manifest cannot be read or is not a YAML mapping; ``problems`` say where."""

    def __init__(self, file: str, problems: list[Problem], hint: str | None = None) -> None:
        first = problems[0].format(file) if problems else file
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{first}{more}", hint)
        self.file = file
        self.problems = problems


@dataclass(frozen=True)
class Manifest:
    """One parsed manifest: its text, the round-trip tree (comments kept), the same as plain
    data, and the line and column of every path."""

    file: str
    text: str
    tree: Any
    document: dict[str, Any]
    positions: dict[str, tuple[int, int]]

    def locate(self, problem: Problem) -> Problem:
        """``problem`` with the line and column of its path, or of the nearest parent found."""
        path = problem.path
        while path:
            if path in self.positions:
                line, column = self.positions[path]
                return dataclasses.replace(problem, line=line, column=column)
            path = _parent(path)
        return problem


def load_manifest(path: Path) -> Manifest:
    """Read and parse ``path``; ``ManifestError`` names the file, line and column."""
    try:
        raw = read_input_file(path)
    except InputFileError as exc:
        hint = describe_missing(path, suffix=".yml") if exc.missing else None
        raise ManifestError(str(path), [Problem("$", exc.reason)], hint=hint) from exc
    try:
        text = decode_utf8(raw)
    except NotUtf8Error as exc:
        raise ManifestError(
            str(path),
            [Problem("$", f"{exc.reason}; a manifest must be UTF-8", exc.line, exc.column)],
            hint="Save it as UTF-8.",
        ) from exc
    return parse_manifest(text, file=str(path))


def parse_manifest(text: str, *, file: str = "manifest.yml") -> Manifest:
    """Parse manifest text; ``ManifestError`` when it is not YAML or not a mapping."""
    if not text.strip():
        raise ManifestError(
            file, [Problem("$", "file is empty")], hint="A manifest is a YAML mapping: app: ..."
        )
    try:
        tree = parse_yaml(text)
    except YamlSyntaxError as exc:
        raise ManifestError(
            file,
            [Problem("$", f"invalid YAML: {exc.message}", exc.line, exc.column)],
            hint="Fix the YAML syntax.",
        ) from exc
    document = to_plain(tree)
    if not isinstance(document, dict):
        raise ManifestError(
            file,
            [Problem("$", f"must be a YAML mapping (app: ...), not {_kind(document)}", 1, 1)],
            hint="A manifest is a YAML mapping: app: ..., remotes: ..., connectModules: ...",
        )
    return Manifest(file, text, tree, document, node_positions(tree))


def check_manifest(
    source: Path | str | Manifest,
    *,
    env: Mapping[str, str] | None = None,
    file: str | None = None,
) -> list[Problem]:
    """Every error and warning of ``lint_problems`` and ``install_problems``, with line and
    column, in the order of the file. ``source`` is a path to read, the manifest's text
    (``file`` names it in problems), or a parsed ``Manifest``. A manifest that is not YAML gives
    its syntax problem; only a file that cannot be read raises (``ManifestError``)."""
    try:
        if isinstance(source, Manifest):
            manifest = source
        elif isinstance(source, Path):
            manifest = load_manifest(source)
        else:
            manifest = parse_manifest(source, file=file or "manifest.yml")
    except ManifestError as exc:
        if isinstance(source, Path) and exc.problems and exc.problems[0].line is None:
            raise  # not read at all: missing, a directory, too large
        return list(exc.problems)
    problems = [*lint_problems(manifest, env=env), *install_problems(manifest, env=env)]
    return sorted(problems, key=_position)


def _position(problem: Problem) -> tuple[int, int]:
    big = 1 << 30
    return (problem.line or big, problem.column or 0)


# --- variables ----------------------------------------------------------------------------------


def declared_variables(document: Mapping[str, Any]) -> dict[str, str | None]:
    """The variables ``environment.variables`` declares, each with its default (None: none).
    The first declaration of a name counts, as in Forge."""
    environment = document.get("environment")
    variables = environment.get("variables") if isinstance(environment, dict) else None
    declared: dict[str, str | None] = {}
    if not isinstance(variables, list):
        return declared
    for item in variables:
        if isinstance(item, str):
            declared.setdefault(item, None)
        elif isinstance(item, dict) and isinstance(item.get("key"), str):
            default = item.get("default")
            declared.setdefault(item["key"], None if default is None else _js_string(default))
    return declared


class _Unresolved(str):
    """A string still holding a ``${VARIABLE}`` that has no value yet: its format is not
    checked (the registrar sets the variable at deploy time)."""

    __slots__ = ()


class _MissingVariable(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _substitute(
    value: str, declared: Mapping[str, str | None], env: Mapping[str, str] | None
) -> str:
    """``value`` with each declared ``${NAME}`` replaced as ``forge deploy`` does (one pass:
    a replacement is not scanned again). With ``env`` None, only defaults are used and what has
    none is left, marked ``_Unresolved``; with ``env``, a name with neither raises."""
    unresolved = False

    def replace(match: re.Match[str]) -> str:
        nonlocal unresolved
        name = match.group(1)
        if name not in declared:
            return match.group(0)
        if env is not None and name in env:
            return env[name]
        default = declared[name]
        if default is not None:
            return default
        if env is not None:
            raise _MissingVariable(name)
        unresolved = True
        return match.group(0)

    result = _VARIABLE_REFERENCE.sub(replace, value)
    return _Unresolved(result) if unresolved else result


def resolve_variables(manifest_text: str, env: Mapping[str, str], *, file: str = "") -> str:
    """The manifest's text with every declared ``${NAME}`` in a string value replaced from
    ``env`` (else its default), as ``forge deploy`` interpolates it. Names not declared stay as
    they are; member names are never replaced. ``ManifestError`` when a declared variable has
    neither a value nor a default (Forge: "could not find environment variable 'NAME'"), or the
    text is not a YAML mapping. Comments and layout are kept."""
    manifest = parse_manifest(manifest_text, file=file or "manifest.yml")
    declared = declared_variables(manifest.document)
    if not declared:
        return manifest_text
    changed = False
    stack: list[tuple[Any, str]] = [(manifest.tree, "$")]
    while stack:
        node, path = stack.pop()
        items: list[tuple[Any, str]]
        if isinstance(node, dict):
            items = [(key, member_path(path, key)) for key in node]
        elif isinstance(node, list):
            items = [(index, f"{path}[{index}]") for index in range(len(node))]
        else:
            continue
        for slot, where in items:
            value = node[slot]
            if isinstance(value, str):
                try:
                    replaced = _substitute(value, declared, env)
                except _MissingVariable as exc:
                    raise ManifestError(
                        manifest.file,
                        [manifest.locate(_missing_variable(where, exc.name))],
                        hint=f"Set {exc.name} in the environment, or give it a default under "
                        "environment.variables.",
                    ) from exc
                if replaced != value:
                    node[slot] = str(replaced)
                    changed = True
            else:
                stack.append((value, where))
    return dump_yaml(manifest.tree, like=manifest_text) if changed else manifest_text


def _missing_variable(path: str, name: str) -> Problem:
    return Problem(
        path,
        f"could not find environment variable '{name}' (declared under "
        "environment.variables without a default, and not set)",
    )


def _resolved_document(
    manifest: Manifest, env: Mapping[str, str] | None
) -> tuple[dict[str, Any], list[Problem]]:
    """The plain document with the variables replaced, and a problem per variable missing."""
    declared = declared_variables(manifest.document)
    problems: list[Problem] = []
    missing: set[str] = set()

    def resolve(value: Any, path: str) -> Any:
        if isinstance(value, dict):
            return {key: resolve(item, member_path(path, key)) for key, item in value.items()}
        if isinstance(value, list):
            return [resolve(item, f"{path}[{index}]") for index, item in enumerate(value)]
        if isinstance(value, str) and declared:
            try:
                return _substitute(value, declared, env)
            except _MissingVariable as exc:
                if exc.name not in missing:
                    missing.add(exc.name)
                    problems.append(manifest.locate(_missing_variable(path, exc.name)))
                return _Unresolved(value)
        return value

    document: dict[str, Any] = resolve(manifest.document, "$")
    return document, problems


def resolved_document(manifest: Manifest, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The manifest as plain data with its variables replaced: from ``env`` as ``forge
    deploy`` would (a missing one stays ``${NAME}``), or with ``env`` None from the defaults."""
    document, _missing = _resolved_document(manifest, env)
    return document


# --- what @forge/manifest checks ----------------------------------------------------------------


def lint_problems(manifest: Manifest, *, env: Mapping[str, str] | None = None) -> list[Problem]:
    """What ``@forge/manifest``'s FULL validation says about the Connect parts (module above)."""
    document, problems = _resolved_document(manifest, env)
    checker = _Checker()
    checker.check_document(document)
    return problems + [manifest.locate(problem) for problem in checker.problems]


class _Checker:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def error(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def warning(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message, severity="warning"))

    def check_document(self, document: dict[str, Any]) -> None:
        for key in document:
            if key not in schema.TOP_LEVEL_KEYS:
                self.error(
                    member_path("$", key),
                    "is not a manifest section" + _suggest(key, schema.TOP_LEVEL_KEYS),
                )
        if "modules" not in document and "connectModules" not in document:
            self.error("$", "needs modules or connectModules (a Connect app has connectModules)")
        app = document.get("app")
        if "app" not in document:
            self.error("$.app", "required section is missing")
        elif self.expect(app, dict, "$.app"):
            self.check_app(app, document)
        if "remotes" in document:
            self.check_remotes(document["remotes"])
        if "environment" in document:
            self.check_environment(document["environment"])
        if "connectModules" in document:
            self.check_connect_modules(document["connectModules"])
        self.check_module_keys(document)
        if "permissions" in document:
            self.check_permissions(document["permissions"])

    def expect(self, value: object, kind: type[_T], path: str) -> TypeGuard[_T]:
        """Whether ``value`` is a ``kind``; an error at ``path`` when it is not."""
        if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
            return True
        self.error(path, f"must be {_kind_name(kind)}, not {_kind(value)}")
        return False

    def check_app(self, app: dict[str, Any], document: dict[str, Any]) -> None:
        for key in app:
            where = member_path("$.app", key)
            if key == "name":  # the schema validator warns of this one, and accepts it
                self.warning(where, "is deprecated and can be removed (Forge keeps the name)")
            elif key not in schema.APP_KEYS:
                self.error(where, "is not an app field" + _suggest(key, schema.APP_KEYS))
        for key in schema.REQUIRED_APP_KEYS:
            if key not in app:
                hint = " (`forge register` writes it)" if key == "id" else ""
                self.error(f"$.app.{key}", f"required field is missing{hint}")
        app_id = app.get("id")
        if (
            "id" in app
            and self.expect(app_id, str, "$.app.id")
            and not isinstance(app_id, _Unresolved)
            and not schema.APP_ID_PATTERN.search(app_id)
        ):
            self.error(
                "$.app.id",
                f"{_show(app_id)} is not an app id (ari:cloud:ecosystem::app/<uuid>; "
                "`forge register` writes it)",
            )
        runtime = app.get("runtime")
        if "runtime" in app and self.expect(runtime, dict, "$.app.runtime"):
            name = runtime.get("name")
            if "name" not in runtime:
                self.error("$.app.runtime.name", "required field is missing (e.g. nodejs22.x)")
            elif (
                self.expect(name, str, "$.app.runtime.name")
                and name not in schema.RUNTIMES
                and not isinstance(name, _Unresolved)
            ):
                self.error(
                    "$.app.runtime.name",
                    f"{_show(name)} is not one of {', '.join(schema.RUNTIMES)}",
                )
        connect = app.get("connect")
        if "connect" in app and self.expect(connect, dict, "$.app.connect"):
            self.check_app_connect(connect, document)
        elif "connect" not in app and "connectModules" in document:
            self.error(
                "$.app.connect.remote",
                "required when connectModules are present (app.connect names the Connect app's "
                "key and the remote that serves it)",
            )

    def check_app_connect(self, connect: dict[str, Any], document: dict[str, Any]) -> None:
        for name in connect:
            if name not in schema.APP_CONNECT_KEYS:
                self.error(
                    member_path("$.app.connect", name),
                    "is not an app.connect field" + _suggest(name, schema.APP_CONNECT_KEYS),
                )
        key = connect.get("key")
        if "key" not in connect:
            self.error("$.app.connect.key", "required field is missing (the Connect app key)")
        elif self.expect(key, str, "$.app.connect.key") and not isinstance(key, _Unresolved):
            if not key:
                self.error("$.app.connect.key", "must not be empty")
            elif not schema.CONNECT_KEY_PATTERN.fullmatch(key):
                self.error(
                    "$.app.connect.key",
                    f"{_show(key)} may contain only letters, digits, '-', '.' and '_'",
                )
            if len(key) > schema.CONNECT_KEY_MAX_LENGTH:
                self.error(
                    "$.app.connect.key",
                    f"is {len(key)} characters long; the limit is {schema.CONNECT_KEY_MAX_LENGTH}",
                )
        remote = connect.get("remote")
        has_modules = "connectModules" in document
        if "remote" in connect:
            if self.expect(remote, str, "$.app.connect.remote") and not isinstance(
                remote, _Unresolved
            ):
                self.check_remote_key(remote, "$.app.connect.remote")
                self.check_connect_remote(remote, document)
        elif has_modules:
            self.error(
                "$.app.connect.remote",
                "required when connectModules are present (the key of the remote that serves "
                "the Connect app, e.g. connect)",
            )
        elif isinstance(document.get("remotes"), list) and document["remotes"]:
            self.warning(
                "$.app.connect",
                "has no remote: Forge will not keep the Connect app's region on upgrades "
                "unless app.connect.remote names one of the remotes",
            )
        if "authentication" in connect:
            authentication = connect["authentication"]
            if authentication != "jwt" and not isinstance(authentication, _Unresolved):
                self.error(
                    "$.app.connect.authentication",
                    f"{_show_value(authentication)} is not jwt (the only value Forge knows)",
                )
            if not has_modules:
                self.error(
                    "$.app.connect.authentication",
                    "needs connectModules (Forge refuses it without them)",
                )

    def check_connect_remote(self, name: str, document: dict[str, Any]) -> None:
        if "connectModules" not in document:
            return
        remotes = document.get("remotes")
        entries = [r for r in remotes if isinstance(r, dict)] if isinstance(remotes, list) else []
        match = next((r for r in entries if r.get("key") == name), None)
        if match is None:
            keys = [r["key"] for r in entries if isinstance(r.get("key"), str)]
            self.error(
                "$.app.connect.remote",
                f"{_show(name)} names no remote (remotes: {', '.join(keys) or 'none'})"
                + _suggest(name, keys),
            )
        elif match.get("configurable"):
            self.error(
                "$.app.connect.remote",
                f"{_show(name)} names a configurable remote; a Connect remote cannot be one",
            )

    def check_remote_key(self, key: str, path: str) -> None:
        if not schema.REMOTE_KEY_PATTERN.fullmatch(key):
            self.error(path, f"{_show(key)} may contain only letters, digits, '-' and '_'")
        if len(key) > schema.REMOTE_KEY_MAX_LENGTH:
            self.error(
                path,
                f"is {len(key)} characters long; the limit is {schema.REMOTE_KEY_MAX_LENGTH}",
            )

    def check_remotes(self, remotes: Any) -> None:
        if not self.expect(remotes, list, "$.remotes"):
            return
        for index, remote in enumerate(remotes):
            where = f"$.remotes[{index}]"
            if not self.expect(remote, dict, where):
                continue
            for key in remote:
                if key not in schema.REMOTE_KEYS:
                    self.error(
                        member_path(where, key),
                        "is not a remote field" + _suggest(key, schema.REMOTE_KEYS),
                    )
            if "key" not in remote:
                self.error(f"{where}.key", "required field is missing")
            elif self.expect(remote["key"], str, f"{where}.key") and not isinstance(
                remote["key"], _Unresolved
            ):
                self.check_remote_key(remote["key"], f"{where}.key")
            if "baseUrl" in remote:
                self.check_base_url(remote["baseUrl"], f"{where}.baseUrl")

    def check_base_url(self, base_url: Any, path: str) -> None:
        if isinstance(base_url, str):
            return
        if not isinstance(base_url, dict):
            self.error(path, f"must be a URL or a map of regions to URLs, not {_kind(base_url)}")
            return
        regions = (*schema.REGIONS, "default")
        for region, url in base_url.items():
            where = member_path(path, region)
            if region not in regions:
                self.error(
                    where,
                    f"is not a region ({', '.join(regions)})" + _suggest(region, regions),
                )
            if not isinstance(url, str):
                self.error(where, f"must be a URL, not {_kind(url)}")
            elif not url:
                self.error(where, "must not be empty")
        if "default" not in base_url:
            self.error(f"{path}.default", "required when baseUrl maps regions")

    def check_environment(self, environment: Any) -> None:
        if not self.expect(environment, dict, "$.environment"):
            return
        for key in environment:
            if key != "variables":
                self.error(member_path("$.environment", key), "is not an environment field")
        if "variables" not in environment:
            return
        variables = environment["variables"]
        if not self.expect(variables, list, "$.environment.variables"):
            return
        for index, item in enumerate(variables):
            where = f"$.environment.variables[{index}]"
            if isinstance(item, str):
                if not schema.VARIABLE_PATTERN.fullmatch(item):
                    self.error(where, f"{_show(item)} is not a variable name ([a-zA-Z_][\\w]*)")
            elif isinstance(item, dict):
                for key in item:
                    if key not in ("key", "default"):
                        self.error(member_path(where, key), "is not a variable field")
                for key in ("key", "default"):
                    if key not in item:
                        self.error(
                            f"{where}.{key}",
                            "required field is missing (a variable without a default is "
                            "declared by its name alone)",
                        )
                    elif not isinstance(item[key], str):
                        self.error(f"{where}.{key}", f"must be a string, not {_kind(item[key])}")
                name = item.get("key")
                if isinstance(name, str) and not schema.VARIABLE_PATTERN.fullmatch(name):
                    self.error(f"{where}.key", f"{_show(name)} is not a variable name")
            else:
                self.error(where, f"must be a name or {{key, default}}, not {_kind(item)}")

    def check_connect_modules(self, modules: Any) -> None:
        if not self.expect(modules, dict, "$.connectModules"):
            return
        known = [
            f"{product}:{kind}"
            for product, kinds in schema.CONNECT_MODULES.items()
            for kind in kinds
        ]
        for name, entries in modules.items():
            where = member_path("$.connectModules", name)
            if name not in known:
                self.error(
                    where,
                    f"invalid value {_show(name)} in connectModules (a <product>:<module type> "
                    "as in the descriptor, e.g. jira:generalPages)" + _suggest(name, known),
                )
            if name.endswith(":lifecycle") and isinstance(entries, list) and len(entries) > 1:
                self.error(
                    where,
                    f"has {len(entries)} entries; Forge takes one, holding every lifecycle "
                    "callback (installed, uninstalled, enabled, disabled)",
                )

    def check_module_keys(self, document: dict[str, Any]) -> None:
        """Module keys are unique across modules and connectModules."""
        seen: dict[str, str] = {}
        for section in ("modules", "connectModules"):
            groups = document.get(section)
            if not isinstance(groups, dict):
                continue
            for name, entries in groups.items():
                if not isinstance(entries, list):
                    continue
                for index, entry in enumerate(entries):
                    key = entry.get("key") if isinstance(entry, dict) else None
                    if not isinstance(key, str):
                        continue
                    where = f"{member_path(member_path('$', section), name)}[{index}].key"
                    if key in seen:
                        self.error(
                            where,
                            f"found duplicate module key {_show(key)} (also {seen[key]}); "
                            "module keys are unique in a manifest",
                        )
                    else:
                        seen[key] = where

    def check_permissions(self, permissions: Any) -> None:
        if not self.expect(permissions, dict, "$.permissions") or "scopes" not in permissions:
            return
        scopes = permissions["scopes"]
        names: list[tuple[str, str]]
        if isinstance(scopes, list):
            names = []
            for index, scope in enumerate(scopes):
                if self.expect(scope, str, f"$.permissions.scopes[{index}]"):
                    names.append((scope, f"$.permissions.scopes[{index}]"))
        elif isinstance(scopes, dict):
            names = [(name, member_path("$.permissions.scopes", name)) for name in scopes]
        else:
            self.error("$.permissions.scopes", f"must be a list of scopes, not {_kind(scopes)}")
            return
        connect_scopes = sorted(set().union(*schema.CONNECT_SCOPES.values()))
        for name, where in names:
            # Only Connect scopes are ours to judge; forge lint knows the Forge ones.
            if ":connect-" in name and name not in connect_scopes:
                self.error(
                    where, f"{_show(name)} is not a Connect scope" + _suggest(name, connect_scopes)
                )


# --- what Cloud checks at install ---------------------------------------------------------------


def install_problems(manifest: Manifest, *, env: Mapping[str, str] | None = None) -> list[Problem]:
    """The Connect module bodies as Cloud checks them at install (module above)."""
    document, _missing = _resolved_document(manifest, env)
    modules = document.get("connectModules")
    if not isinstance(modules, dict):
        return []
    problems: list[Problem] = []
    for name, entries in modules.items():
        product, _, kind = name.partition(":")
        required = schema.CONNECT_MODULES.get(product, {}).get(kind)
        if required is None:
            continue  # an unknown name is lint's error
        problems.extend(_module_problems(member_path("$.connectModules", name), entries, required))
    return [manifest.locate(problem) for problem in problems]


def _module_problems(path: str, entries: Any, required: tuple[str, ...]) -> Iterator[Problem]:
    if not isinstance(entries, list):
        yield Problem(
            path,
            f"must be a list of modules, not {_kind(entries)} (one module is a list of one; "
            f"{INSTALL_NOTE})",
        )
        return
    if not entries:
        yield Problem(path, f"must hold at least one module ({INSTALL_NOTE})")
    for index, entry in enumerate(entries):
        where = f"{path}[{index}]"
        if not isinstance(entry, dict):
            yield Problem(where, f"must be a module (a mapping), not {_kind(entry)}")
            continue
        for field_name in required:
            if field_name not in entry:
                yield Problem(
                    member_path(where, field_name),
                    f"required field is missing ({INSTALL_NOTE})",
                )
        key = entry.get("key")
        if isinstance(key, str) and not isinstance(key, _Unresolved):
            if not schema.MODULE_KEY_PATTERN.fullmatch(key):
                yield Problem(
                    f"{where}.key",
                    f"{_show(key)} may contain only letters, digits, '-' and '_' ({INSTALL_NOTE})",
                )
        elif "key" in entry and not isinstance(key, str):
            yield Problem(f"{where}.key", f"must be a string, not {_kind(key)}")


# --- adoption status ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AdoptionStatus:
    """How far the app has moved from Connect to Forge, as ``connect-to-forge
    adoption-status`` tells it: ``findings`` (severity ``info``, message ``[E001] ...``) and a
    one-line ``summary``. ``fully_adopted`` when no E finding is left."""

    findings: tuple[Problem, ...]
    summary: str
    fully_adopted: bool


def adoption_status(manifest: Manifest) -> AdoptionStatus:
    document = manifest.document
    errors: list[Problem] = []
    warnings: list[Problem] = []
    modules = document.get("connectModules")
    native = document.get("modules")
    if isinstance(modules, dict) and modules:
        kinds = ", ".join(
            f"{name} ({len(entries) if isinstance(entries, list) else 1})"
            for name, entries in modules.items()
        )
        errors.append(
            Problem(
                "$.connectModules",
                f"[E001] {len(modules)} Connect module type(s) left: {kinds}; migrate them to "
                "Forge modules (modules:) in time",
            )
        )
    elif isinstance(modules, dict):
        warnings.append(Problem("$.connectModules", "[W001] connectModules is empty: remove it"))
    app = document.get("app")
    app = app if isinstance(app, dict) else {}
    connect = app.get("connect")
    connect = connect if isinstance(connect, dict) else None
    if not connect or not connect.get("key"):
        errors.append(
            Problem(
                "$.app.connect.key",
                "[E003] app.connect.key is missing: keep the Connect app key for good, it ties "
                "the Forge app to the Connect app's installations",
            )
        )
    if connect:
        extra = [key for key in connect if key != "key"]
        if extra:
            errors.append(
                Problem(
                    "$.app.connect",
                    f"[E002] Connect fields besides key: {', '.join(extra)} (needed while "
                    "connectModules remain)",
                )
            )
    permissions = document.get("permissions")
    scopes = permissions.get("scopes") if isinstance(permissions, dict) else None
    names = list(scopes) if isinstance(scopes, list | dict) else []
    connect_scopes = [
        str(name) for name in names if str(name).endswith((":connect-jira", ":connect-confluence"))
    ]
    if connect_scopes:
        errors.append(
            Problem(
                "$.permissions.scopes",
                f"[E004] Connect scopes: {', '.join(connect_scopes)} (Forge scopes such as "
                "read:jira-work replace them)",
            )
        )
    if app.get("id") == PLACEHOLDER_APP_ID:
        warnings.append(
            Problem("$.app.id", "[W002] app.id is the placeholder: run `forge register`")
        )
    bodies = [
        entry
        for group in (modules, native)
        if isinstance(group, dict)
        for entries in group.values()
        for entry in (entries if isinstance(entries, list) else [entries])
    ]
    with_tokens = sum(1 for body in bodies if _CONTEXT_TOKEN.search(_text_of(body)))
    if with_tokens:
        warnings.append(
            Problem(
                "$.connectModules" if isinstance(modules, dict) else "$.modules",
                f"[W003] {with_tokens} module(s) use Connect context parameters such as "
                "{issue.key}: check that Forge modules get them",
            )
        )
    only_key_missing = len(errors) == 1 and errors[0].message.startswith("[E003]")
    unstarted = isinstance(modules, dict) and bool(modules) and not native
    if not errors:
        summary = "fully adopted: no Connect module or scope is left"
    elif only_key_missing:
        summary = "gone too far: put app.connect.key back, it must stay for good"
    elif unstarted:
        summary = "not started: a Connect app registered on Forge, served by its Connect remote"
    else:
        summary = "partly adopted: Forge modules beside Connect modules still to migrate"
    findings = tuple(
        dataclasses.replace(manifest.locate(problem), severity="info")
        for problem in (*errors, *warnings)
    )
    return AdoptionStatus(findings, summary, not errors)


def _text_of(value: Any) -> str:
    if isinstance(value, dict):
        return " ".join(f"{key} {_text_of(item)}" for key, item in value.items())
    if isinstance(value, list):
        return " ".join(_text_of(item) for item in value)
    return str(value)


# --- helpers ------------------------------------------------------------------------------------


def _parent(path: str) -> str:
    if path == "$":
        return ""
    if path.endswith("]"):
        # `["jira:generalPages"]` or `[0]`: the bracket that opens this last member
        depth = 0
        for index in range(len(path) - 1, -1, -1):
            if path[index] == '"':
                depth ^= 1
            elif path[index] == "[" and depth == 0:
                return path[:index] or "$"
        return "$"
    cut = path.rfind(".")
    bracket = path.rfind("]")
    return path[:cut] if cut > bracket else path[: bracket + 1] or "$"


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "a mapping"


def _kind_name(kind: type) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", int: "a number"}.get(
        kind, kind.__name__
    )


def _js_string(value: object) -> str:
    """A value as JavaScript's String() writes it (a default Forge substitutes)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _show(text: str, limit: int = 200) -> str:
    if len(text) > limit:
        return repr(text[:limit]) + f"... ({len(text):,} characters)"
    return repr(text)


def _show_value(value: object) -> str:
    return _show(value) if isinstance(value, str) else _kind(value)


def _suggest(word: str, choices: Any) -> str:
    if len(word) > 100:
        return ""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""
