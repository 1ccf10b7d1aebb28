"""Secrets and where a host's password comes from.

``Secret`` wraps a password, API token or shared secret so that printing, logging, ``repr`` or an
f-string can never show it; only ``reveal()`` does, at the one place that builds a request.

The lookup order is a small protocol (``PasswordSource``) so the keychain can be slotted in
without touching the callers. This module is named ``credentials`` rather than DESIGN.md's
``secrets`` so it never shadows the standard library's ``secrets`` module in tools that put the
package directory on ``sys.path``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from .errors import CredentialsError

if TYPE_CHECKING:
    from .config import HostConfig

__all__ = [
    "EnvironmentSource",
    "InlineSource",
    "PasswordSource",
    "Secret",
    "resolve_password",
]


class Secret:
    """A string that shows as ``***`` everywhere except through ``reveal()``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


class PasswordSource(Protocol):
    """One place a host's password may be found. Returns ``None`` when it has none."""

    name: str

    def lookup(self, host: HostConfig) -> Secret | None: ...


class EnvironmentSource:
    """``password_env = "JIRA_API_TOKEN"``: the variable named in the config."""

    name = "environment"

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ

    def lookup(self, host: HostConfig) -> Secret | None:
        if not host.password_env:
            return None
        value = self._environ.get(host.password_env)
        return Secret(value) if value else None


class InlineSource:
    """``password = "..."`` written in the config (meant for local SDK hosts: admin/admin)."""

    name = "config file"

    def lookup(self, host: HostConfig) -> Secret | None:
        return host.password


def default_sources() -> list[PasswordSource]:
    return [EnvironmentSource(), InlineSource()]


def resolve_password(host: HostConfig, sources: Sequence[PasswordSource] | None = None) -> Secret:
    """The first password found for ``host``, or ``CredentialsError`` saying where we looked."""
    for source in sources if sources is not None else default_sources():
        secret = source.lookup(host)
        if secret is not None:
            return secret
    if host.password_env:
        state = "is empty" if host.password_env in os.environ else "is not set"
        raise CredentialsError(
            f"host {host.name!r}: environment variable {host.password_env} {state}",
            hint=f"export {host.password_env}=<API token> before `connect-dev up`, "
            "or set `password` in the [[hosts]] entry for a local host.",
        )
    raise CredentialsError(
        f"host {host.name!r}: no password or API token configured",
        hint='Add `password_env = "VARIABLE"` to the [[hosts]] entry (Cloud: an API token '
        "from id.atlassian.com), or `password` for a local host.",
    )
