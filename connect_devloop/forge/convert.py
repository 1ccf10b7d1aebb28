"""``atlassian-connect.json`` → the Connect parts of a Forge ``manifest.yml``. Pure: no I/O but
``convert_file``.

``connect-dev forge convert`` (and the ``forge`` registrar, on each save of the descriptor) owns
only these parts of the manifest, and rewrites them each time:

- ``app.connect``: ``key: ${CONNECT_DEV_APP_KEY}`` and ``remote`` (``connect`` unless the
  manifest names another remote there);
- that remote's ``baseUrl``: ``${CONNECT_DEV_BASE_URL}``, or a map of regions with it as
  ``default`` when the descriptor has ``regionBaseUrls``;
- the two variables under ``environment.variables``, each with a default when there is one (the
  descriptor's key; its ``baseUrl`` when that is a real URL, not ``{{localBaseUrl}}``), so that
  the manifest in git is the same for every developer and every tunnel URL: ``forge deploy``
  fills them from its environment (the registrar sets them), else from the defaults;
- ``connectModules``, whole: every module type the manifest accepts
  (``manifest_schema.CONNECT_MODULES``, plural names as in the descriptor, Confluence's too),
  a single module wrapped in a list, every lifecycle callback in the one
  ``<product>:lifecycle`` entry, webhooks with keys made from their event
  (``webhook-jira-issue-created``, ``-2``... for another with the same event) so that they stay
  put when others are added, ``translations`` and ``cloudAppMigration``;
- the Connect scopes in ``permissions.scopes`` (``READ`` → ``read:connect-jira``), and
  ``app.licensing.enabled`` / ``editionsEnabled`` when the descriptor sets them.

Everything else in an existing manifest stays as it was: ``app.id`` from ``forge register``,
Forge modules, other remotes, variables and scopes, comments and layout (ruamel.yaml keeps
them; a replaced value loses the comments inside it, an unchanged one keeps them). A new
manifest gets the placeholder ``app.id`` (``forge register`` replaces it) and a Node runtime,
which the schema requires. ``{{localBaseUrl}}`` and ``{{appKey}}`` in module fields become the
two variables. What cannot be carried (``name``, ``vendor``, ``apiMigrations``...) is listed in
``ConnectParts.dropped`` with the reason.

Public API: ``guess_product``, ``render_connect_parts`` → ``ConnectParts``, ``update_manifest``
(existing text or None → ``Conversion``), ``convert_file``.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from ..errors import Problem
from ..files import InputFileError, NotUtf8Error, decode_utf8, read_input_file
from . import manifest_schema as schema
from .manifest import (
    APP_KEY_VARIABLE,
    BASE_URL_VARIABLE,
    PLACEHOLDER_APP_ID,
    Manifest,
    ManifestError,
    check_manifest,
    parse_manifest,
)
from .manifest_yaml import dump_yaml, member_path, to_plain, write_atomically

__all__ = [
    "DEFAULT_RUNTIME",
    "REMOTE_KEY",
    "ConnectParts",
    "Conversion",
    "Dropped",
    "convert_file",
    "guess_product",
    "render_connect_parts",
    "update_manifest",
]

REMOTE_KEY = "connect"
DEFAULT_RUNTIME = "nodejs22.x"
LIFECYCLE_KEY = "lifecycle-events"
TRANSLATIONS_KEY = "translations"
APP_MIGRATION_KEY = "cloud-app-migration"
# Descriptor fields that are not modules but have a connectModules entry of their own.
TOP_LEVEL_MODULES = {"lifecycle", "translations", "cloudAppMigration"}
TOKENS = {"{{localBaseUrl}}": f"${{{BASE_URL_VARIABLE}}}", "{{appKey}}": f"${{{APP_KEY_VARIABLE}}}"}

# Why each descriptor field that the manifest has no place for is left out.
NOT_CARRIED = {
    "name": "Forge keeps the app's name at registration (`forge register NAME`, the developer "
    "console); the manifest has no field for it (app.name is deprecated)",
    "description": "not written: app.description belongs to the Forge app, not to the Connect "
    "parts connect-dev owns; copy it there by hand if you want it",
    "vendor": "Forge knows the vendor from the developer account and the Marketplace listing",
    "links": "the manifest has no links; they belong in the Marketplace listing",
    "apiVersion": "Forge versions the app itself at each deploy (changing a remote's baseUrl "
    "is a major version)",
    "apiMigrations": "the manifest has no field for Connect API migrations (signed-install, "
    "context-qsh, ...): Cloud signs a Forge-registered Connect app's lifecycle callbacks with "
    "RS256 as it does with signed-install",
    "aliasKey": "the manifest has only app.connect.key",
    "dataResidency": "migrations between regions are a Forge module (migration:dataResidency) "
    "that connect-dev does not write",
    "$schema": "the JSON schema of the descriptor format",
}


@dataclass(frozen=True)
class Dropped:
    """One thing of the descriptor that is not in the manifest: where (a JSON path of the
    descriptor) and why."""

    path: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}


@dataclass(frozen=True)
class ConnectParts:
    """The Connect parts of a manifest for one descriptor and product."""

    product: str
    key: str
    base_url: str | dict[str, str]  # the Connect remote's baseUrl
    variables: tuple[tuple[str, str | None], ...]  # (name, default) as they are declared
    modules: dict[str, list[Any]]  # connectModules
    scopes: tuple[str, ...]
    licensing: dict[str, bool]
    dropped: tuple[Dropped, ...] = field(default=())

    @property
    def module_count(self) -> int:
        return sum(len(entries) for entries in self.modules.values())


@dataclass(frozen=True)
class Conversion:
    """The manifest ``update_manifest`` made: its ``text``, the ``parts`` written, whether it
    is new, and ``changed`` (False: the text is what was there)."""

    text: str
    parts: ConnectParts
    created: bool
    changed: bool
    remote_key: str = REMOTE_KEY
    problems: tuple[Problem, ...] = ()  # of the new manifest, as check_manifest sees it


def guess_product(descriptor: Mapping[str, Any]) -> tuple[str, str]:
    """Jira or Confluence (a descriptor does not say), and why: Confluence when a module type
    or scope only Confluence has is there, else Jira."""
    only_confluence = set(schema.CONNECT_MODULES["confluence"]) - set(
        schema.CONNECT_MODULES["jira"]
    )
    modules = descriptor.get("modules")
    found = sorted(set(modules) & only_confluence) if isinstance(modules, dict) else []
    if found:
        return "confluence", f"Confluence modules ({', '.join(found)})"
    scopes = descriptor.get("scopes")
    if isinstance(scopes, list) and any(
        isinstance(scope, str) and scope.lower() == "space_admin" for scope in scopes
    ):
        return "confluence", "the SPACE_ADMIN scope"
    return "jira", "no Confluence-only module or scope"


def render_connect_parts(descriptor: Mapping[str, Any], product: str) -> ConnectParts:
    """The Connect parts of the manifest for a valid ``descriptor`` (descriptor.parse) and
    ``product`` (``jira`` or ``confluence``)."""
    if product not in schema.CONNECT_MODULES:
        raise ValueError(f"product must be one of {', '.join(schema.PRODUCTS)}, not {product!r}")
    dropped: list[Dropped] = []
    key = str(descriptor["key"])
    base_url = descriptor.get("baseUrl")
    base_url_default = (
        base_url.rstrip("/")
        if isinstance(base_url, str) and re.match(r"https?://", base_url) and "{{" not in base_url
        else None
    )
    variables = ((BASE_URL_VARIABLE, base_url_default), (APP_KEY_VARIABLE, key))

    for name in descriptor:
        if name in NOT_CARRIED:
            dropped.append(Dropped(member_path("$", name), NOT_CARRIED[name]))
        elif name not in _CARRIED:
            dropped.append(
                Dropped(
                    member_path("$", name), "not a descriptor field connect-dev knows a place for"
                )
            )
    authentication = descriptor.get("authentication")
    if isinstance(authentication, dict) and str(authentication.get("type", "jwt")).lower() != "jwt":
        dropped.append(
            Dropped(
                "$.authentication.type",
                "Forge knows only jwt for a Connect app: the app will get JWT-signed requests "
                "and an installed callback with a sharedSecret",
            )
        )

    if any(
        "{{environment}}" in json.dumps(descriptor.get(part))
        for part in ("lifecycle", "modules", "translations", "cloudAppMigration")
    ):
        dropped.append(
            Dropped(
                "$.modules",
                "{{environment}} (atlassian-connect-express's environment name) has no manifest "
                "variable; it is left as written",
            )
        )
    modules = _connect_modules(descriptor, product, dropped)
    scopes = _scopes(descriptor.get("scopes"), product, dropped)
    licensing = {
        target: value
        for source, target in (
            ("enableLicensing", "enabled"),
            ("editionsEnabled", "editionsEnabled"),
        )
        if isinstance(value := descriptor.get(source), bool)
    }
    remote_url: str | dict[str, str] = f"${{{BASE_URL_VARIABLE}}}"
    regions = _regions(descriptor.get("regionBaseUrls"), dropped)
    if regions:
        remote_url = {"default": f"${{{BASE_URL_VARIABLE}}}", **regions}
    return ConnectParts(
        product=product,
        key=key,
        base_url=remote_url,
        variables=variables,
        modules=modules,
        scopes=scopes,
        licensing=licensing,
        dropped=tuple(dropped),
    )


_CARRIED = {
    "key",
    "baseUrl",
    "authentication",
    "lifecycle",
    "modules",
    "scopes",
    "enableLicensing",
    "editionsEnabled",
    "regionBaseUrls",
    "translations",
    "cloudAppMigration",
}


def _connect_modules(
    descriptor: Mapping[str, Any], product: str, dropped: list[Dropped]
) -> dict[str, list[Any]]:
    accepted = schema.CONNECT_MODULES[product]
    other = next(p for p in schema.PRODUCTS if p != product)
    modules = descriptor.get("modules")
    modules = modules if isinstance(modules, dict) else {}
    taken = _module_keys(modules)
    result: dict[str, list[Any]] = {}

    lifecycle = descriptor.get("lifecycle")
    if isinstance(lifecycle, dict) and lifecycle:
        entry = {"key": _unique(LIFECYCLE_KEY, taken), **_tokens(lifecycle)}
        result[f"{product}:lifecycle"] = [entry]
    for kind, entries in modules.items():
        where = member_path("$.modules", kind)
        if kind in TOP_LEVEL_MODULES:
            dropped.append(Dropped(where, f"{kind} belongs at the top of the descriptor"))
            continue
        if kind not in accepted:
            if kind in schema.CONNECT_MODULES[other]:
                reason = (
                    f"a {other.capitalize()} module; this manifest is for {product} "
                    f"(--product {other} converts for {other.capitalize()})"
                )
            else:
                reason = (
                    f"@forge/manifest {schema.FORGE_MANIFEST_VERSION} accepts no connectModules "
                    f"'{product}:{kind}'" + _suggest(kind, accepted)
                )
            dropped.append(Dropped(where, reason))
            continue
        listed = entries if isinstance(entries, list) else [entries]
        if kind == "webhooks":
            listed = _keyed_webhooks(listed, taken)
        result[f"{product}:{kind}"] = [_tokens(entry) for entry in listed]
    for kind, key in (("translations", TRANSLATIONS_KEY), ("cloudAppMigration", APP_MIGRATION_KEY)):
        value = descriptor.get(kind)
        if isinstance(value, dict) and value:
            result[f"{product}:{kind}"] = [{"key": _unique(key, taken), **_tokens(value)}]
        elif kind in descriptor:
            dropped.append(Dropped(member_path("$", kind), "is empty or not an object"))
    return result


def _module_keys(modules: Mapping[str, Any]) -> set[str]:
    keys: set[str] = set()
    for entries in modules.values():
        for entry in entries if isinstance(entries, list) else [entries]:
            if isinstance(entry, dict) and isinstance(entry.get("key"), str):
                keys.add(entry["key"])
    return keys


def _unique(key: str, taken: set[str]) -> str:
    """``key``, or ``key-2``, ``key-3``...: module keys are unique in a manifest."""
    candidate, number = key, 1
    while candidate in taken:
        number += 1
        candidate = f"{key}-{number}"
    taken.add(candidate)
    return candidate


def _keyed_webhooks(webhooks: list[Any], taken: set[str]) -> list[Any]:
    """Webhooks with a key each (a descriptor gives them none): ``webhook-`` and the event, so
    that a key stays with its webhook when others are added or moved."""
    keyed: list[Any] = []
    for webhook in webhooks:
        if isinstance(webhook, dict) and not isinstance(webhook.get("key"), str):
            event = webhook.get("event")
            slug = re.sub(r"[^a-zA-Z0-9]+", "-", event).strip("-") if isinstance(event, str) else ""
            webhook = {"key": _unique(f"webhook-{slug}" if slug else "webhook", taken), **webhook}
        keyed.append(webhook)
    return keyed


def _tokens(value: Any) -> Any:
    """A copy of ``value`` with the descriptor's ``{{localBaseUrl}}`` and ``{{appKey}}`` turned
    into the manifest's variables."""
    if isinstance(value, str):
        for token, variable in TOKENS.items():
            value = value.replace(token, variable)
        return value
    if isinstance(value, dict):
        return {key: _tokens(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_tokens(item) for item in value]
    return copy.deepcopy(value)


def _scopes(scopes: Any, product: str, dropped: list[Dropped]) -> tuple[str, ...]:
    result: list[str] = []
    for index, scope in enumerate(scopes if isinstance(scopes, list) else []):
        where = f"$.scopes[{index}]"
        name = str(scope).lower()
        if name == "none":
            dropped.append(Dropped(where, "NONE grants nothing"))
            continue
        forge = f"{name.replace('_', '-')}:connect-{product}"
        if forge not in schema.CONNECT_SCOPES[product]:
            dropped.append(
                Dropped(where, f"{str(scope).upper()} has no Connect scope for {product} in Forge")
            )
        elif forge not in result:
            result.append(forge)
    return tuple(result)


def _regions(region_urls: Any, dropped: list[Dropped]) -> dict[str, str]:
    if region_urls is None:
        return {}
    if not isinstance(region_urls, dict):
        dropped.append(Dropped("$.regionBaseUrls", "is not an object of region → URL"))
        return {}
    regions: dict[str, str] = {}
    for region, url in region_urls.items():
        where = member_path("$.regionBaseUrls", region)
        if region not in schema.REGIONS:
            dropped.append(
                Dropped(where, f"a remote's baseUrl knows the regions {', '.join(schema.REGIONS)}")
            )
        elif not isinstance(url, str) or not url:
            dropped.append(Dropped(where, "is not a URL"))
        else:
            regions[region] = _tokens(url)
    return regions


# --- the manifest -------------------------------------------------------------------------------

NEW_MANIFEST = f"""\
# Forge manifest of a Connect app. `connect-dev forge convert` writes its Connect parts from
# atlassian-connect.json: app.connect, the Connect remote, the CONNECT_DEV_* variables,
# connectModules and the :connect- scopes. Anything else here is yours and stays as you write it.
# `forge deploy` fills ${{{BASE_URL_VARIABLE}}} and ${{{APP_KEY_VARIABLE}}} from its environment
# (`connect-dev up` sets them), else from the defaults under environment.variables.
app:
  id: {PLACEHOLDER_APP_ID}
  runtime:
    name: {DEFAULT_RUNTIME}
"""

# Where a section goes when the manifest lacks it: after the last of these that it has.
SECTION_ORDER = ("app", "remotes", "environment", "modules", "connectModules", "permissions")
APP_ORDER = ("id", "description", "runtime", "connect", "licensing")


def update_manifest(
    existing_text: str | None,
    descriptor: Mapping[str, Any],
    product: str,
    *,
    file: str = "manifest.yml",
) -> Conversion:
    """The manifest with the Connect parts of ``descriptor`` written into ``existing_text`` (a
    new manifest for None). ``ManifestError`` when the existing text is not a YAML mapping, or
    a section connect-dev writes into has another shape (``remotes`` not a list...)."""
    parts = render_connect_parts(descriptor, product)
    created = existing_text is None
    source = NEW_MANIFEST if existing_text is None else existing_text
    manifest = parse_manifest(source, file=file)
    tree = manifest.tree
    remote_key = _apply(tree, parts, manifest)
    text = dump_yaml(tree, like=source) if not created else dump_yaml(tree)
    changed = created or text != existing_text
    if not changed:
        text = source
    problems = tuple(problem for problem in check_manifest(text, file=file))
    return Conversion(text, parts, created, changed, remote_key, problems)


def _apply(tree: CommentedMap, parts: ConnectParts, manifest: Manifest) -> str:
    """Write ``parts`` into ``tree``; the key of the Connect remote."""
    app = _section(tree, "app", CommentedMap, SECTION_ORDER, manifest)
    if "id" not in app:
        _put(app, "id", PLACEHOLDER_APP_ID, APP_ORDER)
    if "runtime" not in app:
        _put(app, "runtime", {"name": DEFAULT_RUNTIME}, APP_ORDER)
    connect = app.get("connect")
    if not isinstance(connect, CommentedMap):
        connect = CommentedMap()
        _put(app, "connect", connect, APP_ORDER)
    remote_key = connect.get("remote")
    if not (isinstance(remote_key, str) and schema.REMOTE_KEY_PATTERN.fullmatch(remote_key)):
        remote_key = REMOTE_KEY
    _put(connect, "key", f"${{{APP_KEY_VARIABLE}}}", ("key", "remote"))
    _put(connect, "remote", remote_key, ("key", "remote"))
    for name in list(connect):
        # app.connect is ours: what Forge accepts besides key and remote is jwt, the default.
        if name not in ("key", "remote") and not (
            name == "authentication" and connect[name] == "jwt"
        ):
            del connect[name]
    if parts.licensing:
        licensing = app.get("licensing")
        if not isinstance(licensing, CommentedMap):
            licensing = CommentedMap()
            _put(app, "licensing", licensing, APP_ORDER)
        for name, value in parts.licensing.items():
            _put(licensing, name, value, ("enabled", "editionsEnabled"))

    remotes = _section(tree, "remotes", CommentedSeq, SECTION_ORDER, manifest)
    remote = next(
        (r for r in remotes if isinstance(r, CommentedMap) and r.get("key") == remote_key), None
    )
    if remote is None:
        remote = CommentedMap([("key", remote_key)])
        remotes.append(remote)
    _put(remote, "baseUrl", parts.base_url, ("key", "baseUrl"))

    environment = _section(tree, "environment", CommentedMap, SECTION_ORDER, manifest)
    variables = environment.get("variables")
    if not isinstance(variables, CommentedSeq):
        if "variables" in environment:
            raise _shape_error(manifest, "$.environment.variables", "a list")
        variables = CommentedSeq()
        environment["variables"] = variables
    _declare(variables, parts.variables)

    modules = tree.get("connectModules")
    if parts.modules:
        if not isinstance(modules, CommentedMap):
            modules = CommentedMap()
            _put(tree, "connectModules", modules, SECTION_ORDER)
        for name in [name for name in modules if name not in parts.modules]:
            del modules[name]
        for name, entries in parts.modules.items():
            _put(modules, name, entries, ())
    elif "connectModules" in tree:
        del tree["connectModules"]

    _write_scopes(tree, parts.scopes, manifest)
    return remote_key


def _section(
    tree: CommentedMap, name: str, kind: type, order: tuple[str, ...], manifest: Manifest
) -> Any:
    value = tree.get(name)
    if isinstance(value, kind):
        return value
    if name in tree and value is not None:
        raise _shape_error(manifest, f"$.{name}", "a list" if kind is CommentedSeq else "a mapping")
    value = kind()
    _put(tree, name, value, order, force=True)
    return value


def _shape_error(manifest: Manifest, path: str, shape: str) -> ManifestError:
    return ManifestError(
        manifest.file,
        [manifest.locate(Problem(path, f"must be {shape} for connect-dev to write into it"))],
        hint="Fix that part of the manifest by hand, then convert again.",
    )


def _put(
    mapping: CommentedMap, key: str, value: Any, order: Iterable[str], *, force: bool = False
) -> None:
    """Set ``mapping[key]``, leaving it (and its comments) alone when it already holds that
    value; a new key goes after the last of the keys before it in ``order``, else at the end."""
    if key in mapping:
        if force or to_plain(mapping[key]) != to_plain(value):
            mapping[key] = value
        return
    order = tuple(order)
    position = len(mapping)
    if key in order:
        earlier = order[: order.index(key)]
        later = order[order.index(key) + 1 :]
        keys = list(mapping)
        before = [index for index, name in enumerate(keys) if name in earlier]
        after = [index for index, name in enumerate(keys) if name in later]
        if before:
            position = before[-1] + 1
        elif after:
            position = after[0]
    mapping.insert(position, key, value)


def _declare(variables: CommentedSeq, wanted: Iterable[tuple[str, str | None]]) -> None:
    """Each of our variables declared once, in place of an earlier declaration of it."""
    for name, default in wanted:
        declaration: Any = (
            name if default is None else CommentedMap([("key", name), ("default", default)])
        )
        indexes = [index for index, item in enumerate(variables) if _variable_name(item) == name]
        for index in reversed(indexes[1:]):
            del variables[index]
        if not indexes:
            variables.append(declaration)
        elif to_plain(variables[indexes[0]]) != to_plain(declaration):
            variables[indexes[0]] = declaration


def _variable_name(item: Any) -> str | None:
    if isinstance(item, str):
        return str(item)
    if isinstance(item, dict) and isinstance(item.get("key"), str):
        return str(item["key"])
    return None


def _is_connect_scope(scope: object) -> bool:
    return isinstance(scope, str) and scope.endswith(
        tuple(f":connect-{product}" for product in schema.PRODUCTS)
    )


def _write_scopes(tree: CommentedMap, scopes: tuple[str, ...], manifest: Manifest) -> None:
    permissions = tree.get("permissions")
    if not isinstance(permissions, CommentedMap):
        if not scopes:
            return
        permissions = _section(tree, "permissions", CommentedMap, SECTION_ORDER, manifest)
    current = permissions.get("scopes")
    if isinstance(current, CommentedMap):  # {scope: {allowImpersonation: ...}}
        for name in [name for name in current if _is_connect_scope(name)]:
            if name not in scopes:
                del current[name]
        for name in scopes:
            if name not in current:
                current[name] = CommentedMap()
        return
    if current is not None and not isinstance(current, CommentedSeq):
        raise _shape_error(manifest, "$.permissions.scopes", "a list")
    items = list(current or [])
    first = next((index for index, item in enumerate(items) if _is_connect_scope(item)), None)
    kept = [item for item in items if not _is_connect_scope(item)]
    position = (
        len(kept)
        if first is None
        else sum(1 for item in items[:first] if not _is_connect_scope(item))
    )
    target = [*kept[:position], *scopes, *kept[position:]]
    if current is None:
        if target:
            permissions["scopes"] = CommentedSeq(target)
        return
    if [str(item) for item in items] != [str(item) for item in target]:
        del current[:]
        current.extend(target)


# --- files --------------------------------------------------------------------------------------


def convert_file(
    descriptor_path: Path, manifest_path: Path, *, product: str | None = None
) -> tuple[Conversion, str]:
    """Convert the descriptor at ``descriptor_path`` into the manifest at ``manifest_path``
    (created, or updated in place atomically, its mode kept; not touched when nothing changes).
    Returns the conversion and why the product is what it is. ``DescriptorError`` for a
    descriptor that does not validate, ``ManifestError`` for a manifest that is not YAML."""
    from .. import descriptor as descriptor_module

    revision = descriptor_module.load(descriptor_path)
    if product is None:
        product, why = guess_product(revision.document)
    else:
        why = "--product"
    existing = _read_existing(manifest_path)
    conversion = update_manifest(existing, revision.document, product, file=str(manifest_path))
    if conversion.changed:
        write_atomically(manifest_path, conversion.text)
    return conversion, why


def _read_existing(path: Path) -> str | None:
    """The text of the manifest at ``path``; None when there is none yet (or it is empty)."""
    if not (path.exists() or path.is_symlink()):
        return None
    try:
        text = decode_utf8(read_input_file(path))
    except InputFileError as exc:
        raise ManifestError(str(path), [Problem("$", exc.reason)]) from exc
    except NotUtf8Error as exc:
        raise ManifestError(
            str(path),
            [Problem("$", f"{exc.reason}; a manifest must be UTF-8", exc.line, exc.column)],
            hint="Save it as UTF-8.",
        ) from exc
    return text if text.strip() else None


# --- helpers ------------------------------------------------------------------------------------


def _suggest(word: str, choices: Iterable[str]) -> str:
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""
