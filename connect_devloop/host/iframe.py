"""The URLs a product builds for an add-on's iframes, and the tokens ``AP.context.getToken()``
returns (PROTOCOL.md §5).

An iframe URL is the app's ``baseUrl`` + the module's ``url`` with its context variables
substituted (``{issue.key}``, ``{page.id}``, ``{user.accountId}``...), then the query parameters
every product adds (``xdm_e``, ``xdm_c``, ``cp``, ``lic``, ``cv``) and ``jwt``: HS256 with the
tenant's ``sharedSecret``, ``sub`` = the viewer's accountId, a ``context`` claim with the page's
product context, and ``qsh`` = the hash of that very request, or the literal ``"context-qsh"``
when the descriptor opts in with ``"apiMigrations": {"context-qsh": true}``.

    url = iframe_url(host, installation, "my-panel", "/panel?issue={issue.key}", variables)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from .. import jwt
from .lifecycle import EMULATED_ACCOUNT_ID, SERVER_VERSIONS, Installation, addon_url

if TYPE_CHECKING:
    from .types import Host

__all__ = [
    "STANDARD_PARAMS",
    "context_claim",
    "context_token",
    "iframe_url",
    "is_absolute",
    "signed_request",
    "standard_params",
    "substitute",
    "uses_context_qsh",
]

# What every iframe URL carries besides the module's own query, in this order.
STANDARD_PARAMS = ("xdm_e", "xdm_c", "cp", "lic", "cv")
_VARIABLE = re.compile(r"\{([A-Za-z0-9_.\-]+)\}")


def substitute(template: str, variables: Mapping[str, str]) -> str:
    """``template`` with each ``{name}`` replaced by its percent-encoded value; a variable the
    page does not have becomes empty, as in the products."""
    return _VARIABLE.sub(lambda match: quote(variables.get(match.group(1), ""), safe=""), template)


def is_absolute(url: str) -> bool:
    return urlsplit(url).scheme in ("http", "https")


def uses_context_qsh(descriptor: Mapping[str, Any]) -> bool:
    """Whether the app opted in to context JWTs in its iframe URLs (``qsh: "context-qsh"``)."""
    migrations = descriptor.get("apiMigrations")
    return isinstance(migrations, dict) and migrations.get("context-qsh") is True


def standard_params(
    host: Host, installation: Installation, module_key: str
) -> list[tuple[str, str]]:
    """``xdm_e`` (the site's origin), ``xdm_c`` (the channel), ``cp`` (the context path),
    ``lic`` and ``cv`` (the Connect version)."""
    licensed = installation.descriptor.get("enableLicensing") is True
    return [
        ("xdm_e", host.origin),
        ("xdm_c", f"channel-{installation.key}__{module_key}"),
        ("cp", host.settings.context_path),
        # The emulator's choice: a licensed app's licence is active, as in a trial.
        ("lic", "active" if licensed else "none"),
        ("cv", SERVER_VERSIONS[(host.settings.product, host.settings.flavour)][1]),
    ]


def context_claim(product: str, variables: Mapping[str, str]) -> dict[str, Any]:
    """The ``context`` claim for a page with these context variables: the product's entities,
    as ``AP.context.getContext()`` also returns them."""
    if product == "jira":
        issue = _pick(variables, "issue", ("id", "key"))
        if "issuetype.id" in variables:
            issue["issuetype"] = {"id": variables["issuetype.id"]}
        jira = {"issue": issue, "project": _pick(variables, "project", ("id", "key"))}
        return {"jira": {name: value for name, value in jira.items() if value}}
    content = _pick(variables, "content", ("id", "type", "version")) or _pick(
        variables, "page", ("id", "type", "version")
    )
    macro = _pick(variables, "macro", ("id", "hash"))
    if macro and "output.type" in variables:
        macro["outputType"] = variables["output.type"]
    confluence = {
        "content": content,
        "space": _pick(variables, "space", ("id", "key")),
        "macro": macro,
    }
    return {"confluence": {name: value for name, value in confluence.items() if value}}


def iframe_url(
    host: Host,
    installation: Installation,
    module_key: str,
    url: str,
    variables: Mapping[str, str],
    *,
    extra_params: Iterable[tuple[str, str]] = (),
    account_id: str = EMULATED_ACCOUNT_ID,
) -> str:
    """The URL the product loads in the iframe of ``module_key``: signed, unless the module's
    ``url`` is absolute (a link out of the app) or the app has no ``sharedSecret``."""
    target = substitute(url, variables)
    if is_absolute(target):
        return target
    path, _, query = addon_url(installation.base_url, target).partition("?")
    params = parse_qsl(query, keep_blank_values=True)
    params.extend(extra_params)
    given = {name for name, _ in params}
    params.extend(
        (name, value)
        for name, value in standard_params(host, installation, module_key)
        if name not in given
    )
    params = [(name, value) for name, value in params if name != jwt.JWT_PARAM]
    if installation.shared_secret is not None:
        claims = jwt.make_claims(
            host.client_key,
            "GET",
            urlsplit(path).path,
            params,
            urlsplit(installation.base_url).path,
            sub=account_id,
            context=context_claim(host.settings.product, variables),
        )
        if uses_context_qsh(installation.descriptor):
            claims["qsh"] = jwt.CONTEXT_QSH
        params.append((jwt.JWT_PARAM, jwt.encode_hs256(claims, installation.shared_secret)))
    return f"{path}?{urlencode(params, quote_via=quote)}"


def signed_request(
    host: Host,
    installation: Installation,
    url: str,
    variables: Mapping[str, str],
    *,
    account_id: str = EMULATED_ACCOUNT_ID,
) -> tuple[str, dict[str, str]]:
    """A server-side GET of the app's ``url`` (a static macro's content): the URL with its
    variables substituted and the headers, ``Authorization: JWT`` with the request's qsh."""
    target = addon_url(installation.base_url, substitute(url, variables))
    if installation.shared_secret is None:
        return target, {}
    parts = urlsplit(target)
    claims = jwt.make_claims(
        host.client_key,
        "GET",
        parts.path,
        parts.query,
        urlsplit(installation.base_url).path,
        sub=account_id,
        context=context_claim(host.settings.product, variables),
    )
    token = jwt.encode_hs256(claims, installation.shared_secret)
    return target, {"Authorization": f"JWT {token}"}


def context_token(
    host: Host,
    installation: Installation,
    variables: Mapping[str, str],
    *,
    account_id: str = EMULATED_ACCOUNT_ID,
) -> str:
    """What ``AP.context.getToken()`` returns: bound to no URL (``qsh: "context-qsh"``), with
    the viewer in ``sub`` and the page's product context. ``LookupError`` for an app without a
    ``sharedSecret`` (``authentication: none``): it has nothing to verify a token with."""
    if installation.shared_secret is None:
        raise LookupError(f"{installation.key} has no sharedSecret (authentication none)")
    claims = jwt.make_claims(
        host.client_key,
        "GET",
        "/",
        sub=account_id,
        context=context_claim(host.settings.product, variables),
    )
    claims["qsh"] = jwt.CONTEXT_QSH
    return jwt.encode_hs256(claims, installation.shared_secret)


def _pick(variables: Mapping[str, str], entity: str, fields: Iterable[str]) -> dict[str, Any]:
    return {
        name: variables[f"{entity}.{name}"] for name in fields if f"{entity}.{name}" in variables
    }
