"""Secrets never reach a log or the screen: header values and query parameters that
authenticate are masked before a ``request`` event carries them and before the dashboard
shows them.

A masked value keeps its scheme (``JWT``, ``Basic``) and its length, which is what a developer
needs to see that a credential was sent, and nothing anyone could reuse.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote_plus

__all__ = [
    "is_secret_name",
    "mask_header",
    "mask_headers",
    "mask_path",
    "mask_value",
    "masked_mapping",
]

MASK = "••••••"

# Substrings of header, query and claim names whose values authenticate someone.
_SECRET_PARTS = (
    "authorization",
    "cookie",
    "token",
    "secret",
    "password",
    "passwd",
    "api-key",
    "api_key",
    "apikey",
    "session",
    "signature",
    "jwt",
)


def is_secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(part in lowered for part in _SECRET_PARTS)


def mask_value(value: str) -> str:
    """``JWT eyJhbGciOi...`` → ``JWT •••••• (312 chars)``; a masked value stays as it is."""
    if MASK in value:
        # Masking twice would report the length of the mask ("(18 chars)"), not the token's.
        return value
    scheme, sep, rest = value.partition(" ")
    if sep and scheme.isalpha() and len(scheme) <= 10:
        return f"{scheme} {MASK} ({len(rest)} chars)"
    return f"{MASK} ({len(value)} chars)"


def mask_header(name: str, value: str) -> str:
    """A header's value as it may be shown: masked whole when the name is a credential's, and
    its secret query parameters masked when it holds a URL (``Referer``, ``Location``: a page
    a Connect iframe loads carries ``?jwt=``, and so does every Referer its scripts send)."""
    if is_secret_name(name):
        return mask_value(value)
    if "?" in value:
        return mask_path(value)
    return value


def mask_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return [(name, mask_header(name, value)) for name, value in pairs]


def mask_path(path: str) -> str:
    """The request path with the values of secret query parameters (``jwt=``) masked."""
    base, sep, query = path.partition("?")
    if not sep:
        return path
    masked = []
    for item in query.split("&"):
        name, eq, _value = item.partition("=")
        # A name may be percent-encoded (%6Awt is jwt): judged as the server decodes it.
        secret = eq and is_secret_name(unquote_plus(name) if "%" in name else name)
        masked.append(f"{name}={MASK}" if secret else item)
    return f"{base}?{'&'.join(masked)}"


def masked_mapping(data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` (a JWT verdict, claims) with secret-named values masked, recursively.

    Narrower than for headers: in a verdict, ``signature`` names the algorithm and ``jwt`` a
    kind of token, so only secrets, passwords and the tokens themselves are masked.
    """
    result: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            result[key] = masked_mapping(value)
        elif _is_secret_key(key) and isinstance(value, str) and value:
            result[key] = mask_value(value)
        else:
            result[key] = value
    return result


def _is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return any(part in lowered for part in ("secret", "password", "token", "authorization"))
