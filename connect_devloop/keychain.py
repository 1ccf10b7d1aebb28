"""The OS keychain (macOS Keychain, Windows Credential Locker, a Secret Service on Linux) through
the ``keyring`` package, behind a small protocol so tests and other stores can stand in.

Every entry lives under the service ``connect-devloop``; the account names say what the entry is:

    me@example.com @ https://example.atlassian.net      a host's API token or password
    ngrok authtoken                                     the ngrok agent's authtoken
    forge email, forge api token                        the Forge CLI's login (see forge/login.py)
    tenant my-addon 7c4f…                               a tenant's sharedSecret (see tenants.py)

A machine without a usable backend (headless Linux gets ``keyring.backends.fail.Keyring``) is not
an error in itself: lookups find nothing, and only an explicit store (``connect-dev login``)
fails, with a message that names the alternatives.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol
from urllib.parse import urlsplit

from .errors import CredentialsError
from .secret import Secret

__all__ = [
    "BACKEND_HINT",
    "NGROK_AUTHTOKEN_ACCOUNT",
    "SERVICE",
    "Keychain",
    "KeychainError",
    "KeychainUnavailableError",
    "MemoryKeychain",
    "SystemKeychain",
    "host_account",
    "keychain_secret",
    "ngrok_authtoken",
    "ngrok_authtoken_lookup",
    "tenant_account",
]

logger = logging.getLogger(__name__)

SERVICE = "connect-devloop"
NGROK_AUTHTOKEN_ACCOUNT = "ngrok authtoken"

BACKEND_HINT = (
    "give keyring a backend: a Secret Service (GNOME Keyring or KeePassXC, in a desktop "
    "session) or `pip install keyrings.alt` (a plain file, not encrypted)"
)
UNAVAILABLE_HINT = (
    'Use password_env = "VARIABLE" in connect-dev.toml, or an inline password for hosts on '
    f"loopback; or {BACKEND_HINT}."
)


class KeychainError(CredentialsError):
    """The keychain refused or failed an operation (locked, D-Bus error, ...)."""


class KeychainUnavailableError(KeychainError):
    """There is no usable keychain backend on this machine."""


class Keychain(Protocol):
    """Where connect-devloop keeps secrets. ``get`` returns ``None`` for an unknown account."""

    @property
    def description(self) -> str: ...

    def get(self, account: str) -> Secret | None: ...

    def set(self, account: str, secret: Secret) -> None: ...

    def delete(self, account: str) -> bool:
        """Remove the entry; ``False`` when there was none."""
        ...


def host_account(url: str, username: str) -> str:
    """The account of a host's password: the same for every spelling of the same base URL."""
    parts = urlsplit(url.strip())
    base = f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path.rstrip('/')}"
    return f"{username} @ {base}"


def tenant_account(addon_key: str, client_key: str) -> str:
    return f"tenant {addon_key} {client_key}"


class SystemKeychain:
    """The keychain ``keyring`` chooses (or ``backend``), under ``service``.

    The backend is looked up at each call, so ``keyring.set_keyring()`` (tests, plugins) takes
    effect at once.
    """

    def __init__(self, service: str = SERVICE, backend: Any = None) -> None:
        self.service = service
        self._backend = backend

    @property
    def backend(self) -> Any:
        if self._backend is not None:
            return self._backend
        import keyring

        return keyring.get_keyring()

    @property
    def description(self) -> str:
        return _backend_name(self.backend)

    @property
    def available(self) -> bool:
        return _unusable_reason(self.backend) is None

    def get(self, account: str) -> Secret | None:
        value = self._call("read", "get_password", account)
        return Secret(value) if isinstance(value, str) and value else None

    def set(self, account: str, secret: Secret) -> None:
        backend = self._usable_backend()
        try:
            backend.set_password(self.service, account, secret.reveal())
        except Exception as exc:
            raise _failure("store", account, backend, exc, secret) from exc

    def delete(self, account: str) -> bool:
        from keyring.errors import PasswordDeleteError

        backend = self._usable_backend()
        try:
            backend.delete_password(self.service, account)
        except PasswordDeleteError:
            return False
        except Exception as exc:
            raise _failure("remove", account, backend, exc) from exc
        return True

    def _call(self, verb: str, method: str, account: str, *args: str) -> Any:
        backend = self._usable_backend()
        try:
            return getattr(backend, method)(self.service, account, *args)
        except Exception as exc:
            # Any backend error (a locked collection, D-Bus gone, a plugin bug) is reported,
            # never raised into the dev loop as a traceback.
            raise _failure(verb, account, backend, exc) from exc

    def _usable_backend(self) -> Any:
        backend = self.backend
        reason = _unusable_reason(backend)
        if reason is not None:
            raise KeychainUnavailableError(
                f"the OS keychain is not available here ({reason})", hint=UNAVAILABLE_HINT
            )
        return backend


class MemoryKeychain:
    """A keychain in a dict: for tests, and for ``--no-keychain`` style runs."""

    description = "in memory"

    def __init__(self, entries: dict[str, str] | None = None) -> None:
        self.entries: dict[str, str] = dict(entries or {})

    def get(self, account: str) -> Secret | None:
        value = self.entries.get(account)
        return Secret(value) if value else None

    def set(self, account: str, secret: Secret) -> None:
        self.entries[account] = secret.reveal()

    def delete(self, account: str) -> bool:
        return self.entries.pop(account, None) is not None


def keychain_secret(account: str, keychain: Keychain | None = None) -> Secret | None:
    """The secret stored under ``account``, or ``None`` when there is none or no keychain works
    here (logged at debug level: a lookup is always optional)."""
    try:
        return (keychain or SystemKeychain()).get(account)
    except KeychainError as exc:
        logger.debug("keychain lookup of %r skipped: %s", account, exc)
        return None


def ngrok_authtoken(keychain: Keychain | None = None) -> Secret | None:
    """The ngrok authtoken stored by ``connect-dev login --ngrok``, if any."""
    return keychain_secret(NGROK_AUTHTOKEN_ACCOUNT, keychain)


def ngrok_authtoken_lookup() -> str | None:
    """``ngrok_authtoken()`` as the plain text the ngrok agent is started with: the tunnel's
    ``authtoken_lookup`` seam (``create_tunnel(config, ngrok_authtoken_lookup=...)``)."""
    secret = ngrok_authtoken()
    return secret.reveal() if secret else None


# --- helpers ----------------------------------------------------------------------------------


def _backend_name(backend: Any) -> str:
    cls = type(backend)
    module = cls.__module__.removeprefix("keyring.backends.")
    return f"{module}.{cls.__name__}"


def _unusable_reason(backend: Any) -> str | None:
    from keyring.backends import fail, null

    if isinstance(backend, fail.Keyring):
        return "keyring found no usable backend: fail.Keyring"
    if isinstance(backend, null.Keyring):
        return "keyring is turned off: null.Keyring"
    # keyring's chainer with nothing in it behaves like fail.Keyring.
    backends = getattr(backend, "backends", None)
    if backends is not None and not backends:
        return "keyring found no usable backend"
    return None


def _failure(
    verb: str, account: str, backend: Any, exc: Exception, secret: Secret | None = None
) -> KeychainError:
    from keyring.errors import KeyringLocked, NoKeyringError

    if isinstance(exc, NoKeyringError):
        return KeychainUnavailableError(
            f"the OS keychain is not available here ({_backend_name(backend)}: no usable backend)",
            hint=UNAVAILABLE_HINT,
        )
    if isinstance(exc, KeyringLocked):
        hint = "Unlock the keychain (log in to the desktop session) and try again."
    else:
        hint = UNAVAILABLE_HINT
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if secret is not None and secret.reveal() and secret.reveal() in detail:
        detail = detail.replace(secret.reveal(), "***")  # a backend echoing what it was given
    what = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return KeychainError(
        f"could not {verb} {account!r} in the keychain ({_backend_name(backend)}): {what}",
        hint=hint,
    )
