"""The Forge CLI's login: an Atlassian account email and API token, from the environment or the
OS keychain, handed to the CLI in its environment and nowhere else.

The Forge CLI reads ``FORGE_EMAIL`` and ``FORGE_API_TOKEN`` (both, or neither: FORGE.md §4) and
they win over its own keychain. ``find_forge_login`` looks in the same two places we control:

1. the environment: both variables set and non-empty; exactly one is an error
   (``ForgeLoginError``), as it is for the Forge CLI;
2. the keychain: the entries ``connect-dev login --forge`` writes (service ``connect-devloop``,
   accounts ``forge email`` and ``forge api token``), both or nothing.

``forge_login_env`` turns a login into the two variables for a child process. The token is a
``Secret`` until then; it is never passed on a command line, logged or put in an event.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import ForgeLoginError
from ..keychain import Keychain, KeychainError, SystemKeychain
from ..secret import Secret

__all__ = [
    "FORGE_API_TOKEN_ACCOUNT",
    "FORGE_API_TOKEN_ENV",
    "FORGE_EMAIL_ACCOUNT",
    "FORGE_EMAIL_ENV",
    "ForgeLogin",
    "ForgeLoginError",
    "find_forge_login",
    "forge_login_env",
    "remove_forge_login",
    "store_forge_login",
]

logger = logging.getLogger(__name__)

FORGE_EMAIL_ENV = "FORGE_EMAIL"
FORGE_API_TOKEN_ENV = "FORGE_API_TOKEN"
FORGE_EMAIL_ACCOUNT = "forge email"
FORGE_API_TOKEN_ACCOUNT = "forge api token"

LOGIN_HINT = (
    f"Set both {FORGE_EMAIL_ENV} and {FORGE_API_TOKEN_ENV}, or neither and keep the login in the "
    "OS keychain with `connect-dev login --forge`."
)


@dataclass(frozen=True)
class ForgeLogin:
    """Who the Forge CLI runs as. ``source`` is ``"environment"`` or ``"keychain"``."""

    email: str
    api_token: Secret
    source: str


def find_forge_login(
    environ: Mapping[str, str] | None = None, keychain: Keychain | None = None
) -> ForgeLogin | None:
    """The Forge login from ``environ`` (default ``os.environ``), else from the keychain; ``None``
    when neither has one (the Forge CLI may still have its own, from ``forge login``).

    Raises ``ForgeLoginError`` when the environment has only one of the two variables: the
    message names the missing one, never a value.
    """
    environ = os.environ if environ is None else environ
    email = environ.get(FORGE_EMAIL_ENV, "")
    token = environ.get(FORGE_API_TOKEN_ENV, "")
    if email and token:
        return ForgeLogin(email, Secret(token), "environment")
    if email or token:
        present, missing = FORGE_EMAIL_ENV, FORGE_API_TOKEN_ENV
        if token:
            present, missing = missing, present
        state = "is empty" if missing in environ else "is not"
        raise ForgeLoginError(
            f"{present} is set but {missing} {state}: the Forge CLI needs both, or neither",
            hint=LOGIN_HINT,
        )
    return _keychain_login(keychain if keychain is not None else SystemKeychain())


def forge_login_env(login: ForgeLogin) -> dict[str, str]:
    """``FORGE_EMAIL`` and ``FORGE_API_TOKEN`` for the environment of a Forge CLI process: the
    one place the token is revealed."""
    return {FORGE_EMAIL_ENV: login.email, FORGE_API_TOKEN_ENV: login.api_token.reveal()}


def store_forge_login(email: str, api_token: Secret, keychain: Keychain) -> None:
    """Keep the login in ``keychain``; ``KeychainError`` when it cannot.

    The email goes first: should the token then fail, the email is taken back, so a new email
    never pairs with an older token.
    """
    keychain.set(FORGE_EMAIL_ACCOUNT, Secret(email))
    try:
        keychain.set(FORGE_API_TOKEN_ACCOUNT, api_token)
    except KeychainError:
        try:
            keychain.delete(FORGE_EMAIL_ACCOUNT)
        except KeychainError as exc:
            logger.debug("could not take back %r: %s", FORGE_EMAIL_ACCOUNT, exc)
        raise


def remove_forge_login(keychain: Keychain) -> bool:
    """Remove both entries; ``False`` when there was neither. ``KeychainError`` passes through."""
    removed_token = keychain.delete(FORGE_API_TOKEN_ACCOUNT)
    removed_email = keychain.delete(FORGE_EMAIL_ACCOUNT)
    return removed_token or removed_email


def _keychain_login(keychain: Keychain) -> ForgeLogin | None:
    try:
        email = keychain.get(FORGE_EMAIL_ACCOUNT)
        token = keychain.get(FORGE_API_TOKEN_ACCOUNT)
    except KeychainError as exc:
        # As keychain_secret: a lookup is optional; the Forge CLI may have its own login.
        logger.debug("keychain lookup of the Forge login skipped: %s", exc)
        return None
    if email is None or token is None:
        if email is not None or token is not None:
            logger.debug("the keychain holds half a Forge login; ignored")
        return None
    return ForgeLogin(email.reveal(), token, "keychain")
