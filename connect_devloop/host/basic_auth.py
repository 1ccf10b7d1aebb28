"""HTTP Basic credentials as the site checks them, for UPM REST and the product's REST API."""

from __future__ import annotations

import base64
import binascii
import hmac

__all__ = ["basic_credentials", "password_matches"]


def basic_credentials(header: str) -> tuple[str, str] | None:
    """``(user, password)`` of an ``Authorization: Basic ...`` header, else None."""
    # Decoded here rather than with aiohttp.BasicAuth, which aiohttp 3.14 deprecates.
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = decoded.partition(":")
    return (user, password) if colon else None


def password_matches(users: dict[str, str], user: str, password: str) -> bool:
    """True when ``users`` has ``user`` with ``password`` (compared in constant time)."""
    expected = users.get(user)
    return expected is not None and hmac.compare_digest(
        expected.encode("utf-8"), password.encode("utf-8")
    )
